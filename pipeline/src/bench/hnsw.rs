//! `etl bench hnsw`: the engine's HNSW on a fixed data set, measured the way the anchors
//! (pgvector, hnswlib, faiss) are measured by `scripts/bench-hnsw`: build time, time to open
//! and load the built index, recall@k against exact neighbours, and queries per second one
//! query at a time on one thread and in batches on every core, for each `ef`.
//!
//! Inputs are raw little-endian files so any tool can write them: base and query vectors as
//! f32 rows of `dim`, exact neighbours as u32 rows of `k` (row numbers into the base file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{FixedSizeListArray, Float32Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field as ArrowField};
use etl_engine::{
    CollectionSchema, Database, Field, FieldType, HnswParams, IndexSpec, IndexType, Metric,
    QueryVector, SearchRequest,
};
use rayon::prelude::*;
use serde::Serialize;

use crate::error::PipelineError;

/// What to measure.
#[derive(Debug, Clone)]
pub struct HnswBenchOptions {
    /// Base vectors (f32 LE rows).
    pub base: PathBuf,
    /// Query vectors (f32 LE rows).
    pub queries: PathBuf,
    /// Exact neighbours (u32 LE rows of `k`).
    pub truth: PathBuf,
    /// Dimension.
    pub dim: usize,
    /// Metric.
    pub metric: Metric,
    /// The graph built: HNSW or HNSW_SQ.
    pub index: IndexType,
    /// HNSW M.
    pub m: u32,
    /// HNSW efConstruction.
    pub ef_construction: u32,
    /// Search breadths to sweep.
    pub efs: Vec<usize>,
    /// Neighbours per query.
    pub k: usize,
    /// Where the collection is written (emptied first).
    pub work_dir: PathBuf,
}

/// What to measure on a collection `etl run` loaded: the product's own segments and graphs.
#[derive(Debug, Clone)]
pub struct CollectionBenchOptions {
    /// The engine's target directory.
    pub target: PathBuf,
    /// The collection.
    pub collection: String,
    /// The vector field (the only one when `None`).
    pub field: Option<String>,
    /// Query vectors (f32 LE rows); `None`: `sample` rows of the collection itself.
    pub queries: Option<PathBuf>,
    /// Rows sampled as queries when no query file is given.
    pub sample: usize,
    /// Search breadths to sweep.
    pub efs: Vec<usize>,
    /// Neighbours per query.
    pub k: usize,
}

/// One point of the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    /// Search breadth.
    pub ef: usize,
    /// Threads searching.
    pub threads: usize,
    /// Mean recall@k.
    pub recall: f64,
    /// Queries per second.
    pub qps: f64,
}

/// The result (JSON keys are read by `scripts/bench-hnsw`).
#[derive(Debug, Clone, Serialize)]
pub struct HnswBench {
    /// Base rows.
    pub rows: usize,
    /// Segments searched (each with its own graph).
    pub segments: usize,
    /// Dimension.
    pub dim: usize,
    /// Seconds writing the rows into a collection (not part of the build).
    pub write_seconds: f64,
    /// Seconds building the index.
    pub build_seconds: f64,
    /// Seconds opening the collection and loading the built index.
    pub load_seconds: f64,
    /// Index files on disk.
    pub index_bytes: u64,
    /// Bytes the loaded indexes hold in memory (HNSW_SQ: without the rows only re-ranking
    /// reads).
    pub index_memory_bytes: u64,
    /// Peak resident memory of the process, MB.
    pub peak_rss_mb: f64,
    /// The sweep.
    pub points: Vec<SweepPoint>,
}

fn read_raw(path: &Path) -> Result<Vec<u8>, PipelineError> {
    Ok(fs_err::read(path)?)
}

