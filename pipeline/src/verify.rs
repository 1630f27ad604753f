//! `etl verify`: the source (the truth) and each collection compared row by row.
//!
//! Both sides are compared after the mapping: source batches go through the same [`Mapper`]
//! as `etl run`, so a vector compares bit for bit as stored (a halfvec exactly as FLOAT16), a
//! numeric by its mapping rule and text byte for byte. Rows are encoded with arrow's row
//! format and fingerprinted (128 bits).
//!
//! The collection is read first, segment by segment in parallel, then the source in parallel
//! ranges on one snapshot; each side's rows become (key, fingerprint) records in bucket files
//! split by a hash of the key ([`spill`]), and the buckets are paired one at a time: memory is
//! one bucket's target entries, whatever the table size (a grace hash join; nothing needs
//! either side sorted, so every target can be read in its own order). Rows are keyed by the
//! primary key; in an auto-ID collection by the source's key columns kept as fields; with no
//! key at all by the whole row's fingerprint (a multiset), where a changed row counts as one
//! missing and one extraneous row. The few differing rows shown are found again with a second,
//! filtered read of each side.
//!
//! The counters are MOLT Verify's: truth rows seen (source rows), success, missing (in the
//! source, not the target), mismatch (in both, different) and extraneous (in the target only).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use etl_connectors::postgres::ReadOptions;
use etl_engine::convert::to_json;
use etl_engine::{CollectionSchema, FieldType};
use etl_mappings::{PrimaryKey, TablePlan, build_plan};
use futures::StreamExt;
use futures::future::BoxFuture;
use serde_json::Value;

use crate::error::PipelineError;
use crate::inspect::{load_mapping, open_source};
use crate::map::{Mapper, short};
use crate::prepare::select_tables;
use crate::schema::collection_schema;
use crate::source::SourceScan;
use crate::target::CollectionReader;

mod report;
mod rows;
mod spill;
pub use report::{
    ColumnDifference, Counts, Difference, DifferenceKind, TableVerify, VerifyObserver,
    VerifyOptions, VerifyReport,
};
use rows::{arrow_err, canonical_json, fingerprint, internal, same_value};
use spill::Spill;

/// Verifies the tables of a mapping file.
pub async fn verify(
    mapping_path: &Path,
    opts: &VerifyOptions,
    observer: Arc<dyn VerifyObserver>,
) -> Result<VerifyReport, PipelineError> {
    let mapping = load_mapping(mapping_path)?;
    // Where the route leaves the collections, read back through its target.
    let route = crate::route::resolve(&mapping, None)?;
    let target = crate::target::open(&route.holds(), Some(&mapping), &Default::default())?;
    let (source_conn, catalog) = open_source(&mapping).await?;
    let mut plan = build_plan(&mapping, &catalog)?;
    if let Some(p) = opts.parallelism {
        plan.parallelism = p.max(1);
    }
    let tables = select_tables(&plan, opts.tables.as_deref())?;
    let mut out = Vec::with_capacity(tables.len());
    for tp in &tables {
        let source = catalog
            .iter()
            .find(|s| s.name == tp.source)
            .ok_or_else(|| PipelineError::UnknownTable {
                table: tp.source.to_string(),
                suggestion: None,
            })?;
        let read = ReadOptions {
            partitions: plan.parallelism,
            batch_rows: plan.batch_size,
            filter: tp.filter.clone(),
            max_bad_rows: tp.max_rejects,
            ..ReadOptions::default()
        };
        let mut tp = tp.clone();
        let compared = Compared::of(&tp)?;
        let reader = target
            .reader(
                &mut tp,
                &compared.schema,
                &compared.columns,
                &compared.projection,
            )
            .await?;
        let tp = &tp;
        let verifier = TableVerifier::new(tp, reader, opts.max_differences, plan.parallelism)?;
        let columns = verifier.mapper.source_columns();
        let scan = SourceScan::open(&source_conn, source, read.clone(), &columns, None).await?;
        // The source read again, only when differences are to be shown.
        let (conn, table) = (source_conn.clone(), source.clone());
        let rescan: Rescan = Box::new(move || {
            let (conn, table, read, columns) =
                (conn.clone(), table.clone(), read.clone(), columns.clone());
            Box::pin(async move { SourceScan::open(&conn, &table, read, &columns, None).await })
        });
        observer.table_started(&tp.source.to_string(), tp.estimated_rows);
        let result = verifier.run(scan, rescan, observer.clone()).await?;
        observer.table_finished(&result);
        out.push(result);
    }
    let clean = out.iter().all(|t| t.counts.clean());
    Ok(VerifyReport { tables: out, clean })
}

