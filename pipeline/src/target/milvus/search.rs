//! `etl search` against a Milvus server: the engine's [`SearchRequest`] sent as a Milvus
//! search, and the answer returned as the engine's [`Hit`]s with the engine's distances
//! (lower is nearer: L2 as the Euclidean distance, IP negated, COSINE as 1 − cosine, the
//! values pgvector's `<->`, `<#>` and `<=>` give), so the output is the same for either target.

use etl_connectors::milvus::MilvusClient;
use etl_connectors::milvus::proto::{FieldSchema, IdField};
use etl_engine::collection::{Hit, SearchRequest};
use etl_engine::{Field, FieldType, Metric, QueryVector};
use serde_json::{Map, Value};

use super::from_wire;
use crate::error::PipelineError;

fn usage(message: String) -> PipelineError {
    PipelineError::Usage { message }
}

fn engine_field(f: &FieldSchema) -> Option<Field> {
    let mut out = Field::new(f.name.clone(), from_wire(f.data_type)?);
    out.element_type = from_wire(f.element_type);
    out.dim = f
        .type_params
        .iter()
        .find(|kv| kv.key == "dim")
        .and_then(|kv| kv.value.parse().ok());
    Some(out)
}

/// Runs `req` on `collection`; one list of hits per query vector.
pub async fn search(
    client: &MilvusClient,
    collection: &str,
    req: &SearchRequest,
) -> Result<Vec<Vec<Hit>>, PipelineError> {
    if req.radius.is_some() || req.range_filter.is_some() {
        return Err(usage(
            "radius and range_filter are not passed to a Milvus target; search without them".into(),
        ));
    }
    let schema = client.describe_collection(collection).await?;
    let vectors: Vec<&FieldSchema> = schema
        .fields
        .iter()
        .filter(|f| from_wire(f.data_type).is_some_and(|t| t.is_vector()))
        .collect();
    let field = match &req.field {
        Some(name) => vectors
            .iter()
            .find(|f| &f.name == name)
            .copied()
            .ok_or_else(|| usage(format!("`{collection}` has no vector field `{name}`")))?,
        None => match vectors.as_slice() {
            [only] => *only,
            _ => {
                return Err(usage(format!(
                    "`{collection}` has several vector fields; name one with --field"
                )));
            }
        },
    };
    let metric = match req.metric {
        Some(m) => m.name().to_string(),
        None => client
            .describe_indexes(collection, &field.name)
            .await?
            .first()
            .and_then(|i| i.params.iter().find(|kv| kv.key == "metric_type"))
            .map(|kv| kv.value.clone())
            .ok_or_else(|| {
                usage(format!(
                    "`{collection}.{}` has no index to take the metric from; give --metric",
                    field.name
                ))
            })?,
    };
    let (kind, values) = query_bytes(field, &req.vectors)?;
    let mut params = serde_json::Map::new();
    if let Some(ef) = req.ef {
        params.insert("ef".into(), (ef.max(req.limit + req.offset)).into());
    }
    if let Some(n) = req.nprobe {
        params.insert("nprobe".into(), n.into());
    }
    let params = serde_json::Value::Object(params).to_string();
    let scalar_names: Vec<String> = schema
        .fields
        .iter()
        .filter(|f| !from_wire(f.data_type).is_some_and(|t| t.is_vector()))
        .map(|f| f.name.clone())
        .collect();
    let output: Vec<String> = req
        .output_fields
        .iter()
        .flat_map(|f| {
            if f == "*" {
                scalar_names.clone()
            } else {
                vec![f.clone()]
            }
        })
        .collect();
    let r = client
        .search_raw(
            collection,
            &field.name,
            kind,
            values,
            req.limit + req.offset,
            &metric,
            &params,
            req.filter.as_deref().unwrap_or(""),
            &output,
        )
        .await?;
    // The returned fields as JSON values, one per hit (all queries' hits in one run).
    let mut columns: Vec<(String, Vec<Value>)> = Vec::new();
    for d in &r.fields_data {
        let f = schema
            .fields
            .iter()
            .find(|f| f.name == d.field_name)
            .and_then(engine_field)
            .unwrap_or_else(|| Field::new(d.field_name.clone(), FieldType::Json));
        let a = super::read::to_arrow(d, &f)?;
        let values = (0..a.len())
            .map(|i| etl_engine::convert::to_json(a.as_ref(), i, Some(f.data_type)))
            .collect();
        columns.push((d.field_name.clone(), values));
    }
    let ids: Vec<Value> = match r.ids.and_then(|i| i.id_field) {
        Some(IdField::Int(l)) => l.data.into_iter().map(Value::from).collect(),
        Some(IdField::Str(s)) => s.data.into_iter().map(Value::from).collect(),
        None => Vec::new(),
    };
    let m = Metric::parse(&metric);
    let mut out = Vec::with_capacity(req.vectors.len());
    let mut at = 0usize;
    for k in &r.topks {
        let k = (*k).max(0) as usize;
        let mut hits = Vec::with_capacity(k);
        for i in at..at + k {
            let score = r.scores.get(i).copied().unwrap_or(f32::NAN);
            let distance = match m {
                Some(Metric::L2) => score.max(0.0).sqrt(),
                Some(Metric::Ip) => -score,
                Some(Metric::Cosine) => 1.0 - score,
                _ => score,
            };
            let mut fields = Map::new();
            for (name, values) in &columns {
                if let Some(v) = values.get(i) {
                    fields.insert(name.clone(), v.clone());
                }
            }
            hits.push(Hit {
                id: ids.get(i).cloned().unwrap_or(Value::Null),
                distance,
                fields,
            });
        }
        at += k;
        out.push(hits.into_iter().skip(req.offset).collect());
    }
    Ok(out)
}

/// The query vectors as the server's bytes for `field`'s type, parsed and checked (dimension,
/// finite values, bits) as the engine's own search parses them.
fn query_bytes(
    field: &FieldSchema,
    vectors: &[Value],
) -> Result<(i32, Vec<Vec<u8>>), PipelineError> {
    let f = engine_field(field).ok_or_else(|| {
        usage(format!(
            "`{}` has a type this search does not know",
            field.name
        ))
    })?;
    let mut out = Vec::with_capacity(vectors.len());
    for v in vectors {
        let bytes = match (f.data_type, QueryVector::from_json(&f, v)?) {
            (FieldType::FloatVector, QueryVector::Dense(xs)) => {
                xs.iter().flat_map(|x| x.to_le_bytes()).collect()
            }
            (FieldType::BinaryVector, QueryVector::Binary(b)) => b,
            _ => {
                return Err(usage(format!(
                    "query vector {v}: searching a {} field on Milvus is not supported here",
                    f.data_type
                )));
            }
        };
        out.push(bytes);
    }
    Ok((field.data_type, out))
}