fn f32_rows(path: &Path, dim: usize) -> Result<Vec<f32>, PipelineError> {
    let bytes = read_raw(path)?;
    if dim == 0 || bytes.len() % (4 * dim) != 0 {
        return Err(PipelineError::Usage {
            message: format!(
                "{}: {} bytes is not a whole number of {dim}-d f32 rows",
                path.display(),
                bytes.len()
            ),
        });
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn u32_rows(path: &Path) -> Result<Vec<u32>, PipelineError> {
    let bytes = read_raw(path)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs the benchmark.
pub fn bench_hnsw(o: &HnswBenchOptions) -> Result<HnswBench, PipelineError> {
    let base = f32_rows(&o.base, o.dim)?;
    let queries = f32_rows(&o.queries, o.dim)?;
    let truth = u32_rows(&o.truth)?;
    let rows = base.len() / o.dim;
    let nq = queries.len() / o.dim;
    if truth.len() != nq * o.k {
        return Err(PipelineError::Usage {
            message: format!(
                "{}: want {nq} rows of {} neighbours",
                o.truth.display(),
                o.k
            ),
        });
    }
    if o.work_dir.exists() {
        fs_err::remove_dir_all(&o.work_dir)?;
    }
    let schema = CollectionSchema {
        fields: vec![
            Field {
                primary_key: true,
                ..Field::new("id", FieldType::Int64)
            },
            Field {
                dim: Some(o.dim as u32),
                ..Field::new("v", FieldType::FloatVector)
            },
        ],
        auto_id: false,
        dynamic_field: false,
        shards: 1,
        description: "etl bench hnsw".into(),
    };
    let db = Database::open(&o.work_dir)?;
    let c = db.create_collection("bench", schema.clone())?;
    let started = Instant::now();
    let mut w = c.writer()?;
    let item = Arc::new(ArrowField::new("item", DataType::Float32, false));
    for start in (0..rows).step_by(50_000) {
        let end = (start + 50_000).min(rows);
        let ids = Int64Array::from((start as i64..end as i64).collect::<Vec<_>>());
        let vals = Float32Array::from(base[start * o.dim..end * o.dim].to_vec());
        let batch = RecordBatch::try_new(
            schema.arrow_schema(),
            vec![
                Arc::new(ids),
                Arc::new(
                    FixedSizeListArray::try_new(item.clone(), o.dim as i32, Arc::new(vals), None)
                        .map_err(internal)?,
                ),
            ],
        )
        .map_err(internal)?;
        w.write(&batch)?;
    }
    w.commit(BTreeMap::new())?;
    let write_seconds = started.elapsed().as_secs_f64();
    drop(base);
    let spec = IndexSpec {
        ivf: None,
        index_type: o.index,
        metric: Some(o.metric),
        hnsw: Some(HnswParams {
            m: o.m,
            ef_construction: o.ef_construction,
        }),
    };
    let build_seconds = c.create_index("v", spec, &|_| {})?;
    drop(c);
    drop(db);
    let qvs: Vec<QueryVector> = queries
        .chunks_exact(o.dim)
        .map(|q| QueryVector::Dense(q.to_vec()))
        .collect();
    let truth: Vec<Vec<String>> = truth
        .chunks_exact(o.k)
        .map(|t| t.iter().map(|id| id.to_string()).collect())
        .collect();
    let mut out = measure(&o.work_dir, "bench", "v", &qvs, &truth, &o.efs, o.k)?;
    out.write_seconds = write_seconds;
    out.build_seconds = build_seconds;
    Ok(out)
}

/// Measures a collection `etl run` loaded, as it is: its segments, its graphs, its search path.
/// Exact neighbours are found by scanning the collection's vectors; build seconds are those the
/// manifest recorded for the field's index.
pub fn bench_collection(o: &CollectionBenchOptions) -> Result<HnswBench, PipelineError> {
    let db = Database::open_existing(&o.target)?;
    let c = db.collection(&o.collection)?;
    let field = c.vector_field(o.field.as_deref())?.clone();
    let spec = c.manifest().indexes.get(&field.name).copied();
    let metric = spec.map_or(Metric::default_for(field.data_type), |s| s.metric());
    let pk = c.schema().primary_key().clone();
    let cols = [
        c.schema().fields.iter().position(|f| f.name == pk.name),
        c.schema().fields.iter().position(|f| f.name == field.name),
    ];
    let [Some(pk_col), Some(v_col)] = cols else {
        return Err(internal("the collection lacks its key or vector column"));
    };
    // Every live row's key and vector, segment by segment.
    let mut keys: Vec<String> = Vec::new();
    let mut vectors: Vec<etl_engine::vector::VectorData> = Vec::new();
    for seg in c.scan() {
        for b in seg.batches(Some(&[pk_col, v_col]))? {
            let b = b?;
            for r in 0..b.num_rows() {
                keys.push(etl_engine::convert::to_json(b.column(0).as_ref(), r, None).to_string());
            }
            vectors.push(etl_engine::vector::VectorData::from_array(
                b.column(1).as_ref(),
            )?);
        }
    }
    let data = etl_engine::vector::VectorData::concat(vectors)?;
    let qvs: Vec<QueryVector> = match &o.queries {
        Some(path) => f32_rows(path, field.dim_usize())?
            .chunks_exact(field.dim_usize())
            .map(|q| QueryVector::Dense(q.to_vec()))
            .collect(),
        None => {
            let step = (data.len() / o.sample.max(1)).max(1);
            (0..data.len())
                .step_by(step)
                .take(o.sample)
                .filter_map(|r| query_of(&data, r))
                .collect()
        }
    };
    let truth: Vec<Vec<String>> = qvs
        .par_iter()
        .map(|q| {
            etl_engine::index::exact_search(&data, metric, q, o.k, None)
                .into_iter()
                .map(|(r, _)| keys[r as usize].clone())
                .collect()
        })
        .collect();
    drop(data);
    let build_seconds = c
        .manifest()
        .segments
        .iter()
        .filter_map(|s| s.indexes.get(&field.name))
        .map(|ix| ix.build_seconds)
        .sum();
    drop(c);
    drop(db);
    let mut out = measure(
        &o.target,
        &o.collection,
        &field.name,
        &qvs,
        &truth,
        &o.efs,
        o.k,
    )?;
    out.build_seconds = build_seconds;
    Ok(out)
}

fn query_of(data: &etl_engine::vector::VectorData, r: usize) -> Option<QueryVector> {
    match data.row_json(r) {
        serde_json::Value::Array(a) => Some(QueryVector::Dense(
            a.iter()
                .filter_map(|x| x.as_f64().map(|f| f as f32))
                .collect(),
        )),
        serde_json::Value::String(bits) => Some(QueryVector::Binary(
            etl_engine::vector::pack_bits(&bits.chars().map(|c| c == '1').collect::<Vec<_>>()),
        )),
        _ => None,
    }
}

/// Opens the collection afresh (as a new process would), loads it, and sweeps `efs`: one query
/// at a time on one thread, then the queries as one batch on every core. `truth` holds each
/// query's exact neighbours as primary-key JSON text.
fn measure(
    dir: &Path,
    name: &str,
    field: &str,
    qvs: &[QueryVector],
    truth: &[Vec<String>],
    efs: &[usize],
    k: usize,
) -> Result<HnswBench, PipelineError> {
    let nq = qvs.len();
    let started = Instant::now();
    let c = Database::open(dir)?.collection(name)?;
    let loaded = c.load()?;
    let load_seconds = started.elapsed().as_secs_f64();
    let m = c.manifest();
    let index_bytes = m
        .segments
        .iter()
        .flat_map(|s| s.indexes.get(field))
        .flat_map(|ix| ix.files.iter())
        .map(|f| std::fs::metadata(c.dir().join(f)).map_or(0, |m| m.len()))
        .sum();
    let (rows, segments) = (m.live_rows() as usize, m.segments.len());
    let index_memory_bytes = loaded.index_memory_bytes(field) as u64;
    drop(loaded);
    let recall_of = |hits: &[Vec<etl_engine::Hit>]| -> f64 {
        let mut found = 0usize;
        for (qi, h) in hits.iter().enumerate() {
            let want = &truth[qi];
            found += h
                .iter()
                .filter(|x| want.contains(&x.id.to_string()))
                .count();
        }
        found as f64 / (nq * k).max(1) as f64
    };
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(internal)?;
    let all_threads = rayon::current_num_threads();
    // Warm-up: page in the graph and start the thread pools before anything is timed.
    let warm = SearchRequest {
        field: Some(field.into()),
        limit: k,
        ..SearchRequest::default()
    };
    c.search_vectors(field, qvs, &warm)?;
    one.install(|| c.search_vectors(field, &qvs[..qvs.len().min(100)], &warm))?;
    let mut points = Vec::new();
    for &ef in efs {
        let req = SearchRequest {
            field: Some(field.into()),
            limit: k,
            ef: Some(ef),
            ..SearchRequest::default()
        };
        // One query at a time on one thread, as a client issuing queries in sequence.
        let (hits, secs) = one.install(|| -> Result<_, PipelineError> {
            let t = Instant::now();
            let mut out = Vec::with_capacity(nq);
            for q in qvs {
                out.extend(c.search_vectors(field, std::slice::from_ref(q), &req)?);
            }
            Ok((out, t.elapsed().as_secs_f64()))
        })?;
        points.push(SweepPoint {
            ef,
            threads: 1,
            recall: recall_of(&hits),
            qps: nq as f64 / secs,
        });
        // Every core: the queries as one batch.
        let t = Instant::now();
        let hits = c.search_vectors(field, qvs, &req)?;
        let secs = t.elapsed().as_secs_f64();
        points.push(SweepPoint {
            ef,
            threads: all_threads,
            recall: recall_of(&hits),
            qps: nq as f64 / secs,
        });
    }
    Ok(HnswBench {
        rows,
        segments,
        dim: c
            .schema()
            .field(field)
            .map_or(0, etl_engine::Field::dim_usize),
        write_seconds: 0.0,
        build_seconds: 0.0,
        load_seconds,
        index_bytes,
        index_memory_bytes,
        peak_rss_mb: peak_rss_mb(),
        points,
    })
}

fn internal(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Internal {
        message: e.to_string(),
    }
}