/// The columns compared: the mapper's output, in order, with their types and indices in the
/// collection schema.
struct Compared {
    schema: CollectionSchema,
    columns: Vec<String>,
    types: Vec<DataType>,
    projection: Vec<usize>,
}

impl Compared {
    fn of(tp: &TablePlan) -> Result<Compared, PipelineError> {
        let schema = collection_schema(tp);
        let columns = Mapper::new(tp.clone(), schema.clone()).output_fields();
        let arrow: SchemaRef = schema.arrow_schema();
        let mut types = Vec::with_capacity(columns.len());
        let mut projection = Vec::with_capacity(columns.len());
        for c in &columns {
            let i = arrow
                .index_of(c)
                .map_err(|_| internal(format!("collection schema has no field `{c}`")))?;
            projection.push(i);
            types.push(arrow.field(i).data_type().clone());
        }
        Ok(Compared {
            schema,
            columns,
            types,
            projection,
        })
    }
}

/// How rows are paired.
enum Keying {
    /// By these compared columns.
    Columns(Vec<usize>),
    /// By the whole row.
    RowHash,
}

/// One target row (or, keyed by row hash, all equal rows).
#[derive(Debug, Clone, Copy)]
struct Entry {
    fingerprint: u128,
    count: u32,
    seen: u32,
}

/// Opens the source's scan again.
type Rescan = Box<dyn Fn() -> BoxFuture<'static, Result<SourceScan, PipelineError>> + Send + Sync>;

/// What the bucket-by-bucket comparison found: counts, and the keys of the differences to
/// show (at most `max_differences` of each kind, the smallest keys).
#[derive(Default)]
struct Paired {
    success: u64,
    mismatch: u64,
    missing: u64,
    extraneous: u64,
    duplicates: u64,
    mismatched: BTreeSet<Box<[u8]>>,
    absent: BTreeSet<Box<[u8]>>,
    /// Of `absent`, the keys the target has (once, for a source key seen twice).
    duplicated: BTreeSet<Box<[u8]>>,
    unclaimed: BTreeSet<Box<[u8]>>,
}

/// Adds `key` to `set`, keeping only the `max` smallest.
fn keep_smallest(set: &mut BTreeSet<Box<[u8]>>, key: &[u8], max: usize) {
    if max == 0 || set.len() >= max && set.last().is_some_and(|l| **l <= *key) {
        return;
    }
    set.insert(Box::from(key));
    if set.len() > max {
        set.pop_last();
    }
}

struct TableVerifier {
    plan: TablePlan,
    mapper: Mapper,
    /// The collection, `None` when there is none (every source row is missing).
    reader: Option<Box<dyn CollectionReader>>,
    schema: CollectionSchema,
    /// The compared columns: the mapper's output, in order.
    columns: Vec<String>,
    /// Their types as the collection stores them.
    types: Vec<DataType>,
    keying: Keying,
    rows: RowConverter,
    keys: Option<RowConverter>,
    /// Spill buckets per side.
    buckets: usize,
    max_differences: usize,
    parallelism: usize,
}

