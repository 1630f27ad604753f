//! Bulk loads: batches → new segments → one manifest swap.
//!
//! Primary keys stay unique: on commit, every earlier row whose key appears in the load (and
//! every earlier duplicate inside the load) is marked deleted in the same swap, so loading
//! the same rows twice replaces them instead of duplicating them. The writer keeps the keys it
//! has seen (those of the collection, read once at the first commit, and those it wrote), so a
//! load committed in many parts never reads earlier segments again.
//!
//! Those keys cost memory in proportion to the load (~36 bytes per integer key at the map's
//! peak: 10M rows pass 300 MB). A caller that knows the load's keys are unique among
//! themselves (a source's own primary key, read in one snapshot) says so with
//! [`BulkWriter::assume_unique_keys`]; into an empty collection no key can then be replaced,
//! and the writer keeps none.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, new_null_array};
use arrow::datatypes::{DataType, Float16Type, Float32Type, Int32Type, SchemaRef};

use super::{Collection, WriteLock};
use crate::error::{EngineError, Result};
use crate::manifest::{Manifest, SegmentMeta};
use crate::schema::{CollectionSchema, Field, FieldType};
use crate::segment::{SegmentWriter, read_deletes, read_segment, unique_name, write_deletes};

/// Rows per segment before a new file starts.
pub const SEGMENT_ROWS: u64 = 1 << 20;

/// What a commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Rows written by this load.
    pub rows: u64,
    /// Earlier rows replaced (same primary key).
    pub replaced: u64,
    /// The manifest version committed.
    pub version: u64,
}

/// An open bulk load. Dropping it without committing discards its uncommitted files.
///
/// Rows are written to named parts (a source range each); [`BulkWriter::commit_part`] commits
/// one part's segments with its checkpoint while the others keep writing, so a resumed run
/// knows exactly which ranges are in.
pub struct BulkWriter {
    coll: Collection,
    _lock: WriteLock,
    base: Arc<Manifest>,
    schema: CollectionSchema,
    arrow: SchemaRef,
    current: HashMap<String, (u64, SegmentWriter)>,
    done: HashMap<String, Vec<SegmentMeta>>,
    /// Uncommitted files by part, removed if the writer is dropped.
    pending_files: HashMap<String, Vec<String>>,
    next_segment: u64,
    next_auto_id: i64,
    rows: u64,
    segment_rows: u64,
    /// Live keys of committed segments → (segment id, row); built at the first commit.
    committed_keys: Option<KeyMap>,
    /// Keys written to each uncommitted segment, in row order, by segment id.
    written_keys: HashMap<u64, Keys>,
    /// No key of this load can replace another (see [`BulkWriter::assume_unique_keys`]).
    keys_unique: bool,
}

/// A primary key column's values in row order. Integer keys stay unboxed: the writer keeps
/// every key of a load, and a map entry of an `i64` key is 24 bytes where a key enum with a
/// `String` in it made 48 (at 2M rows, with the map's doubling, ~100 MB against ~300 MB).
#[derive(Debug)]
enum Keys {
    Int(Vec<i64>),
    Str(Vec<Box<str>>),
}

impl Keys {
    fn extend(&mut self, more: Keys) {
        match (self, more) {
            (Keys::Int(a), Keys::Int(b)) => a.extend(b),
            (Keys::Str(a), Keys::Str(b)) => a.extend(b),
            // A collection's key has one type; a mix cannot arise.
            (this, other) => *this = other,
        }
    }
}

/// Where a live key's row is: (segment id, row), 8 bytes.
type Loc = (u32, u32);

/// Live keys → their rows, by kind of key (a collection uses one of the two).
#[derive(Debug, Default)]
struct KeyMap {
    ints: HashMap<i64, Loc>,
    strs: HashMap<Box<str>, Loc>,
}

/// A segment id as a [`Loc`] holds it.
fn loc_id(id: u64) -> Result<u32> {
    u32::try_from(id).map_err(|_| EngineError::Corrupt {
        path: std::path::PathBuf::from("manifest.json"),
        reason: format!("segment id {id} is beyond what a key map holds (2^32)"),
    })
}

