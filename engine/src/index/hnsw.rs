//! HNSW through hnsw_rs.
//!
//! hnsw_rs needs non-negative distances and persists through `file_dump` / `HnswIo`, whose
//! loaded graph borrows the loader; [`self_cell`] keeps both in one value. Metrics map onto
//! non-negative distances that order rows as pgvector does:
//! - L2: the Euclidean distance itself;
//! - COSINE: vectors normalized at insert, `1 − a·b`;
//! - IP: `C − a·b` with `C` above every product the index can see. Build-time products are
//!   bounded by the largest norm squared; a query is rescaled to that norm, which keeps its
//!   ranking, so `C = max‖x‖² · (1 + 1e-4)` bounds those too.
//!
//! Hits are re-scored with the exact pgvector distance before they leave.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::api::AnnT;
use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::hnswio::HnswIo;
use serde::{Deserialize, Serialize};

use super::{HnswParams, RowHit, VectorIndex};
use crate::error::{EngineError, Result};
use crate::vector::{
    Metric, QueryVector, VectorData, VectorValues, dense_distance, dot, l2_squared, norm,
};

/// The distance hnsw_rs computes, with its metric's constant.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct GraphDistance {
    metric: Metric,
    /// For IP: the offset `C`; for IP queries: the norm they are rescaled to (`sqrt(C)`-ish).
    ip_offset: f32,
    ip_norm: f32,
}

impl Distance<f32> for GraphDistance {
    #[inline]
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        match self.metric {
            Metric::Ip => (self.ip_offset - dot(a, b)).max(0.0),
            Metric::Cosine => (1.0 - dot(a, b)).max(0.0),
            _ => l2_squared(a, b).sqrt(),
        }
    }
}

type Graph<'a> = Hnsw<'a, f32, GraphDistance>;

self_cell::self_cell!(
    struct LoadedGraph {
        owner: HnswIo,
        #[not_covariant]
        dependent: Graph,
    }
);

/// What is stored beside the graph files.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sidecar {
    distance: GraphDistance,
    rows: usize,
    dim: usize,
}

/// A loaded HNSW index over one segment's column.
pub struct HnswIndex {
    graph: LoadedGraph,
    distance: GraphDistance,
    rows: usize,
    dim: usize,
    bytes: usize,
}

// Searches run from many threads: the compiler checks the index may be shared.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<HnswIndex>();
};

/// Builds an HNSW graph over `data` (dense rows), writes it under `dir` with `basename`, and
/// returns the files written. `progress` is called with rows inserted so far.
pub fn build(
    data: &VectorData,
    metric: Metric,
    params: HnswParams,
    live: &dyn Fn(u32) -> bool,
    dir: &Path,
    basename: &str,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<String>> {
    let VectorValues::Dense { dim, values } = &data.values else {
        return Err(EngineError::InvalidRequest(
            "HNSW needs a dense vector column".into(),
        ));
    };
    let (dim, rows) = (*dim, data.len());
    let prepared: Vec<f32> = match metric {
        Metric::Cosine => values.chunks_exact(dim).flat_map(normalized).collect(),
        _ => Vec::new(),
    };
    let vectors: &[f32] = if prepared.is_empty() {
        values
    } else {
        &prepared
    };
    let max_norm_sq = if metric == Metric::Ip {
        values
            .chunks_exact(dim)
            .map(|v| dot(v, v))
            .fold(0f32, f32::max)
    } else {
        0.0
    };
    let distance = GraphDistance {
        metric,
        ip_offset: max_norm_sq * 1.0001 + 1e-6,
        ip_norm: max_norm_sq.sqrt(),
    };
    let base = dir.join(basename);
    let hnsw_err = |reason: String| EngineError::Hnsw {
        path: base.clone(),
        reason,
    };
    // hnsw_rs only dumps graphs declared with its maximum of 16 layers.
    let max_layer = 16;
    let graph: Graph<'static> = Hnsw::new(
        params.m as usize,
        rows.max(1),
        max_layer,
        params.ef_construction as usize,
        distance,
    );
    let items: Vec<(&[f32], usize)> = vectors
        .chunks_exact(dim)
        .enumerate()
        .filter(|(r, _)| live(*r as u32) && data.is_valid(*r))
        .map(|(r, v)| (v, r))
        .collect();
    // Chunks big enough for rayon to spread, small enough to report progress.
    let chunk = 4_096 * rayon::current_num_threads().max(1);
    let mut done = 0u64;
    for part in items.chunks(chunk) {
        let part = part.to_vec();
        catch_unwind(AssertUnwindSafe(|| graph.parallel_insert_slice(&part)))
            .map_err(|_| hnsw_err("hnsw_rs panicked while inserting".into()))?;
        done += part.len() as u64;
        progress(done);
    }
    let written = catch_unwind(AssertUnwindSafe(|| graph.file_dump(dir, basename)))
        .map_err(|_| hnsw_err("hnsw_rs panicked while writing".into()))?
        .map_err(|e| hnsw_err(e.to_string()))?;
    let sidecar = Sidecar {
        distance,
        rows,
        dim,
    };
    let sidecar_name = format!("{basename}.hnsw.json");
    let sidecar_bytes = serde_json::to_vec(&sidecar).map_err(|e| hnsw_err(e.to_string()))?;
    std::fs::write(dir.join(&sidecar_name), sidecar_bytes)
        .map_err(EngineError::io("write", dir.join(&sidecar_name)))?;
    let files = vec![
        format!("{written}.hnsw.graph"),
        format!("{written}.hnsw.data"),
        sidecar_name,
    ];
    for f in &files {
        crate::fsutil::sync_file(&dir.join(f))?;
    }
    Ok(files)
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let n = norm(v);
    if n == 0.0 {
        v.to_vec()
    } else {
        v.iter().map(|x| x / n).collect()
    }
}

