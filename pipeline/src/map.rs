//! Source batches → collection batches: renames, casts, defaults for NULLs, dynamic-field
//! packing, and the checks that send a row to the rejects file instead of the engine.
//!
//! Casts are Arrow's cast kernels (the ones DataFusion's `CAST` runs); what a cast cannot
//! express row by row (a vector of the wrong dimension, a sparse vector's shape, `$meta`) is
//! done here. A row is never dropped silently: it is written or it is a reject with a reason.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeListArray, RecordBatch, StringArray,
    StructArray, new_null_array,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options, filter_record_batch};
use datafusion::arrow::datatypes::{
    DataType, Field as ArrowField, Float16Type, Float32Type, SchemaRef,
};
use etl_engine::convert::to_json;
use etl_engine::{CollectionSchema, FieldType};
use etl_mappings::{FieldPlan, TablePlan};
use serde_json::{Map, Value};

use crate::error::PipelineError;

/// Why a row was rejected (the JSON spelling is part of the rejects file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// NULL into a non-nullable field without a default.
    NullNotAllowed,
    /// VARCHAR longer than max_length (bytes).
    TooLong,
    /// A vector whose dimension is not the field's.
    WrongDimension,
    /// NaN or infinity in a vector.
    NotFinite,
    /// An array with more elements than max_capacity.
    OverCapacity,
    /// A value the target type cannot hold.
    CannotConvert,
    /// A row of a dump the reader could not read (text that is not a value of the column's type,
    /// a vector of another dimension), set aside under `max_rejects`.
    Unreadable,
    /// NULL where the field cannot hold it, left out on purpose (`on_null: skip`): listed,
    /// counted as skipped, never a failure.
    NullSkipped,
    /// The destination refused the row (a constraint of a table that was already there); the
    /// message is the destination's.
    Refused,
}

impl RejectReason {
    /// Whether the row was left out on purpose rather than refused.
    pub fn is_skip(&self) -> bool {
        *self == RejectReason::NullSkipped
    }
}

/// One rejected row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reject {
    /// The source row's key (primary key columns, or the auto-ID table's key columns).
    pub primary_key: Value,
    /// The source column.
    pub column: String,
    /// Why.
    pub reason: RejectReason,
    /// What the value was (shortened).
    pub value: Value,
    /// Details.
    pub message: String,
}

impl Reject {
    /// A dump row the reader set aside: no key (the row was never decoded), the place in the
    /// dump in the message.
    pub fn unreadable(b: etl_connectors::postgres::BadRow) -> Reject {
        Reject {
            primary_key: Value::Null,
            column: b.column,
            reason: RejectReason::Unreadable,
            value: Value::String(b.value),
            message: format!("{} at {}: table {}: {}", b.file, b.at, b.table, b.reason),
        }
    }
}

/// Maps batches of one table.
pub struct Mapper {
    plan: TablePlan,
    schema: CollectionSchema,
    target: SchemaRef,
}

impl Mapper {
    /// A mapper for a table's plan and its collection schema.
    pub fn new(plan: TablePlan, schema: CollectionSchema) -> Mapper {
        let target = schema.arrow_schema();
        Mapper {
            plan,
            schema,
            target,
        }
    }

    /// Source columns the mapping reads (fields, dynamic fields and key columns).
    pub fn source_columns(&self) -> Vec<String> {
        let mut cols: Vec<String> = self
            .plan
            .fields
            .iter()
            .filter_map(|f| f.source.clone())
            .collect();
        for k in &self.plan.source_key {
            if !cols.contains(k) {
                cols.push(k.clone());
            }
        }
        cols
    }

