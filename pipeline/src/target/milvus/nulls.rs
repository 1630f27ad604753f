//! NULLs on a server without nullable fields: the stand-in each scalar type is written as, and
//! the batch rewrite the writer, a stage bound for such a server and `etl verify` all apply.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, ListArray, RecordBatch, StringArray, new_empty_array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{cast, is_null, take};
use datafusion::arrow::datatypes::DataType as ArrowType;
use etl_engine::{CollectionSchema, FieldType};

use crate::error::PipelineError;

/// The value a NULL in a scalar field of `t` is written as on a server without NULLs.
pub fn null_stand_in(t: FieldType) -> &'static str {
    match t {
        FieldType::Bool => "false",
        FieldType::Varchar => "''",
        FieldType::Json => "{}",
        FieldType::Array => "[]",
        _ => "0",
    }
}

/// `batch` with every NULL in a scalar field replaced by its stand-in ([`null_stand_in`]): what
/// a Milvus without nullable fields holds. The writer, the stage bound for such a server and
/// `etl verify` all apply it, so verify compares what was meant to be written.
pub fn fill_nulls(
    batch: &RecordBatch,
    schema: &CollectionSchema,
) -> Result<RecordBatch, PipelineError> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    let mut changed = false;
    for (i, c) in batch.columns().iter().enumerate() {
        let name = batch.schema().field(i).name().clone();
        let field = schema.fields.iter().find(|f| f.name == name);
        match field {
            Some(f) if has_nulls(c) && !f.data_type.is_vector() => {
                columns.push(
                    fill_column(c, f.data_type).map_err(|e| PipelineError::Internal {
                        message: format!("field `{name}`: {e}"),
                    })?,
                );
                changed = true;
            }
            _ => columns.push(c.clone()),
        }
    }
    if !changed {
        return Ok(batch.clone());
    }
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| PipelineError::Internal {
        message: e.to_string(),
    })
}

/// Whether a column holds a NULL, counting NULL elements inside arrays.
fn has_nulls(c: &ArrayRef) -> bool {
    c.null_count() > 0
        || c.as_any()
            .downcast_ref::<ListArray>()
            .is_some_and(|l| l.values().null_count() > 0)
}

fn fill_column(
    c: &ArrayRef,
    t: FieldType,
) -> Result<ArrayRef, datafusion::arrow::error::ArrowError> {
    let one: ArrayRef = match (t, c.data_type()) {
        (_, ArrowType::Boolean) => Arc::new(BooleanArray::from(vec![false])),
        (FieldType::Json, ArrowType::Utf8) => Arc::new(StringArray::from(vec!["{}"])),
        (_, ArrowType::Utf8) => Arc::new(StringArray::from(vec![""])),
        (_, ArrowType::List(item)) => {
            // NULL elements inside the arrays first, then NULL arrays.
            if let Some(list) = c.as_any().downcast_ref::<ListArray>()
                && list.values().null_count() > 0
            {
                let values = fill_column(list.values(), FieldType::Varchar)?;
                let filled: ArrayRef = Arc::new(ListArray::try_new(
                    item.clone(),
                    list.offsets().clone(),
                    values,
                    list.nulls().cloned(),
                )?);
                if filled.null_count() == 0 {
                    return Ok(filled);
                }
                return fill_column(&filled, t);
            }
            Arc::new(ListArray::try_new(
                item.clone(),
                OffsetBuffer::new(vec![0i32, 0].into()),
                new_empty_array(item.data_type()),
                None,
            )?)
        }
        (_, other) => cast(&(Arc::new(Int64Array::from(vec![0i64])) as ArrayRef), other)?,
    };
    let zeros = take(
        &one,
        &datafusion::arrow::array::UInt32Array::from(vec![0u32; c.len()]),
        None,
    )?;
    datafusion::arrow::compute::kernels::zip::zip(&is_null(c)?, &zeros, c)
}

/// The nullable scalar fields of a schema (the primary key never is).
pub fn nullable_scalars(schema: &CollectionSchema) -> Vec<&str> {
    schema
        .fields
        .iter()
        .filter(|f| f.nullable && !f.data_type.is_vector() && !f.primary_key)
        .map(|f| f.name.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int32Array};
    use datafusion::arrow::datatypes::{Field as ArrowField, Int32Type, Schema};

    #[test]
    fn nulls_become_the_stand_ins_the_plan_names() {
        let mut schema = CollectionSchema {
            fields: Vec::new(),
            auto_id: false,
            dynamic_field: false,
            shards: 1,
            description: String::new(),
        };
        for (n, t) in [
            ("n", FieldType::Int32),
            ("s", FieldType::Varchar),
            ("j", FieldType::Json),
        ] {
            let mut f = etl_engine::Field::new(n, t);
            f.nullable = true;
            schema.fields.push(f);
        }
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                ArrowField::new("n", ArrowType::Int32, true),
                ArrowField::new("s", ArrowType::Utf8, true),
                ArrowField::new("j", ArrowType::Utf8, true),
            ])),
            vec![
                Arc::new(Int32Array::from(vec![Some(7), None])),
                Arc::new(StringArray::from(vec![Some("x"), None])),
                Arc::new(StringArray::from(vec![Some("[1]"), None])),
            ],
        )
        .unwrap();
        let out = fill_nulls(&batch, &schema).unwrap();
        assert_eq!(out.column(0).as_primitive::<Int32Type>().values(), &[7, 0]);
        assert_eq!(out.column(1).as_string::<i32>().value(1), "");
        assert_eq!(out.column(2).as_string::<i32>().value(1), "{}");
        assert_eq!(out.column(2).as_string::<i32>().value(0), "[1]");
        assert!(out.columns().iter().all(|c| c.null_count() == 0));
        assert_eq!(null_stand_in(FieldType::Varchar), "''");
        // NULL elements inside arrays, and NULL arrays.
        let mut a = etl_engine::Field::new("a", FieldType::Array);
        a.element_type = Some(FieldType::Int32);
        a.nullable = true;
        schema.fields.push(a);
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![ArrowField::new(
                "a",
                list.data_type().clone(),
                true,
            )])),
            vec![Arc::new(list)],
        )
        .unwrap();
        let out = fill_nulls(&batch, &schema).unwrap();
        let l = out.column(0).as_list::<i32>();
        assert_eq!(l.null_count(), 0);
        assert_eq!(l.value(0).as_primitive::<Int32Type>().values(), &[1, 0]);
        assert_eq!(l.value(1).len(), 0);
    }
}