fn keys_of(column: &dyn Array) -> Keys {
    match column.data_type() {
        DataType::Int64 => Keys::Int(
            column
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .to_vec(),
        ),
        _ => Keys::Str(
            column
                .as_string::<i32>()
                .iter()
                .map(|v| Box::from(v.unwrap_or_default()))
                .collect(),
        ),
    }
}

/// Pairs the keys of the segments a commit adds (`added`: per new segment, in row order)
/// with each other and with the `committed` ones: rows of a key that appears again later in
/// this commit go to `new_deletes` (by new segment), committed rows whose key the commit
/// brings again are returned (by segment id), and `committed` learns the commit's keys.
fn pair_keys<K: std::hash::Hash + Eq>(
    committed: &mut HashMap<K, Loc>,
    added: Vec<Vec<K>>,
    ids: &[u32],
    new_deletes: &mut [Vec<u32>],
) -> HashMap<u64, Vec<u32>> {
    // Key → (new segment, row) of its last occurrence in this commit.
    let mut latest: HashMap<K, (usize, u32)> = HashMap::new();
    for (s, keys) in added.into_iter().enumerate() {
        for (r, k) in keys.into_iter().enumerate() {
            if let Some((ps, pr)) = latest.insert(k, (s, r as u32)) {
                new_deletes[ps].push(pr);
            }
        }
    }
    let mut hits: HashMap<u64, Vec<u32>> = HashMap::new();
    for k in latest.keys() {
        if let Some((sid, row)) = committed.get(k) {
            hits.entry(u64::from(*sid)).or_default().push(*row);
        }
    }
    committed.reserve(latest.len());
    for (k, (s, r)) in latest {
        committed.insert(k, (ids[s], r));
    }
    hits
}

impl Collection {
    /// Starts a bulk load (takes the write lock and clears leftovers of interrupted loads).
    pub fn writer(&self) -> Result<BulkWriter> {
        let lock = self.lock()?;
        self.collect_garbage(&lock)?;
        let base = self.manifest();
        Ok(BulkWriter {
            coll: self.clone(),
            _lock: lock,
            schema: base.schema.clone(),
            arrow: base.schema.arrow_schema(),
            next_segment: base.next_segment,
            next_auto_id: base.next_auto_id,
            base,
            current: HashMap::new(),
            done: HashMap::new(),
            pending_files: HashMap::new(),
            rows: 0,
            segment_rows: SEGMENT_ROWS,
            committed_keys: None,
            written_keys: HashMap::new(),
            keys_unique: false,
        })
    }
}

impl BulkWriter {
    /// Sets the rows per segment file (tests use small segments).
    pub fn with_segment_rows(mut self, rows: u64) -> BulkWriter {
        self.segment_rows = rows.max(1);
        self
    }

    /// The caller's promise that the keys this load writes are unique among themselves (a
    /// source's own primary key read in one snapshot). Into a collection without rows no key
    /// can then replace another, so the writer keeps no keys and its memory stays flat however
    /// many rows it loads. A collection that already has rows keeps the usual pairing (a
    /// resumed load may bring back a key an earlier part committed).
    pub fn assume_unique_keys(mut self) -> BulkWriter {
        self.keys_unique = self.base.segments.is_empty();
        self
    }

    /// Keys the writer holds (of its uncommitted segments and of the collection).
    #[cfg(test)]
    pub(crate) fn keys_kept(&self) -> usize {
        let written: usize = self
            .written_keys
            .values()
            .map(|k| match k {
                Keys::Int(k) => k.len(),
                Keys::Str(k) => k.len(),
            })
            .sum();
        let committed = self
            .committed_keys
            .as_ref()
            .map_or(0, |m| m.ints.len() + m.strs.len());
        written + committed
    }

    /// Checkpoints committed so far (the pipeline's resume points).
    pub fn checkpoints(&self) -> &BTreeMap<String, serde_json::Value> {
        &self.base.checkpoints
    }