    /// Maps a source batch; returns the rows to write and the rejects.
    pub fn map(&self, batch: &RecordBatch) -> Result<(RecordBatch, Vec<Reject>), PipelineError> {
        let n = batch.num_rows();
        let mut keep = vec![true; n];
        let mut rejects = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        let mut names: Vec<Arc<ArrowField>> = Vec::new();
        for f in self.plan.fields.iter().filter(|f| read_from_source(f)) {
            let Some(target) = self.target.field_with_name(&f.name).ok().cloned() else {
                continue;
            };
            let src_name = f.source.as_deref().unwrap_or(&f.name);
            let Some(src) = batch.column_by_name(src_name) else {
                return Err(PipelineError::Internal {
                    message: format!("source batch has no column `{src_name}`"),
                });
            };
            let mut bad = |row: usize, reason: RejectReason, message: String| {
                if keep[row] {
                    keep[row] = false;
                    rejects.push(Reject {
                        primary_key: self.key_of(batch, row),
                        column: src_name.to_string(),
                        reason,
                        value: short(to_json(src.as_ref(), row, None)),
                        message,
                    });
                }
            };
            let col = self.convert(f, src, target.data_type(), &mut bad)?;
            let col = self.fill_default(f, col)?;
            check(f, col.as_ref(), &mut bad);
            columns.push(col);
            // Nullable until rejected rows are filtered out; the engine checks its own schema.
            names.push(Arc::new(target.with_nullable(true)));
        }
        if self.plan.dynamic_field {
            columns.push(self.pack_dynamic(batch));
            names.push(Arc::new(ArrowField::new(
                etl_engine::schema::DYNAMIC_FIELD,
                DataType::Utf8,
                true,
            )));
        }
        let out = RecordBatch::try_new_with_options(
            Arc::new(datafusion::arrow::datatypes::Schema::new(names)),
            columns,
            &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
        )
        .map_err(|e| PipelineError::Internal {
            message: format!("mapped batch: {e}"),
        })?;
        if rejects.is_empty() {
            return Ok((out, rejects));
        }
        let mask = BooleanArray::from(keep);
        let kept = filter_record_batch(&out, &mask).map_err(|e| PipelineError::Internal {
            message: e.to_string(),
        })?;
        Ok((kept, rejects))
    }

    fn key_of(&self, batch: &RecordBatch, row: usize) -> Value {
        let cols: Vec<&String> = self.plan.source_key.iter().collect();
        let vals: Vec<Value> = cols
            .iter()
            .map(|c| {
                batch
                    .column_by_name(c)
                    .map_or(Value::Null, |a| to_json(a.as_ref(), row, None))
            })
            .collect();
        match vals.len() {
            0 => Value::Null,
            1 => vals.into_iter().next().unwrap_or(Value::Null),
            _ => Value::Object(cols.into_iter().cloned().zip(vals).collect()),
        }
    }