impl HnswIndex {
    /// Loads the graph written by [`build`] from `dir` (files as returned by it).
    pub fn load(dir: &Path, files: &[String]) -> Result<HnswIndex> {
        let sidecar_name = files
            .iter()
            .find(|f| f.ends_with(".hnsw.json"))
            .ok_or_else(|| EngineError::Corrupt {
                path: dir.to_path_buf(),
                reason: "HNSW index lists no .hnsw.json file".into(),
            })?;
        let sidecar_path = dir.join(sidecar_name);
        let bytes = std::fs::read(&sidecar_path).map_err(EngineError::io("read", &sidecar_path))?;
        let sidecar: Sidecar =
            serde_json::from_slice(&bytes).map_err(|e| EngineError::Corrupt {
                path: sidecar_path.clone(),
                reason: e.to_string(),
            })?;
        let basename = sidecar_name.trim_end_matches(".hnsw.json").to_string();
        let base: PathBuf = dir.join(&basename);
        for f in files {
            let p = dir.join(f);
            if !p.is_file() {
                return Err(EngineError::Corrupt {
                    path: p,
                    reason: "index file is missing".into(),
                });
            }
        }
        let bytes_on_disk: u64 = files
            .iter()
            .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
            .map(|m| m.len())
            .sum();
        let distance = sidecar.distance;
        let io = HnswIo::new(dir, &basename);
        let loaded = catch_unwind(AssertUnwindSafe(|| {
            LoadedGraph::try_new(io, |io| {
                let mut g = io.load_hnsw_with_dist::<f32, GraphDistance>(distance)?;
                g.set_searching_mode(true);
                Ok::<_, anyhow_like::Error>(g)
            })
        }))
        .map_err(|_| EngineError::Hnsw {
            path: base.clone(),
            reason: "hnsw_rs panicked while loading (a mismatched dump?)".into(),
        })?
        .map_err(|e| EngineError::Hnsw {
            path: base.clone(),
            reason: e.to_string(),
        })?;
        Ok(HnswIndex {
            graph: loaded,
            distance,
            rows: sidecar.rows,
            dim: sidecar.dim,
            // hnsw_rs keeps each vector plus its neighbour lists (≈ 2·M links per node).
            bytes: bytes_on_disk as usize,
        })
    }

    /// Rows the graph was built over (its segment's rows).
    pub fn rows(&self) -> usize {
        self.rows
    }
}

mod anyhow_like {
    /// hnsw_rs returns `anyhow::Error`; we only need its message.
    pub type Error = Box<dyn std::error::Error + Send + Sync>;
}

impl VectorIndex for HnswIndex {
    fn search(
        &self,
        q: &QueryVector,
        k: usize,
        ef: usize,
        allow: Option<&(dyn Fn(u32) -> bool + Sync)>,
    ) -> Vec<RowHit> {
        let QueryVector::Dense(q) = q else {
            return Vec::new();
        };
        if q.len() != self.dim || k == 0 {
            return Vec::new();
        }
        let metric = self.distance.metric;
        let probe: Vec<f32> = match metric {
            Metric::Cosine => normalized(q),
            Metric::Ip => {
                let n = norm(q);
                if n == 0.0 {
                    q.clone()
                } else {
                    q.iter().map(|x| x * self.distance.ip_norm / n).collect()
                }
            }
            _ => q.clone(),
        };
        let filter = allow.map(|f| move |id: &usize| f(*id as u32));
        let found = self.graph.with_dependent(|_, g| match &filter {
            Some(f) => g.search_filter(
                &probe,
                k,
                ef.max(k),
                Some(f as &dyn hnsw_rs::filter::FilterT),
            ),
            None => g.search(&probe, k, ef.max(k)),
        });
        let mut hits: Vec<RowHit> = found
            .into_iter()
            .map(|n| {
                let d = match metric {
                    // The graph's distance is already pgvector's.
                    Metric::L2 | Metric::Cosine => n.distance,
                    // Exact −q·x from the stored vector.
                    _ => self
                        .graph
                        .with_dependent(|_, g| g.get_point_indexation().get_point_data(&n.p_id))
                        .map(|v| dense_distance(Metric::Ip, q, &v))
                        .unwrap_or(f32::NAN),
                };
                (n.d_id as u32, d)
            })
            .collect();
        hits.sort_by(|a, b| super::cmp_distance(a.1, b.1).then(a.0.cmp(&b.0)));
        hits
    }

    fn memory_bytes(&self) -> usize {
        self.bytes
    }
}