impl TableVerifier {
    fn new(
        tp: &TablePlan,
        reader: Option<Box<dyn CollectionReader>>,
        max_differences: usize,
        parallelism: usize,
    ) -> Result<TableVerifier, PipelineError> {
        let Compared {
            schema,
            columns,
            types,
            projection: _,
        } = Compared::of(tp)?;
        let mapper = Mapper::new(tp.clone(), schema.clone());
        let key_fields: Vec<String> = match &tp.primary_key {
            PrimaryKey::Column { field, .. } => vec![field.clone()],
            PrimaryKey::Auto { .. } => {
                let kept: Vec<String> = tp
                    .source_key
                    .iter()
                    .filter_map(|k| {
                        tp.fields
                            .iter()
                            .find(|f| !f.dynamic && f.source.as_deref() == Some(k.as_str()))
                            .map(|f| f.name.clone())
                    })
                    .collect();
                if kept.len() == tp.source_key.len() {
                    kept
                } else {
                    Vec::new()
                }
            }
        };
        let key_idx: Vec<usize> = key_fields
            .iter()
            .filter_map(|k| columns.iter().position(|c| c == k))
            .collect();
        let keying = if key_idx.is_empty() || key_idx.len() != key_fields.len() {
            Keying::RowHash
        } else {
            Keying::Columns(key_idx)
        };
        let rows = RowConverter::new(types.iter().map(|t| SortField::new(t.clone())).collect())
            .map_err(arrow_err)?;
        let keys = match &keying {
            Keying::Columns(idx) => Some(
                RowConverter::new(
                    idx.iter()
                        .map(|i| SortField::new(types[*i].clone()))
                        .collect(),
                )
                .map_err(arrow_err)?,
            ),
            Keying::RowHash => None,
        };
        Ok(TableVerifier {
            plan: tp.clone(),
            mapper,
            reader,
            schema,
            columns,
            types,
            keying,
            rows,
            keys,
            buckets: spill::bucket_count(tp.estimated_rows),
            max_differences,
            parallelism: parallelism.max(1),
        })
    }

    fn keyed_by(&self) -> String {
        match (&self.keying, &self.plan.primary_key) {
            (Keying::Columns(idx), PrimaryKey::Column { .. }) => {
                format!("primary key ({})", self.names(idx))
            }
            (Keying::Columns(idx), PrimaryKey::Auto { .. }) => {
                format!("source key ({})", self.names(idx))
            }
            (Keying::RowHash, _) => "row hash".to_string(),
        }
    }