    /// Validates a batch against the schema and appends it (to the default part).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.write_part("", batch)
    }

    /// Validates a batch and appends it to `part`.
    pub fn write_part(&mut self, part: &str, batch: &RecordBatch) -> Result<()> {
        let batch = self.conform(batch)?;
        let mut offset = 0;
        while offset < batch.num_rows() {
            if self
                .current
                .get(part)
                .is_none_or(|(_, w)| w.rows() >= self.segment_rows)
            {
                self.roll(part)?;
            }
            let Some((id, w)) = self.current.get_mut(part) else {
                break;
            };
            let room = (self.segment_rows - w.rows()) as usize;
            let n = room.min(batch.num_rows() - offset);
            let slice = batch.slice(offset, n);
            w.write(&slice)?;
            if !self.schema.auto_id
                && !self.keys_unique
                && let Some(pk) = slice.column_by_name(&self.schema.primary_key().name)
            {
                let keys = keys_of(pk.as_ref());
                match self.written_keys.get_mut(id) {
                    Some(k) => k.extend(keys),
                    None => {
                        self.written_keys.insert(*id, keys);
                    }
                }
            }
            offset += n;
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn roll(&mut self, part: &str) -> Result<()> {
        self.finish_current(part)?;
        let id = self.next_segment;
        self.next_segment += 1;
        let file = unique_name("seg", id, "arrow");
        self.pending_files
            .entry(part.to_string())
            .or_default()
            .push(file.clone());
        let w = SegmentWriter::create(self.coll.dir().join(&file), &self.arrow)?;
        self.current.insert(part.to_string(), (id, w));
        Ok(())
    }

    fn finish_current(&mut self, part: &str) -> Result<()> {
        if let Some((id, w)) = self.current.remove(part) {
            let rows = w.rows();
            let (path, bytes) = w.finish()?;
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default();
            self.done
                .entry(part.to_string())
                .or_default()
                .push(SegmentMeta {
                    id,
                    file,
                    rows,
                    bytes,
                    deletes: None,
                    deleted: 0,
                    indexes: BTreeMap::new(),
                });
        }
        Ok(())
    }

    /// Puts a batch in the segment layout: columns in schema order, auto IDs assigned, missing
    /// nullable columns as NULL, types and limits checked.
    fn conform(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields.len());
        for f in &self.schema.fields {
            let bad = |reason: String| EngineError::BadBatch {
                collection: self.coll.name().to_string(),
                field: f.name.clone(),
                reason,
            };
            let col = if f.primary_key && self.schema.auto_id {
                let start = self.next_auto_id;
                self.next_auto_id += n as i64;
                Arc::new(Int64Array::from_iter_values(start..start + n as i64)) as ArrayRef
            } else {
                match batch.column_by_name(&f.name) {
                    Some(c) => conform_type(c, &f.arrow_type()).map_err(bad)?,
                    None if f.nullable => new_null_array(&f.arrow_type(), n),
                    None => return Err(bad("the batch has no such column".into())),
                }
            };
            check_values(f, col.as_ref()).map_err(bad)?;
            columns.push(col);
        }
        Ok(RecordBatch::try_new(self.arrow.clone(), columns)?)
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Commits every part with `checkpoints` (merged into the manifest's) in one manifest swap.
    pub fn commit(
        mut self,
        checkpoints: BTreeMap<String, serde_json::Value>,
    ) -> Result<CommitStats> {
        let parts: Vec<String> = self
            .current
            .keys()
            .chain(self.done.keys())
            .cloned()
            .collect();
        let mut segments = Vec::new();
        for p in parts {
            self.finish_current(&p)?;
            segments.extend(self.done.remove(&p).unwrap_or_default());
        }
        let rows = self.rows;
        // From here the files are the manifest's or garbage for the next writer, never ours to
        // delete: the manifest may be in place even if a late fsync fails.
        self.pending_files.clear();
        let mut stats = self.commit_segments(segments, checkpoints)?;
        stats.rows = rows;
        Ok(stats)
    }

    /// Commits one part's rows with its checkpoints; other parts keep writing.
    pub fn commit_part(
        &mut self,
        part: &str,
        checkpoints: BTreeMap<String, serde_json::Value>,
    ) -> Result<CommitStats> {
        self.finish_current(part)?;
        let segments = self.done.remove(part).unwrap_or_default();
        let rows = segments.iter().map(|s| s.rows).sum();
        // As in `commit`: once committing, the files are not ours to delete.
        self.pending_files.remove(part);
        let mut stats = self.commit_segments(segments, checkpoints)?;
        stats.rows = rows;
        Ok(stats)
    }

    fn commit_segments(
        &mut self,
        mut segments: Vec<SegmentMeta>,
        checkpoints: BTreeMap<String, serde_json::Value>,
    ) -> Result<CommitStats> {
        let dir = self.coll.dir().to_path_buf();
        let mut manifest: Manifest = (*self.base).clone();
        let pk = self.schema.primary_key().name.clone();
        let pk_index = self
            .schema
            .fields
            .iter()
            .position(|f| f.name == pk)
            .unwrap_or(0);
        let mut replaced = 0u64;
        let mut new_keys = None;
        if !self.schema.auto_id && !self.keys_unique && !segments.is_empty() {
            // Taken out while in use: a failed commit leaves it to be rebuilt.
            let mut committed = match self.committed_keys.take() {
                Some(k) => k,
                None => live_keys(&dir, &manifest, pk_index)?,
            };
            let mut new_deletes: Vec<Vec<u32>> = vec![Vec::new(); segments.len()];
            let (mut ints, mut strs) = (Vec::new(), Vec::new());
            for seg in &segments {
                let keys = match self.written_keys.remove(&seg.id) {
                    Some(k) => k,
                    None => keys_of(
                        read_segment(&dir.join(&seg.file), Some(vec![pk_index]))?
                            .column(0)
                            .as_ref(),
                    ),
                };
                match keys {
                    Keys::Int(k) => ints.push(k),
                    Keys::Str(k) => strs.push(k),
                }
            }
            let ids: Vec<u32> = segments
                .iter()
                .map(|s| loc_id(s.id))
                .collect::<Result<_>>()?;
            let mut hits = if strs.is_empty() {
                pair_keys(&mut committed.ints, ints, &ids, &mut new_deletes)
            } else {
                pair_keys(&mut committed.strs, strs, &ids, &mut new_deletes)
            };
            for seg in manifest.segments.iter_mut() {
                if let Some(rows) = hits.remove(&seg.id) {
                    let before = seg.deleted;
                    apply_deletes(&dir, seg, rows)?;
                    replaced += seg.deleted - before;
                }
            }
            for (seg, rows) in segments.iter_mut().zip(new_deletes) {
                if !rows.is_empty() {
                    apply_deletes(&dir, seg, rows)?;
                }
            }
            new_keys = Some(committed);
        }
        manifest.segments.extend(segments);
        // A segment whose rows were all replaced goes; its files are collected later.
        manifest.segments.retain(|s| s.live_rows() > 0);
        manifest.version += 1;
        manifest.next_segment = self.next_segment;
        manifest.next_auto_id = self.next_auto_id;
        manifest.checkpoints.extend(checkpoints);
        manifest.write(&dir)?;
        if new_keys.is_some() {
            // Only once the commit is in: a failed write leaves the cache to be rebuilt.
            self.committed_keys = new_keys;
        }
        let version = manifest.version;
        self.base = Arc::new(manifest.clone());
        self.coll.set_manifest(manifest);
        Ok(CommitStats {
            rows: 0,
            replaced,
            version,
        })
    }
}

/// The live keys of a manifest's segments → (segment id, row).
fn live_keys(dir: &std::path::Path, manifest: &Manifest, pk_index: usize) -> Result<KeyMap> {
    let mut out = KeyMap::default();
    for seg in &manifest.segments {
        let deleted: std::collections::HashSet<u32> = match &seg.deletes {
            Some(f) => read_deletes(&dir.join(f))?.into_iter().collect(),
            None => Default::default(),
        };
        let keys = read_segment(&dir.join(&seg.file), Some(vec![pk_index]))?;
        let live = |r: usize| !deleted.contains(&(r as u32));
        let id = loc_id(seg.id)?;
        match keys_of(keys.column(0).as_ref()) {
            Keys::Int(k) => out.ints.extend(
                k.into_iter()
                    .enumerate()
                    .filter(|(r, _)| live(*r))
                    .map(|(r, k)| (k, (id, r as u32))),
            ),
            Keys::Str(k) => out.strs.extend(
                k.into_iter()
                    .enumerate()
                    .filter(|(r, _)| live(*r))
                    .map(|(r, k)| (k, (id, r as u32))),
            ),
        }
    }
    Ok(out)
}

/// Adds rows to a segment's delete set: a new delete file replaces the old one.
fn apply_deletes(dir: &std::path::Path, seg: &mut SegmentMeta, mut rows: Vec<u32>) -> Result<()> {
    if let Some(old) = &seg.deletes {
        rows.extend(read_deletes(&dir.join(old))?);
    }
    rows.sort_unstable();
    rows.dedup();
    let file = unique_name("del", seg.id, "bin");
    write_deletes(&dir.join(&file), &rows)?;
    seg.deletes = Some(file);
    seg.deleted = rows.len() as u64;
    Ok(())
}

#[cfg(test)]
impl BulkWriter {
    /// Releases the lock and leaves every written file behind, as a killed process would.
    pub(crate) fn simulate_crash(mut self) {
        let parts: Vec<String> = self.current.keys().cloned().collect();
        for p in parts {
            self.finish_current(&p).ok();
        }
        self.pending_files.clear();
    }
}

impl Drop for BulkWriter {
    fn drop(&mut self) {
        // Best effort: anything left is collected by the next writer.
        self.current.clear();
        for f in self.pending_files.values().flatten() {
            let _ = std::fs::remove_file(self.coll.dir().join(f));
        }
    }
}

/// Casts a column to the field's exact type when they differ only in nested names or
/// nullability; anything else is an error.
fn conform_type(c: &ArrayRef, want: &DataType) -> Result<ArrayRef, String> {
    if c.data_type() == want {
        return Ok(c.clone());
    }
    if c.data_type().equals_datatype(want) || matches!(c.data_type(), DataType::Null) {
        return arrow::compute::cast(c, want).map_err(|e| e.to_string());
    }
    Err(format!(
        "column is {}, the field needs {want}",
        c.data_type()
    ))
}

/// Limits a mapped row must respect; the pipeline rejects such rows before they get here.
fn check_values(f: &Field, c: &dyn Array) -> Result<(), String> {
    if !f.nullable && c.null_count() > 0 {
        let row = (0..c.len()).find(|r| c.is_null(*r)).unwrap_or(0);
        return Err(format!("row {row} is NULL and the field is not nullable"));
    }
    match f.data_type {
        FieldType::Varchar => check_lengths(c, f.max_length.unwrap_or(u32::MAX))?,
        FieldType::Array => {
            let list = c.as_list::<i32>();
            let cap = f.max_capacity.unwrap_or(u32::MAX) as i32;
            if let Some(r) =
                (0..list.len()).find(|r| list.is_valid(*r) && list.value_length(*r) > cap)
            {
                return Err(format!(
                    "row {r} has {} elements, max_capacity is {cap}",
                    list.value_length(r)
                ));
            }
            if f.element_type == Some(FieldType::Varchar) {
                check_lengths(list.values().as_ref(), f.max_length.unwrap_or(u32::MAX))?;
            }
        }
        FieldType::FloatVector | FieldType::Float16Vector => {
            let list = c.as_fixed_size_list();
            let dim = f.dim_usize().max(1);
            let bad = match list.values().data_type() {
                DataType::Float32 => crate::vector::first_non_finite(
                    list.values().as_primitive::<Float32Type>().values(),
                ),
                DataType::Float16 => crate::vector::first_non_finite_f16(
                    list.values().as_primitive::<Float16Type>().values(),
                ),
                _ => None,
            };
            if let Some(i) = bad {
                return Err(format!("row {} has a NaN or infinite element", i / dim));
            }
        }
        FieldType::SparseFloatVector => {
            let (idx, _) =
                crate::vector::sparse_children(c.as_struct()).map_err(|e| e.to_string())?;
            for r in 0..idx.len() {
                if idx.is_valid(r) {
                    let v = idx.value(r);
                    let v = v.as_primitive::<Int32Type>().values();
                    if v.iter().any(|i| *i < 0) || v.windows(2).any(|w| w[0] >= w[1]) {
                        return Err(format!(
                            "row {r}: sparse indices must be non-negative and strictly increasing"
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_lengths(c: &dyn Array, max: u32) -> Result<(), String> {
    let s = c.as_string::<i32>();
    match (0..s.len()).find(|r| s.is_valid(*r) && s.value(*r).len() > max as usize) {
        Some(r) => Err(format!(
            "row {r} is {} bytes long, max_length is {max}",
            s.value(r).len()
        )),
        None => Ok(()),
    }
}