    fn convert(
        &self,
        f: &FieldPlan,
        src: &ArrayRef,
        want: &DataType,
        bad: &mut dyn FnMut(usize, RejectReason, String),
    ) -> Result<ArrayRef, PipelineError> {
        if src.data_type() == want {
            return Ok(src.clone());
        }
        match (src.data_type(), want) {
            // A vector column without a declared dimension: check each row's length.
            (DataType::List(_), DataType::FixedSizeList(item, dim)) => {
                let list = src.as_list::<i32>();
                let dim = *dim as usize;
                let mut values: Vec<ArrayRef> = Vec::with_capacity(list.len());
                let mut nulls = Vec::with_capacity(list.len());
                // Rows without a vector hold zeros under the NULL bit (the child is non-null).
                let zeros: ArrayRef = Arc::new(datafusion::arrow::array::Float32Array::from(vec![
                        0f32;
                        dim
                    ]));
                let zero = cast_with_options(&zeros, item.data_type(), &CastOptions::default())
                    .map_err(|e| PipelineError::Internal {
                        message: e.to_string(),
                    })?;
                for r in 0..list.len() {
                    if list.is_null(r) {
                        nulls.push(false);
                        values.push(zero.clone());
                    } else if list.value_length(r) as usize != dim {
                        bad(
                            r,
                            RejectReason::WrongDimension,
                            format!("{} dimensions, the field has {dim}", list.value_length(r)),
                        );
                        nulls.push(false);
                        values.push(zero.clone());
                    } else {
                        nulls.push(true);
                        values.push(list.value(r));
                    }
                }
                let refs: Vec<&dyn Array> = values.iter().map(|a| a.as_ref()).collect();
                let flat = if refs.is_empty() {
                    new_null_array(item.data_type(), 0)
                } else {
                    datafusion::arrow::compute::concat(&refs).map_err(|e| {
                        PipelineError::Internal {
                            message: e.to_string(),
                        }
                    })?
                };
                let flat = cast_with_options(&flat, item.data_type(), &CastOptions::default())
                    .map_err(|e| PipelineError::Internal {
                        message: e.to_string(),
                    })?;
                let fsl =
                    FixedSizeListArray::try_new(item.clone(), dim as i32, flat, Some(nulls.into()))
                        .map_err(|e| PipelineError::Internal {
                            message: e.to_string(),
                        })?;
                Ok(Arc::new(fsl))
            }
            // Sparse vectors: the reader's struct carries `dim`; the engine's does not.
            (DataType::Struct(_), DataType::Struct(fields)) => {
                let s = src.as_struct();
                let children: Vec<ArrayRef> = fields
                    .iter()
                    .map(|f| {
                        s.column_by_name(f.name())
                            .cloned()
                            .ok_or_else(|| PipelineError::Internal {
                                message: format!("sparse column has no `{}`", f.name()),
                            })
                    })
                    .collect::<Result<_, _>>()?;
                let children: Vec<ArrayRef> = children
                    .iter()
                    .zip(fields.iter())
                    .map(|(c, f)| cast_with_options(c, f.data_type(), &CastOptions::default()))
                    .collect::<Result<_, _>>()
                    .map_err(|e| PipelineError::Internal {
                        message: e.to_string(),
                    })?;
                Ok(Arc::new(
                    StructArray::try_new(fields.clone(), children, s.nulls().cloned()).map_err(
                        |e| PipelineError::Internal {
                            message: e.to_string(),
                        },
                    )?,
                ))
            }
            _ => {
                // Safe cast: a value the target cannot hold becomes NULL; report those rows.
                let out = cast_with_options(
                    src,
                    want,
                    &CastOptions {
                        safe: true,
                        ..Default::default()
                    },
                )
                .map_err(|e| PipelineError::Internal {
                    message: format!(
                        "cannot cast `{}` from {} to {want}: {e}",
                        f.name,
                        src.data_type()
                    ),
                })?;
                for r in 0..src.len() {
                    if src.is_valid(r) && out.is_null(r) {
                        bad(
                            r,
                            RejectReason::CannotConvert,
                            format!(
                                "not a valid {}",
                                f.data_type.map(|d| d.to_string()).unwrap_or_default()
                            ),
                        );
                    }
                }
                Ok(out)
            }
        }
    }

