//! Search, query, get and count over a loaded collection.
//!
//! A filtered search returns `limit` hits whenever that many rows pass: each segment asks its
//! index with the filter applied inside the graph walk, and falls back to exact search when
//! few rows pass or the index comes back short.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, UInt32Array, new_empty_array};
use arrow::compute::{concat, take};
use rayon::prelude::*;
use serde_json::{Map, Value};

use super::Collection;
use super::loaded::{LoadedCollection, LoadedSegment};
use crate::convert::to_json;
use crate::error::{EngineError, Result};
use crate::filter::{self, Columns, Expr, Literal, Operand};
use crate::index::{RowHit, SearchParams, cmp_distance, exact_search};
use crate::schema::{DYNAMIC_FIELD, Field, FieldType};
use crate::vector::{Metric, QueryVector};

/// A similarity search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// The vector field; may be omitted when the collection has one.
    pub field: Option<String>,
    /// Query vectors as JSON (see [`QueryVector::from_json`]).
    pub vectors: Vec<Value>,
    /// Hits per query.
    pub limit: usize,
    /// Hits to skip.
    pub offset: usize,
    /// Must match the index's metric when the field is indexed.
    pub metric: Option<Metric>,
    /// HNSW search breadth (default: max(limit + offset, 64)).
    pub ef: Option<usize>,
    /// IVF lists to scan (default: the index's `nprobe`).
    pub nprobe: Option<usize>,
    /// Range search: only hits with distance < radius.
    pub radius: Option<f32>,
    /// Range search: only hits with distance >= range_filter.
    pub range_filter: Option<f32>,
    /// A Milvus filter expression.
    pub filter: Option<String>,
    /// Fields to return with each hit (`*` for every scalar field).
    pub output_fields: Vec<String>,
}

impl Default for SearchRequest {
    fn default() -> Self {
        SearchRequest {
            field: None,
            vectors: Vec::new(),
            limit: 10,
            offset: 0,
            metric: None,
            ef: None,
            nprobe: None,
            radius: None,
            range_filter: None,
            filter: None,
            output_fields: Vec::new(),
        }
    }
}

/// One hit: the primary key, the pgvector distance and the output fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Primary key value.
    pub id: Value,
    /// Distance (smaller is nearer).
    pub distance: f32,
    /// Requested output fields.
    pub fields: Map<String, Value>,
}

impl Hit {
    /// `{"id": …, "distance": …, "<field>": …}`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), self.id.clone());
        m.insert(
            "distance".into(),
            serde_json::Number::from_f64(f64::from(self.distance))
                .map_or(Value::Null, Value::Number),
        );
        for (k, v) in &self.fields {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(m)
    }
}

/// A query: the rows a filter admits.
#[derive(Debug, Clone, Default)]
pub struct QueryRequest {
    /// A Milvus filter expression; `None` admits every row.
    pub filter: Option<String>,
    /// Fields to return (`*` for every field); the primary key is always returned.
    pub output_fields: Vec<String>,
    /// Most rows to return.
    pub limit: Option<usize>,
    /// Rows to skip.
    pub offset: usize,
}

/// Where a hit lives before it is materialized.
#[derive(Clone, Copy)]
struct Found {
    segment: usize,
    row: u32,
    distance: f32,
}