    fn names(&self, idx: &[usize]) -> String {
        idx.iter()
            .map(|i| self.columns[*i].as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    async fn run(
        self,
        scan: SourceScan,
        rescan: Rescan,
        observer: Arc<dyn VerifyObserver>,
    ) -> Result<TableVerify, PipelineError> {
        let name = self.plan.source.to_string();
        let started = Instant::now();
        let me = Arc::new(self);
        let dir =
            tempfile::tempdir().map_err(|e| internal(format!("verify's spill directory: {e}")))?;
        // 1. The collection, into its bucket files.
        let mut extraneous = 0u64;
        let target = Arc::new(Spill::create(dir.path(), "target", me.buckets)?);
        if let Some(reader) = &me.reader {
            let (index, spill) = (me.clone(), target.clone());
            let read = reader
                .scan(
                    me.parallelism,
                    Arc::new(move |batch| index.spill_rows(batch, &spill).map(|()| false)),
                )
                .await?;
            extraneous += reader.surplus(read).await?;
        }
        let target = target.finish()?;
        // 2. The source, mapped, into its own.
        let source = Arc::new(Spill::create(dir.path(), "source", me.buckets)?);
        let notes = Arc::new(Mutex::new(Vec::new()));
        let parts = futures::stream::iter((0..scan.partitions()).map(|p| {
            let (me, notes, spill) = (me.clone(), notes.clone(), source.clone());
            let stream = scan.execute(p);
            let (observer, stats, name) = (observer.clone(), scan.stats.clone(), name.clone());
            async move {
                let mut stream = stream?;
                let mut counts = Counts::default();
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(PipelineError::from_datafusion)?;
                    me.probe(&batch, &mut counts, &notes, &spill)?;
                    // Dump rows the reader set aside were rejected by the run too: missing.
                    let unreadable = stats.take_bad_rows(p);
                    counts.truth_rows_seen += unreadable.len() as u64;
                    counts.missing += unreadable.len() as u64;
                    let mut n = notes.lock().unwrap_or_else(|e| e.into_inner());
                    for b in unreadable {
                        if n.len() < me.max_differences {
                            n.push(Difference {
                                kind: DifferenceKind::Missing,
                                key: serde_json::Value::Null,
                                columns: Vec::new(),
                                note: Some(format!(
                                    "unreadable in {} at {}: {} ({})",
                                    b.file, b.at, b.reason, b.column
                                )),
                            });
                        }
                    }
                    observer.progress(&name, stats.rows.load(std::sync::atomic::Ordering::Relaxed));
                }
                Ok::<Counts, PipelineError>(counts)
            }
        }))
        .buffer_unordered(me.parallelism)
        .collect::<Vec<_>>()
        .await;
        let mut counts = Counts::default();
        for p in parts {
            let p = p?;
            counts.truth_rows_seen += p.truth_rows_seen;
            counts.missing += p.missing;
        }
        let source = source.finish()?;
        // 3. Bucket by bucket: the target's entries in memory, the source's records probing them.
        let pairing = me.clone();
        let paired = tokio::task::spawn_blocking(move || pairing.pair(&target, &source))
            .await
            .map_err(|e| internal(e.to_string()))??;
        drop(dir);
        counts.success = paired.success;
        counts.mismatch = paired.mismatch;
        counts.missing += paired.missing;
        counts.extraneous = extraneous + paired.extraneous;
        let notes = std::mem::take(&mut *notes.lock().unwrap_or_else(|e| e.into_inner()));
        let differences = me.describe(notes, paired, rescan).await?;
        Ok(TableVerify {
            table: me.plan.source.to_string(),
            collection: me.plan.collection.clone(),
            keyed_by: me.keyed_by(),
            counts,
            differences,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Pairs the two sides' bucket files, one bucket at a time.
    fn pair(
        &self,
        target: &[std::path::PathBuf],
        source: &[std::path::PathBuf],
    ) -> Result<Paired, PipelineError> {
        let max = self.max_differences;
        let mut out = Paired::default();
        let mut map: HashMap<Box<[u8]>, Entry> = HashMap::new();
        for (t, s) in target.iter().zip(source) {
            map.clear();
            spill::read_bucket(t, |key, fingerprint| {
                map.entry(Box::from(key))
                    .or_insert(Entry {
                        fingerprint,
                        count: 0,
                        seen: 0,
                    })
                    .count += 1;
            })?;
            spill::read_bucket(s, |key, fingerprint| match map.get_mut(key) {
                Some(e) if e.seen < e.count => {
                    e.seen += 1;
                    if e.fingerprint == fingerprint {
                        out.success += 1;
                    } else {
                        out.mismatch += 1;
                        keep_smallest(&mut out.mismatched, key, max);
                    }
                }
                found => {
                    out.missing += 1;
                    if found.is_some() {
                        out.duplicates += 1;
                        keep_smallest(&mut out.duplicated, key, max);
                    }
                    keep_smallest(&mut out.absent, key, max);
                }
            })?;
            for (key, e) in &map {
                if e.seen < e.count {
                    out.extraneous += u64::from(e.count - e.seen);
                    keep_smallest(&mut out.unclaimed, key, max);
                }
            }
        }
        Ok(out)
    }

    /// The compared columns of a collection batch (projected in compare order), cast to the
    /// collection's types.
    /// On Milvus, JSON is compared parsed (the server may store it re-serialized).
    fn compared(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>, PipelineError> {
        let parsed_json = self.reader.as_ref().is_some_and(|r| r.reserializes_json());
        batch
            .columns()
            .iter()
            .zip(&self.types)
            .enumerate()
            .map(|(i, (c, t))| {
                let c = if c.data_type() == t {
                    c.clone()
                } else {
                    cast(c, t).map_err(arrow_err)?
                };
                if parsed_json && self.field_type(i) == Some(FieldType::Json) {
                    return Ok(canonical_json(&c));
                }
                Ok(c)
            })
            .collect()
    }

    fn encode(&self, cols: &[ArrayRef]) -> Result<(Rows, Option<Rows>), PipelineError> {
        let rows = self.rows.convert_columns(cols).map_err(arrow_err)?;
        let keys = match (&self.keying, &self.keys) {
            (Keying::Columns(idx), Some(conv)) => Some(
                conv.convert_columns(&idx.iter().map(|i| cols[*i].clone()).collect::<Vec<_>>())
                    .map_err(arrow_err)?,
            ),
            _ => None,
        };
        Ok((rows, keys))
    }

    /// The map key of row `r`: its key's bytes, or its fingerprint.
    fn map_key(keys: Option<&Rows>, fingerprint: u128, r: usize) -> Box<[u8]> {
        match keys {
            Some(k) => Box::from(k.row(r).as_ref()),
            None => Box::from(fingerprint.to_le_bytes().as_slice()),
        }
    }

    /// Each row's key and fingerprint into `spill`.
    fn spill_rows(&self, batch: &RecordBatch, spill: &Spill) -> Result<(), PipelineError> {
        let cols = self.compared(batch)?;
        let (rows, keys) = self.encode(&cols)?;
        for r in 0..batch.num_rows() {
            let fp = fingerprint(rows.row(r).as_ref());
            spill.push(&Self::map_key(keys.as_ref(), fp, r), fp)?;
        }
        Ok(())
    }

    /// Maps a source batch and spills its rows; rows the mapping rejects are missing.
    fn probe(
        &self,
        batch: &RecordBatch,
        counts: &mut Counts,
        notes: &Mutex<Vec<Difference>>,
        spill: &Spill,
    ) -> Result<(), PipelineError> {
        counts.truth_rows_seen += batch.num_rows() as u64;
        let (mapped, rejects) = self.mapper.map(batch)?;
        let mapped = match &self.reader {
            Some(r) => r.as_stored(mapped)?,
            None => mapped,
        };
        // Rows the mapping leaves out on purpose (`on_null: skip`) are not expected in the target.
        let rejects: Vec<_> = rejects
            .into_iter()
            .filter(|r| !r.reason.is_skip())
            .collect();
        if !rejects.is_empty() {
            counts.missing += rejects.len() as u64;
            let mut n = notes.lock().unwrap_or_else(|e| e.into_inner());
            for r in rejects {
                if n.len() < self.max_differences {
                    n.push(Difference {
                        kind: DifferenceKind::Missing,
                        key: r.primary_key.clone(),
                        columns: Vec::new(),
                        note: Some(format!(
                            "rejected by the mapping: {} ({})",
                            r.message, r.column
                        )),
                    });
                }
            }
        }
        self.spill_rows(&mapped, spill)
    }

    /// A row's key as JSON: one value, an object of key columns, or (no key) the row's
    /// scalar columns.
    fn display_key(&self, cols: &[ArrayRef], r: usize) -> Value {
        let idx: Vec<usize> = match &self.keying {
            Keying::Columns(idx) => idx.clone(),
            Keying::RowHash => (0..cols.len())
                .filter(|i| !self.field_type(*i).is_some_and(FieldType::is_vector))
                .collect(),
        };
        if let [only] = idx.as_slice()
            && matches!(self.keying, Keying::Columns(_))
        {
            return to_json(cols[*only].as_ref(), r, self.field_type(*only));
        }
        Value::Object(
            idx.iter()
                .map(|i| {
                    (
                        self.columns[*i].clone(),
                        short(to_json(cols[*i].as_ref(), r, self.field_type(*i))),
                    )
                })
                .collect(),
        )
    }

    fn field_type(&self, i: usize) -> Option<FieldType> {
        self.schema.field(&self.columns[i]).map(|f| f.data_type)
    }

    /// Finds the rows behind the differences to show (a second, filtered read of each side)
    /// and lists the columns that differ.
    async fn describe(
        self: &Arc<Self>,
        notes: Vec<Difference>,
        paired: Paired,
        rescan: Rescan,
    ) -> Result<Vec<Difference>, PipelineError> {
        let Paired {
            mismatched,
            absent,
            duplicated,
            unclaimed,
            duplicates,
            ..
        } = paired;
        let in_target: HashSet<Box<[u8]>> = mismatched.iter().chain(&unclaimed).cloned().collect();
        let found: HashMap<Box<[u8]>, RecordBatch> = match (&self.reader, in_target.is_empty()) {
            (Some(reader), false) => {
                let found = Arc::new(Mutex::new(HashMap::new()));
                let (me, into) = (self.clone(), found.clone());
                reader
                    .scan(
                        self.parallelism,
                        Arc::new(move |batch| {
                            let mut into = into.lock().unwrap_or_else(|e| e.into_inner());
                            me.find_rows(batch, &in_target, &mut into)
                        }),
                    )
                    .await?;
                std::mem::take(&mut *found.lock().unwrap_or_else(|e| e.into_inner()))
            }
            _ => HashMap::new(),
        };
        let in_source: HashSet<Box<[u8]>> = mismatched.iter().chain(&absent).cloned().collect();
        let from_source = if in_source.is_empty() {
            HashMap::new()
        } else {
            self.find_source_rows(rescan().await?, &in_source).await?
        };
        let mut out = notes;
        for key in &absent {
            let key_value = match from_source.get(key) {
                Some(row) => self.display_key(&self.compared(row)?, 0),
                None => self.parse_key(key),
            };
            out.push(Difference {
                kind: DifferenceKind::Missing,
                key: key_value,
                columns: Vec::new(),
                note: duplicated
                    .contains(key)
                    .then(|| "the key appears more than once in the source".to_string()),
            });
        }
        out.sort_by_key(|d| d.key.to_string());
        out.truncate(self.max_differences);
        for key in mismatched {
            let Some(source_row) = from_source.get(&key) else {
                continue;
            };
            let source_cols = self.compared(source_row)?;
            let mut d = Difference {
                kind: DifferenceKind::Mismatch,
                key: self.display_key(&source_cols, 0),
                columns: Vec::new(),
                note: None,
            };
            match found.get(&key) {
                Some(target_row) => {
                    let target_cols = self.compared(target_row)?;
                    for (i, name) in self.columns.iter().enumerate() {
                        if !same_value(&source_cols[i], &target_cols[i])? {
                            let t = self.field_type(i);
                            d.columns.push(ColumnDifference {
                                column: name.clone(),
                                source: short(to_json(source_cols[i].as_ref(), 0, t)),
                                target: short(to_json(target_cols[i].as_ref(), 0, t)),
                            });
                        }
                    }
                }
                None => d.note = Some("the collection changed while verifying".into()),
            }
            out.push(d);
        }
        for key in unclaimed {
            let key_value = match found.get(&key) {
                Some(row) => self.display_key(&self.compared(row)?, 0),
                None => self.parse_key(&key),
            };
            out.push(Difference {
                kind: DifferenceKind::Extraneous,
                key: key_value,
                columns: Vec::new(),
                note: None,
            });
        }
        if duplicates > 0 {
            tracing::warn!(table = %self.plan.source, duplicates, "source keys seen more than once");
        }
        Ok(out)
    }

    /// The source rows (mapped, as stored) whose map keys are in `wanted`.
    async fn find_source_rows(
        self: &Arc<Self>,
        scan: SourceScan,
        wanted: &HashSet<Box<[u8]>>,
    ) -> Result<HashMap<Box<[u8]>, RecordBatch>, PipelineError> {
        let mut found = HashMap::new();
        for p in 0..scan.partitions() {
            let mut stream = scan.execute(p)?;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(PipelineError::from_datafusion)?;
                let (mapped, _) = self.mapper.map(&batch)?;
                let mapped = match &self.reader {
                    Some(r) => r.as_stored(mapped)?,
                    None => mapped,
                };
                if self.find_rows(&mapped, wanted, &mut found)? {
                    return Ok(found);
                }
            }
        }
        Ok(found)
    }

    /// A key's value as JSON from its bytes (a row-hash key has none to show).
    fn parse_key(&self, key: &[u8]) -> Value {
        let (Some(conv), Keying::Columns(idx)) = (&self.keys, &self.keying) else {
            return Value::Null;
        };
        let parser = conv.parser();
        match conv.convert_rows([parser.parse(key)]) {
            Ok(arrays) if arrays.len() == 1 => to_json(arrays[0].as_ref(), 0, None),
            Ok(arrays) => Value::Object(
                idx.iter()
                    .zip(&arrays)
                    .map(|(i, a)| {
                        (
                            self.columns[*i].clone(),
                            to_json(a.as_ref(), 0, self.field_type(*i)),
                        )
                    })
                    .collect(),
            ),
            Err(_) => Value::Null,
        }
    }

    /// Adds the rows of `batch` whose map keys are in `wanted` to `found`, one single-row
    /// batch each; returns whether all are found.
    fn find_rows(
        &self,
        batch: &RecordBatch,
        wanted: &HashSet<Box<[u8]>>,
        found: &mut HashMap<Box<[u8]>, RecordBatch>,
    ) -> Result<bool, PipelineError> {
        let cols = self.compared(batch)?;
        let (rows, keys) = self.encode(&cols)?;
        for r in 0..batch.num_rows() {
            let key = Self::map_key(keys.as_ref(), fingerprint(rows.row(r).as_ref()), r);
            if wanted.contains(&key) {
                // A copy of the row: a slice would keep its whole page alive.
                let one = datafusion::arrow::compute::take_record_batch(
                    batch,
                    &datafusion::arrow::array::UInt32Array::from(vec![r as u32]),
                )
                .map_err(arrow_err)?;
                found.insert(key, one);
            }
        }
        Ok(found.len() == wanted.len())
    }
}
