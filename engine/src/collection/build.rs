//! Index builds after the load: per segment, persisted beside it, one manifest swap per
//! segment so an interrupted build keeps the segments already done and a re-run finishes.

use std::collections::HashSet;
use std::time::Instant;

use super::Collection;
use crate::error::{EngineError, Result};
use crate::index::scalar::ScalarIndex;
use crate::index::{IndexSpec, IndexType, hnsw, ivf, sparse};
use crate::manifest::{IndexFiles, Manifest, SegmentMeta};
use crate::schema::FieldType;
use crate::segment::{read_deletes, read_segment, read_vectors, unique_name};

/// Progress of an index build, reported after every chunk of rows.
#[derive(Debug, Clone)]
pub struct IndexProgress {
    /// The field being indexed.
    pub field: String,
    /// Rows indexed so far across the segments of this build.
    pub done_rows: u64,
    /// Rows to index in this build.
    pub total_rows: u64,
}

impl Collection {
    /// Sets `field`'s index to `spec` and builds it for every segment that lacks it.
    /// Returns the seconds spent building.
    pub fn create_index(
        &self,
        field: &str,
        spec: IndexSpec,
        progress: &(dyn Fn(IndexProgress) + Sync),
    ) -> Result<f64> {
        let f = self.schema().field_or_err(self.name(), field)?.clone();
        let spec = spec.checked_for(&f)?;
        let lock = self.lock()?;
        self.collect_garbage(&lock)?;
        let mut m: Manifest = (*self.manifest()).clone();
        if m.indexes.get(field) != Some(&spec) {
            m.indexes.insert(field.to_string(), spec);
            m.version += 1;
            m.write(self.dir())?;
            self.set_manifest(m);
        }
        drop(lock);
        self.build_pending(field, progress)
    }

    /// Builds every defined index on the segments that lack it (after a load).
    pub fn build_indexes(&self, progress: &(dyn Fn(IndexProgress) + Sync)) -> Result<f64> {
        let fields: Vec<String> = self.manifest().indexes.keys().cloned().collect();
        let mut seconds = 0.0;
        for f in fields {
            let lock = self.lock()?;
            self.collect_garbage(&lock)?;
            drop(lock);
            seconds += self.build_pending(&f, progress)?;
        }
        Ok(seconds)
    }

    /// Segments whose index on `field` is missing or built with another spec.
    pub fn pending_index_segments(&self, field: &str) -> Vec<u64> {
        let m = self.manifest();
        let Some(spec) = m.indexes.get(field) else {
            return Vec::new();
        };
        m.segments
            .iter()
            .filter(|s| s.indexes.get(field).is_none_or(|ix| ix.spec != *spec))
            .map(|s| s.id)
            .collect()
    }

    fn build_pending(&self, field: &str, progress: &(dyn Fn(IndexProgress) + Sync)) -> Result<f64> {
        let pending: HashSet<u64> = self.pending_index_segments(field).into_iter().collect();
        let m = self.manifest();
        let Some(spec) = m.indexes.get(field).copied() else {
            return Ok(0.0);
        };
        let col = self
            .schema()
            .fields
            .iter()
            .position(|f| f.name == field)
            .ok_or_else(|| EngineError::UnknownField {
                collection: self.name().to_string(),
                field: field.to_string(),
                hint: String::new(),
            })?;
        let todo: Vec<SegmentMeta> = m
            .segments
            .iter()
            .filter(|s| pending.contains(&s.id))
            .cloned()
            .collect();
        let total_rows: u64 = todo.iter().map(SegmentMeta::live_rows).sum();
        let mut done_rows = 0u64;
        let mut seconds = 0.0;
        for seg in todo {
            let lock = self.lock()?;
            let started = Instant::now();
            let base = done_rows;
            let report = |n: u64| {
                progress(IndexProgress {
                    field: field.to_string(),
                    done_rows: base + n,
                    total_rows,
                })
            };
            let files = self.build_one(&seg, col, spec, &report)?;
            let took = started.elapsed().as_secs_f64();
            seconds += took;
            done_rows += seg.live_rows();
            report(seg.live_rows());
            crate::fault::crash_point("index");
            // Swap in the new index files for this segment only.
            let mut m: Manifest = (*self.manifest()).clone();
            if let Some(s) = m.segments.iter_mut().find(|s| s.id == seg.id) {
                s.indexes.insert(
                    field.to_string(),
                    IndexFiles {
                        files,
                        spec,
                        build_seconds: took,
                    },
                );
            }
            m.version += 1;
            m.write(self.dir())?;
            self.set_manifest(m);
            drop(lock);
        }
        Ok(seconds)
    }

    fn build_one(
        &self,
        seg: &SegmentMeta,
        col: usize,
        spec: IndexSpec,
        report: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<String>> {
        let dir = self.dir();
        let path = dir.join(&seg.file);
        let deleted: HashSet<u32> = match &seg.deletes {
            Some(f) => read_deletes(&dir.join(f))?.into_iter().collect(),
            None => HashSet::new(),
        };
        let live = |r: u32| !deleted.contains(&r);
        let field = self
            .schema()
            .fields
            .get(col)
            .map(|f| f.name.clone())
            .unwrap_or_default();
        Ok(match spec.index_type {
            // Exact indexes are the vectors themselves.
            IndexType::Flat | IndexType::BinFlat => Vec::new(),
            IndexType::Hnsw | IndexType::HnswSq => {
                let data = read_vectors(&path, col)?;
                let file = unique_name(&format!("hnsw-{field}"), seg.id, "idx");
                let field_type = self
                    .schema()
                    .fields
                    .get(col)
                    .map_or(FieldType::FloatVector, |f| f.data_type);
                hnsw::build(
                    &data,
                    field_type,
                    spec.metric(),
                    spec.hnsw.unwrap_or_default(),
                    if spec.index_type == IndexType::HnswSq {
                        hnsw::Storage::Sq8
                    } else {
                        hnsw::Storage::Exact
                    },
                    &live,
                    &dir.join(&file),
                    report,
                )?;
                vec![file]
            }
            IndexType::IvfFlat => {
                let data = read_vectors(&path, col)?;
                let file = unique_name(&format!("ivf-{field}"), seg.id, "idx");
                ivf::build(
                    &data,
                    spec.metric(),
                    spec.ivf.unwrap_or_default(),
                    &live,
                    &dir.join(&file),
                    report,
                )?;
                vec![file]
            }
            IndexType::SparseInvertedIndex => {
                let data = read_vectors(&path, col)?;
                let file = unique_name(&format!("sparse-{field}"), seg.id, "idx");
                sparse::build(&data, &live, &dir.join(&file))?;
                vec![file]
            }
            IndexType::StlSort | IndexType::Inverted => {
                let file = unique_name(&format!("scalar-{field}"), seg.id, "arrow");
                let batch = read_segment(&path, Some(vec![col]))?;
                ScalarIndex::build(batch.column(0).as_ref(), &live)?.write(&dir.join(&file))?;
                vec![file]
            }
        })
    }
}