impl Collection {
    /// The vector field a request names, or the only one.
    pub fn vector_field(&self, name: Option<&str>) -> Result<&Field> {
        let schema = self.schema();
        match name {
            Some(n) => {
                let f = schema.field_or_err(self.name(), n)?;
                if !f.data_type.is_vector() {
                    return Err(EngineError::InvalidRequest(format!(
                        "`{n}` is {}, not a vector field",
                        f.data_type
                    )));
                }
                Ok(f)
            }
            None => {
                let vs: Vec<&Field> = schema.vector_fields().collect();
                match vs.as_slice() {
                    [one] => Ok(one),
                    [] => Err(EngineError::InvalidRequest(format!(
                        "collection `{}` has no vector field, so it cannot be searched by similarity; filter and query it instead (`etl query`)",
                        self.name()
                    ))),
                    _ => Err(EngineError::InvalidRequest(format!(
                        "collection `{}` has several vector fields ({}); name one with --field",
                        self.name(),
                        vs.iter()
                            .map(|f| f.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))),
                }
            }
        }
    }

    /// Parses and checks a filter against this collection's schema.
    pub fn parse_filter(&self, expr: &str) -> Result<Expr> {
        filter::parse(expr, self.schema())
    }

    /// Similarity search; one hit list per query vector, nearest first.
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<Vec<Hit>>> {
        let field = self.vector_field(req.field.as_deref())?.clone();
        let queries: Vec<QueryVector> = req
            .vectors
            .iter()
            .map(|v| QueryVector::from_json(&field, v))
            .collect::<Result<_>>()?;
        self.search_vectors(&field.name, &queries, req)
    }

    /// Similarity search with parsed query vectors.
    pub fn search_vectors(
        &self,
        field: &str,
        queries: &[QueryVector],
        req: &SearchRequest,
    ) -> Result<Vec<Vec<Hit>>> {
        let outputs = self.output_fields(&req.output_fields)?;
        let (data, found) = self.find(field, queries, req)?;
        found
            .into_iter()
            .map(|hits| {
                hits.into_iter()
                    .map(|f| materialize(&data, self, f, &outputs))
                    .collect()
            })
            .collect()
    }

    /// Similarity search for one query, returning the hits as Arrow: the columns of
    /// `projection` (indices into the schema) and the distances, nearest first. SQL's index
    /// search reads this.
    pub fn search_batch(
        &self,
        field: &str,
        query: &QueryVector,
        req: &SearchRequest,
        projection: &[usize],
    ) -> Result<(RecordBatch, Vec<f32>)> {
        let (data, mut found) = self.find(field, std::slice::from_ref(query), req)?;
        let hits = found.pop().unwrap_or_default();
        let schema = self.schema();
        let full = schema.arrow_schema();
        let out_schema = Arc::new(full.project(projection)?);
        let mut columns = Vec::with_capacity(projection.len());
        for &i in projection {
            let f = schema.fields.get(i).ok_or_else(|| {
                EngineError::InvalidRequest(format!("column {i} is out of range"))
            })?;
            let dt = full.field(i).data_type();
            let mut parts: Vec<ArrayRef> = Vec::with_capacity(hits.len());
            for h in &hits {
                let seg = &data.segments[h.segment];
                let part = if f.data_type.is_vector() {
                    seg.vector_data(&f.name)?.take_arrow(&[h.row], dt)?
                } else {
                    let c = seg.column(&f.name).ok_or_else(|| {
                        EngineError::InvalidRequest(format!("`{}` is not loaded", f.name))
                    })?;
                    take(c.as_ref(), &UInt32Array::from(vec![h.row]), None)?
                };
                parts.push(part);
            }
            let col = if parts.is_empty() {
                new_empty_array(dt)
            } else {
                concat(&parts.iter().map(|p| p.as_ref()).collect::<Vec<_>>())?
            };
            columns.push(col);
        }
        let batch = RecordBatch::try_new_with_options(
            out_schema,
            columns,
            &RecordBatchOptions::new().with_row_count(Some(hits.len())),
        )?;
        Ok((batch, hits.iter().map(|h| h.distance).collect()))
    }

    /// The hits of each query, located (segment, row) but not materialized.
    fn find(
        &self,
        field: &str,
        queries: &[QueryVector],
        req: &SearchRequest,
    ) -> Result<(Arc<LoadedCollection>, Vec<Vec<Found>>)> {
        let field = self.vector_field(Some(field))?.clone();
        let expr = req
            .filter
            .as_deref()
            .map(|f| self.parse_filter(f))
            .transpose()?;
        let data = self.ensure_loaded()?;
        let index_metric = data
            .manifest
            .indexes
            .get(&field.name)
            .and_then(|s| s.metric);
        let metric = match (req.metric, index_metric) {
            (Some(m), Some(ix)) if m != ix => {
                return Err(EngineError::InvalidRequest(format!(
                    "`{}` is indexed with {ix}; search with that metric (or rebuild the index)",
                    field.name
                )));
            }
            (Some(m), _) => m,
            (None, Some(ix)) => ix,
            (None, None) => Metric::default_for(field.data_type),
        };
        if !metric.supported_by(field.data_type) {
            return Err(EngineError::InvalidRequest(format!(
                "metric {metric} does not apply to {} `{}`",
                field.data_type, field.name
            )));
        }
        let k = req.offset + req.limit;
        let ef = req.ef.unwrap_or(64).max(k);
        // Per segment: rows admitted by deletes and filter, and how many.
        // Without a filter the live mask is the segment's own: no copy per query.
        let masks: Vec<(std::borrow::Cow<'_, [bool]>, usize)> = data
            .segments
            .par_iter()
            .map(|s| match &expr {
                None => (std::borrow::Cow::Borrowed(s.live.as_slice()), s.live_count),
                Some(e) => {
                    let mut m = s.live.clone();
                    for (slot, pass) in m.iter_mut().zip(filter::evaluate(e, s)) {
                        *slot &= pass;
                    }
                    let n = m.iter().filter(|b| **b).count();
                    (std::borrow::Cow::Owned(m), n)
                }
            })
            .collect();
        let per_query = |q: &QueryVector| -> Result<Vec<Found>> {
            let mut found: Vec<Found> = Vec::new();
            for (si, seg) in data.segments.iter().enumerate() {
                let (mask, passing) = (&masks[si].0, masks[si].1);
                if passing == 0 {
                    continue;
                }
                let params = SearchParams {
                    ef,
                    nprobe: req.nprobe,
                };
                let hits = segment_search(
                    seg,
                    &field,
                    metric,
                    q,
                    k,
                    &params,
                    mask,
                    passing,
                    expr.is_some(),
                )?;
                found.extend(hits.into_iter().map(|(row, distance)| Found {
                    segment: si,
                    row,
                    distance,
                }));
            }
            found.sort_by(|a, b| {
                cmp_distance(a.distance, b.distance)
                    .then(a.segment.cmp(&b.segment))
                    .then(a.row.cmp(&b.row))
            });
            let in_range = |d: f32| {
                req.radius.is_none_or(|r| d < r) && req.range_filter.is_none_or(|lo| d >= lo)
            };
            Ok(found
                .into_iter()
                .filter(|f| in_range(f.distance))
                .skip(req.offset)
                .take(req.limit)
                .collect())
        };
        let found = queries
            .par_iter()
            .map(per_query)
            .collect::<Result<Vec<_>>>()?;
        Ok((data, found))
    }

    /// Rows a filter admits, with their output fields.
    pub fn query(&self, req: &QueryRequest) -> Result<Vec<Map<String, Value>>> {
        let expr = req
            .filter
            .as_deref()
            .map(|f| self.parse_filter(f))
            .transpose()?;
        self.query_expr(expr.as_ref(), &req.output_fields, req.limit, req.offset)
    }

    fn query_expr(
        &self,
        expr: Option<&Expr>,
        output_fields: &[String],
        limit: Option<usize>,
        offset: usize,
    ) -> Result<Vec<Map<String, Value>>> {
        let outputs = self.output_fields(output_fields)?;
        let data = self.ensure_loaded()?;
        let mut out = Vec::new();
        let mut skipped = 0;
        for (si, seg) in data.segments.iter().enumerate() {
            let pass = expr.map(|e| filter::evaluate(e, seg));
            for r in 0..seg.rows() {
                if !seg.live[r] || pass.as_ref().is_some_and(|p| !p[r]) {
                    continue;
                }
                if skipped < offset {
                    skipped += 1;
                    continue;
                }
                if limit.is_some_and(|l| out.len() >= l) {
                    return Ok(out);
                }
                let hit = materialize(
                    &data,
                    self,
                    Found {
                        segment: si,
                        row: r as u32,
                        distance: 0.0,
                    },
                    &outputs,
                )?;
                let mut m = Map::new();
                m.insert(self.schema().primary_key().name.clone(), hit.id);
                m.extend(hit.fields);
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Rows by primary key.
    pub fn get(&self, ids: &[Value], output_fields: &[String]) -> Result<Vec<Map<String, Value>>> {
        let pk = self.schema().primary_key();
        let list = ids
            .iter()
            .map(|v| {
                match (pk.data_type, v) {
                    (FieldType::Int64, Value::Number(n)) => n.as_i64().map(Literal::Int),
                    (FieldType::Varchar, Value::String(s)) => Some(Literal::Str(s.clone())),
                    _ => None,
                }
                .ok_or_else(|| {
                    EngineError::InvalidRequest(format!(
                        "`{v}` is not a valid {} primary key",
                        pk.data_type
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let expr = Expr::In(
            Operand::Field {
                name: pk.name.clone(),
                path: Vec::new(),
            },
            list,
            false,
        );
        self.query_expr(Some(&expr), output_fields, None, 0)
    }

    /// Rows a filter admits (all live rows without one).
    pub fn count(&self, filter: Option<&str>) -> Result<u64> {
        let Some(f) = filter else {
            return Ok(self.count_rows());
        };
        let expr = self.parse_filter(f)?;
        let data = self.ensure_loaded()?;
        Ok(data
            .segments
            .par_iter()
            .map(|s| {
                filter::evaluate(&expr, s)
                    .iter()
                    .zip(&s.live)
                    .filter(|(p, l)| **p && **l)
                    .count() as u64
            })
            .sum())
    }

    /// The fields to return; a name that is no field is a dynamic key (Milvus' rule) when the
    /// collection has `$meta`.
    fn output_fields(&self, names: &[String]) -> Result<Outputs> {
        let schema = self.schema();
        let mut out = Outputs::default();
        let mut all_keys = false;
        for n in names {
            if n == "*" {
                all_keys = true;
                out.fields.extend(
                    schema
                        .fields
                        .iter()
                        .filter(|f| !f.data_type.is_vector() && !f.primary_key)
                        .cloned(),
                );
            } else if schema.field(n).is_none()
                && schema.dynamic_field
                && let Some(meta) = schema.field(DYNAMIC_FIELD)
            {
                out.fields.push(meta.clone());
                out.keys.push(n.clone());
            } else {
                let f = schema.field_or_err(self.name(), n)?;
                all_keys |= f.name == DYNAMIC_FIELD;
                if !f.primary_key {
                    out.fields.push(f.clone());
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        out.fields.retain(|f| seen.insert(f.name.clone()));
        if all_keys {
            out.keys.clear();
        }
        Ok(out)
    }
}

/// What a hit returns: fields, and when only some dynamic keys were asked for, those keys.
#[derive(Debug, Default)]
struct Outputs {
    fields: Vec<Field>,
    /// Dynamic keys to return; empty: every key (when `$meta` or `*` was asked for).
    keys: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
fn segment_search(
    seg: &LoadedSegment,
    field: &Field,
    metric: Metric,
    q: &QueryVector,
    k: usize,
    params: &SearchParams,
    mask: &[bool],
    passing: usize,
    filtered: bool,
) -> Result<Vec<RowHit>> {
    let slot = seg.vectors.get(&field.name);
    let allow_all = passing == seg.rows();
    let allow = |r: u32| mask.get(r as usize).copied().unwrap_or(false);
    let allow_ref: Option<&(dyn Fn(u32) -> bool + Sync)> =
        if allow_all { None } else { Some(&allow) };
    let exact = || -> Result<Vec<RowHit>> {
        Ok(exact_search(
            seg.vector_data(&field.name)?,
            metric,
            q,
            k,
            allow_ref,
        ))
    };
    let Some(index) = slot.and_then(|s| s.index.as_ref()) else {
        return exact();
    };
    let ef = params.ef;
    let graph = slot
        .and_then(|s| s.spec)
        .is_some_and(|s| s.index_type.is_graph());
    // A selective filter leaves the graph walk few admitted nodes, and an `ef` that covers
    // most of the segment visits most of it anyway: scan the rows instead (as knowhere does).
    if graph
        && (ef.max(k) * 2 >= passing
            || (filtered && (passing <= ef.max(k) * 4 || passing * 20 < seg.rows())))
    {
        return exact();
    }
    let hits = index.search(q, k, params, allow_ref);
    let approximate = slot
        .and_then(|s| s.spec)
        .is_some_and(|s| s.index_type.is_approximate());
    if hits.len() < k.min(passing) && approximate {
        return exact();
    }
    Ok(hits)
}

fn materialize(
    data: &Arc<LoadedCollection>,
    coll: &Collection,
    f: Found,
    outputs: &Outputs,
) -> Result<Hit> {
    let seg = &data.segments[f.segment];
    let r = f.row as usize;
    let pk = coll.schema().primary_key();
    let id = seg
        .column(&pk.name)
        .map_or(Value::Null, |c| to_json(c.as_ref(), r, Some(pk.data_type)));
    let mut fields = Map::new();
    for o in &outputs.fields {
        let v = if o.data_type.is_vector() {
            // Read from the segment once, then kept with the loaded segment.
            seg.vector_data(&o.name)?.row_json(r)
        } else {
            seg.column(&o.name)
                .map_or(Value::Null, |c| to_json(c.as_ref(), r, Some(o.data_type)))
        };
        if o.name == DYNAMIC_FIELD
            && let Value::Object(m) = v
        {
            // Dynamic keys are returned as if they were fields.
            for (k, v) in m {
                if outputs.keys.is_empty() || outputs.keys.contains(&k) {
                    fields.entry(k).or_insert(v);
                }
            }
            continue;
        }
        fields.insert(o.name.clone(), v);
    }
    Ok(Hit {
        id,
        distance: f.distance,
        fields,
    })
}