    fn fill_default(&self, f: &FieldPlan, col: ArrayRef) -> Result<ArrayRef, PipelineError> {
        let Some(default) = &f.default else {
            return Ok(col);
        };
        if col.null_count() == 0 {
            return Ok(col);
        }
        let text = match default {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let one = if let (Value::Array(xs), DataType::FixedSizeList(item, dim)) =
            (default, col.data_type())
        {
            default_vector(xs, item, *dim).map_err(|e| PipelineError::Internal {
                message: format!("default `{text}` for `{}`: {e}", f.name),
            })?
        } else {
            cast_with_options(
                &(Arc::new(StringArray::from(vec![text.clone()])) as ArrayRef),
                col.data_type(),
                &CastOptions::default(),
            )
            .map_err(|e| PipelineError::Internal {
                message: format!("default `{text}` for `{}`: {e}", f.name),
            })?
        };
        let idx = datafusion::arrow::array::UInt32Array::from(vec![0u32; col.len()]);
        let defaults = datafusion::arrow::compute::take(&one, &idx, None).map_err(|e| {
            PipelineError::Internal {
                message: e.to_string(),
            }
        })?;
        let is_null =
            datafusion::arrow::compute::is_null(&col).map_err(|e| PipelineError::Internal {
                message: e.to_string(),
            })?;
        datafusion::arrow::compute::kernels::zip::zip(&is_null, &defaults, &col).map_err(|e| {
            PipelineError::Internal {
                message: e.to_string(),
            }
        })
    }

    /// `$meta`: the dynamic fields of each row as one JSON object.
    fn pack_dynamic(&self, batch: &RecordBatch) -> ArrayRef {
        let dynamic: Vec<(&str, &ArrayRef)> = self
            .plan
            .fields
            .iter()
            .filter(|f| f.dynamic)
            .filter_map(|f| {
                let src = f.source.as_deref().unwrap_or(&f.name);
                batch.column_by_name(src).map(|c| (f.name.as_str(), c))
            })
            .collect();
        let json_fields: Vec<bool> = self
            .plan
            .fields
            .iter()
            .filter(|f| f.dynamic)
            .map(|f| f.data_type == Some(FieldType::Json))
            .collect();
        let rows: Vec<String> = (0..batch.num_rows())
            .map(|r| {
                let mut m = Map::new();
                for ((name, c), is_json) in dynamic.iter().zip(&json_fields) {
                    let t = if *is_json {
                        Some(FieldType::Json)
                    } else {
                        None
                    };
                    m.insert(name.to_string(), to_json(c.as_ref(), r, t));
                }
                Value::Object(m).to_string()
            })
            .collect();
        Arc::new(StringArray::from(rows))
    }

    /// The names of the columns `map` returns, in order (the auto ID is the engine's to fill).
    pub fn output_fields(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .plan
            .fields
            .iter()
            .filter(|f| read_from_source(f) && self.target.field_with_name(&f.name).is_ok())
            .map(|f| f.name.clone())
            .collect();
        if self.plan.dynamic_field {
            out.push(etl_engine::schema::DYNAMIC_FIELD.to_string());
        }
        out
    }

    /// The collection schema this mapper writes.
    pub fn schema(&self) -> &CollectionSchema {
        &self.schema
    }
}

/// A one-row vector column holding a mapping's `default:` vector, in the field's element type.
fn default_vector(
    xs: &[Value],
    item: &Arc<ArrowField>,
    dim: i32,
) -> Result<ArrayRef, datafusion::arrow::error::ArrowError> {
    let values: Vec<f32> = xs
        .iter()
        .map(|x| x.as_f64().unwrap_or(0.0) as f32)
        .collect();
    if values.len() != dim as usize {
        return Err(datafusion::arrow::error::ArrowError::InvalidArgumentError(
            format!("{} values for a vector of dimension {dim}", values.len()),
        ));
    }
    let values = cast_with_options(
        &(Arc::new(datafusion::arrow::array::Float32Array::from(values)) as ArrayRef),
        item.data_type(),
        &CastOptions::default(),
    )?;
    Ok(Arc::new(
        datafusion::arrow::array::FixedSizeListArray::try_new(item.clone(), dim, values, None)?,
    ))
}

/// Whether a planned field is a column of its own read from the source: not a dynamic field,
/// not the generated auto ID, and not `$meta` (packed from the dynamic fields).
fn read_from_source(f: &FieldPlan) -> bool {
    !f.dynamic && !f.auto_id && f.name != etl_engine::schema::DYNAMIC_FIELD
}

/// The limits of the target field; rows breaking them are rejected.
fn check(f: &FieldPlan, c: &dyn Array, bad: &mut dyn FnMut(usize, RejectReason, String)) {
    if !f.nullable {
        let skip = f.on_null == etl_mappings::OnNull::Skip;
        for r in 0..c.len() {
            if c.is_null(r) {
                if skip {
                    bad(
                        r,
                        RejectReason::NullSkipped,
                        format!("NULL `{}` skipped (on_null: skip)", f.name),
                    );
                } else {
                    bad(
                        r,
                        RejectReason::NullNotAllowed,
                        format!("NULL into non-nullable field `{}`", f.name),
                    );
                }
            }
        }
    }
    match c.data_type() {
        DataType::Utf8 if f.data_type == Some(FieldType::Varchar) => {
            let max = f.max_length.unwrap_or(u32::MAX) as usize;
            let s = c.as_string::<i32>();
            for r in 0..s.len() {
                if s.is_valid(r) && s.value(r).len() > max {
                    bad(
                        r,
                        RejectReason::TooLong,
                        format!("{} bytes, max_length is {max}", s.value(r).len()),
                    );
                }
            }
        }
        DataType::List(_) => {
            let l = c.as_list::<i32>();
            let cap = f.max_capacity.unwrap_or(u32::MAX) as i32;
            for r in 0..l.len() {
                if l.is_valid(r) && l.value_length(r) > cap {
                    bad(
                        r,
                        RejectReason::OverCapacity,
                        format!("{} elements, max_capacity is {cap}", l.value_length(r)),
                    );
                }
            }
            if let (Some(max), DataType::Utf8) = (f.max_length, l.values().data_type()) {
                for r in 0..l.len() {
                    if l.is_valid(r) {
                        let v = l.value(r);
                        let s = v.as_string::<i32>();
                        if let Some(i) = (0..s.len())
                            .find(|i| s.is_valid(*i) && s.value(*i).len() > max as usize)
                        {
                            bad(
                                r,
                                RejectReason::TooLong,
                                format!(
                                    "element {i} is {} bytes, max_length is {max}",
                                    s.value(i).len()
                                ),
                            );
                        }
                    }
                }
            }
        }
        DataType::FixedSizeList(_, dim) => {
            let l = c.as_fixed_size_list();
            let dim = (*dim as usize).max(1);
            let values = l.values();
            // Each bad element found from where the last one's row ends: a row is rejected once.
            let find = |from: usize| match values.data_type() {
                DataType::Float32 => etl_engine::vector::first_non_finite(
                    &values.as_primitive::<Float32Type>().values()[from..],
                ),
                DataType::Float16 => etl_engine::vector::first_non_finite_f16(
                    &values.as_primitive::<Float16Type>().values()[from..],
                ),
                _ => None,
            };
            let mut bad_at = Vec::new();
            let mut from = 0;
            while let Some(i) = find(from).map(|i| from + i) {
                bad_at.push(i);
                from = (i / dim + 1) * dim;
                if from >= values.len() {
                    break;
                }
            }
            for i in bad_at {
                let r = i / dim;
                if r < l.len() && l.is_valid(r) {
                    bad(
                        r,
                        RejectReason::NotFinite,
                        format!("element {} is NaN or infinite", i % dim),
                    );
                }
            }
        }
        _ => {}
    }
}

/// A value cut down for a message: long text and long arrays keep their head.
pub(crate) fn short(v: Value) -> Value {
    match &v {
        Value::String(s) if s.len() > 200 => {
            Value::String(format!("{}…", s.chars().take(200).collect::<String>()))
        }
        Value::Array(a) if a.len() > 16 => {
            let mut head: Vec<Value> = a[..16].to_vec();
            head.push(Value::String(format!("… {} elements", a.len())));
            Value::Array(head)
        }
        _ => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float32Array, Int64Array, ListArray};
    use datafusion::arrow::datatypes::Float32Type;
    use etl_mappings::{DataType as T, OnNull, PrimaryKey, QualifiedName};

    fn field(name: &str, t: T) -> FieldPlan {
        FieldPlan {
            name: name.into(),
            source: Some(name.into()),
            data_type: Some(t),
            ..FieldPlan::default()
        }
    }

    /// A table of `id` (key), `s` VARCHAR(4) and `v` FLOAT_VECTOR(2) read from an untyped
    /// vector column (a list), `v` set up by `vector`.
    fn mapper(vector: FieldPlan) -> Mapper {
        let plan = TablePlan {
            source: QualifiedName::new("public", "t"),
            collection: "t".into(),
            filter: None,
            fields: vec![
                FieldPlan {
                    primary_key: true,
                    ..field("id", T::Int64)
                },
                FieldPlan {
                    max_length: Some(4),
                    nullable: true,
                    ..field("s", T::Varchar)
                },
                vector,
            ],
            primary_key: PrimaryKey::Column {
                field: "id".into(),
                column: "id".into(),
            },
            source_key: vec!["id".into()],
            dynamic_field: false,
            shards: 1,
            max_rejects: 0,
            excluded: vec![],
            partitioned: false,
            estimated_rows: None,
            keeps_postgres_types: false,
            required_fixes: vec![],
            suggestions: vec![],
        };
        let schema = crate::schema::collection_schema(&plan);
        Mapper::new(plan, schema)
    }

    fn vector(on_null: OnNull, default: Option<Value>) -> FieldPlan {
        FieldPlan {
            dim: Some(2),
            on_null,
            default,
            ..field("v", T::FloatVector)
        }
    }

    /// Rows: a good one, a VARCHAR too long, a vector of another dimension, a NaN, a NULL vector.
    fn source() -> RecordBatch {
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5]));
        let s: ArrayRef = Arc::new(StringArray::from(vec!["ok", "toolong", "ok", "ok", "ok"]));
        let v: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Float32Type, _, _>(vec![
            Some(vec![Some(1.0), Some(2.0)]),
            Some(vec![Some(1.0), Some(2.0)]),
            Some(vec![Some(1.0), Some(2.0), Some(3.0)]),
            Some(vec![Some(f32::NAN), Some(2.0)]),
            None,
        ]));
        RecordBatch::try_from_iter(vec![("id", ids), ("s", s), ("v", v)]).unwrap()
    }

    /// (key, reason) of each reject, by key.
    fn reasons(rejects: &[Reject]) -> Vec<(Value, RejectReason)> {
        let mut out: Vec<_> = rejects
            .iter()
            .map(|r| (r.primary_key.clone(), r.reason))
            .collect();
        out.sort_by_key(|(k, _)| k.as_i64());
        out
    }

    #[test]
    fn rows_the_field_cannot_hold_are_rejected_with_their_reason() {
        let (out, rejects) = mapper(vector(OnNull::Reject, None)).map(&source()).unwrap();
        assert_eq!(out.num_rows(), 1);
        assert_eq!(
            reasons(&rejects),
            vec![
                (Value::from(2), RejectReason::TooLong),
                (Value::from(3), RejectReason::WrongDimension),
                (Value::from(4), RejectReason::NotFinite),
                (Value::from(5), RejectReason::NullNotAllowed),
            ]
        );
    }

    #[test]
    fn on_null_skip_and_a_default_vector_decide_what_a_null_becomes() {
        let (_, rejects) = mapper(vector(OnNull::Skip, None)).map(&source()).unwrap();
        assert!(reasons(&rejects).contains(&(Value::from(5), RejectReason::NullSkipped)));
        let (out, rejects) = mapper(vector(OnNull::Reject, Some(serde_json::json!([0.5, 0.25]))))
            .map(&source())
            .unwrap();
        assert!(!rejects.iter().any(|r| r.primary_key == 5));
        let ids = out
            .column_by_name("id")
            .unwrap()
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let row = (0..out.num_rows()).find(|&r| ids.value(r) == 5).unwrap();
        let v = out
            .column_by_name("v")
            .unwrap()
            .as_fixed_size_list()
            .value(row);
        let v = v.as_any().downcast_ref::<Float32Array>().unwrap();
        assert_eq!(v.values().to_vec(), vec![0.5, 0.25]);
    }
}
