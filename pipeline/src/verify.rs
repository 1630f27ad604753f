//! `etl verify`: the source (the truth) and each collection compared row by row.
//!
//! Both sides are compared after the mapping: source batches go through the same [`Mapper`]
//! as `etl run`, so a vector compares bit for bit as stored (a halfvec exactly as FLOAT16), a
//! numeric by its mapping rule and text byte for byte. Rows are encoded with arrow's row
//! format and fingerprinted (128 bits).
//!
//! The collection is read first, segment by segment in parallel, into a map from key to
//! fingerprint split into shards; then the source is read in parallel ranges on one snapshot,
//! each row probing its shard. Memory is one small entry per target row (the key's bytes and
//! a fingerprint), never the rows themselves. Rows are keyed by the primary key; in an
//! auto-ID collection by the source's key columns kept as fields; with no key at all by the
//! whole row's fingerprint (a multiset), where a changed row counts as one missing and one
//! extraneous row. The few differing rows shown are found again with a second, filtered scan.
//!
//! The counters are MOLT Verify's: truth rows seen (source rows), success, missing (in the
//! source, not the target), mismatch (in both, different) and extraneous (in the target only).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
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
pub use report::{
    ColumnDifference, Counts, Difference, DifferenceKind, TableVerify, VerifyObserver,
    VerifyOptions, VerifyReport,
};
use rows::{arrow_err, canonical_json, fingerprint, internal, same_value};

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
        let scan = SourceScan::open(
            &source_conn,
            source,
            read,
            &verifier.mapper.source_columns(),
            None,
        )
        .await?;
        observer.table_started(&tp.source.to_string(), tp.estimated_rows);
        let result = verifier.run(scan, observer.clone()).await?;
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

const SHARDS: usize = 64;

type Shard = Mutex<HashMap<Box<[u8]>, Entry>>;

/// Source rows kept to describe a difference.
#[derive(Default)]
struct Kept {
    mismatched: Vec<(Box<[u8]>, RecordBatch)>,
    missing: Vec<Difference>,
    duplicates: u64,
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
    shards: Vec<Shard>,
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
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
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
        observer: Arc<dyn VerifyObserver>,
    ) -> Result<TableVerify, PipelineError> {
        let name = self.plan.source.to_string();
        let started = Instant::now();
        let me = Arc::new(self);
        // 1. The collection, into the sharded map.
        let mut extraneous = 0u64;
        if let Some(reader) = &me.reader {
            let index = me.clone();
            let read = reader
                .scan(
                    me.parallelism,
                    Arc::new(move |batch| index.index_batch(batch).map(|()| false)),
                )
                .await?;
            extraneous += reader.surplus(read).await?;
        }
        // 2. The source, probing the map.
        let kept = Arc::new(Mutex::new(Kept::default()));
        let parts = futures::stream::iter((0..scan.partitions()).map(|p| {
            let me = me.clone();
            let kept = kept.clone();
            let stream = scan.execute(p);
            let (observer, stats, name) = (observer.clone(), scan.stats.clone(), name.clone());
            async move {
                let mut stream = stream?;
                let mut counts = Counts::default();
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(PipelineError::from_datafusion)?;
                    me.probe(&batch, &mut counts, &kept)?;
                    // Dump rows the reader set aside were rejected by the run too: missing.
                    let unreadable = stats.take_bad_rows(p);
                    counts.truth_rows_seen += unreadable.len() as u64;
                    counts.missing += unreadable.len() as u64;
                    let mut k = kept.lock().unwrap_or_else(|e| e.into_inner());
                    for b in unreadable {
                        if k.missing.len() < me.max_differences {
                            k.missing.push(Difference {
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
            counts.success += p.success;
            counts.missing += p.missing;
            counts.mismatch += p.mismatch;
        }
        // 3. Target rows no source row claimed.
        let mut unclaimed: BTreeSet<Box<[u8]>> = BTreeSet::new();
        for shard in &me.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (k, e) in shard.iter() {
                if e.seen < e.count {
                    extraneous += u64::from(e.count - e.seen);
                    unclaimed.insert(k.clone());
                    if unclaimed.len() > me.max_differences {
                        unclaimed.pop_last();
                    }
                }
            }
        }
        counts.extraneous = extraneous;
        let kept = std::mem::take(&mut *kept.lock().unwrap_or_else(|e| e.into_inner()));
        let differences = me.describe(kept, unclaimed).await?;
        Ok(TableVerify {
            table: me.plan.source.to_string(),
            collection: me.plan.collection.clone(),
            keyed_by: me.keyed_by(),
            counts,
            differences,
            seconds: started.elapsed().as_secs_f64(),
        })
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

    fn shard(&self, key: &[u8]) -> &Shard {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Adds a batch of collection rows (compared columns in order) to the map.
    fn index_batch(&self, batch: &RecordBatch) -> Result<(), PipelineError> {
        let cols = self.compared(batch)?;
        let (rows, keys) = self.encode(&cols)?;
        for r in 0..batch.num_rows() {
            let fp = fingerprint(rows.row(r).as_ref());
            let key = Self::map_key(keys.as_ref(), fp, r);
            let mut shard = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
            let e = shard.entry(key).or_insert(Entry {
                fingerprint: fp,
                count: 0,
                seen: 0,
            });
            e.count += 1;
        }
        Ok(())
    }

    /// Maps a source batch and pairs each row with the collection's.
    fn probe(
        &self,
        batch: &RecordBatch,
        counts: &mut Counts,
        kept: &Mutex<Kept>,
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
            let mut k = kept.lock().unwrap_or_else(|e| e.into_inner());
            for r in rejects {
                if k.missing.len() < self.max_differences {
                    k.missing.push(Difference {
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
        let cols = self.compared(&mapped)?;
        let (rows, keys) = self.encode(&cols)?;
        for r in 0..mapped.num_rows() {
            let fp = fingerprint(rows.row(r).as_ref());
            let key = Self::map_key(keys.as_ref(), fp, r);
            let outcome = {
                let mut shard = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
                match shard.get_mut(&key) {
                    Some(e) if e.seen < e.count => {
                        e.seen += 1;
                        if keys.is_none() || e.fingerprint == fp {
                            Outcome::Success
                        } else {
                            Outcome::Mismatch
                        }
                    }
                    Some(_) => Outcome::Duplicate,
                    None => Outcome::Missing,
                }
            };
            match outcome {
                Outcome::Success => counts.success += 1,
                Outcome::Mismatch => {
                    counts.mismatch += 1;
                    let mut k = kept.lock().unwrap_or_else(|e| e.into_inner());
                    if k.mismatched.len() < self.max_differences {
                        k.mismatched.push((key, mapped.slice(r, 1)));
                    }
                }
                Outcome::Missing | Outcome::Duplicate => {
                    counts.missing += 1;
                    let mut k = kept.lock().unwrap_or_else(|e| e.into_inner());
                    if matches!(outcome, Outcome::Duplicate) {
                        k.duplicates += 1;
                    }
                    if k.missing.len() < self.max_differences {
                        let note = matches!(outcome, Outcome::Duplicate)
                            .then(|| "the key appears more than once in the source".to_string());
                        k.missing.push(Difference {
                            kind: DifferenceKind::Missing,
                            key: self.display_key(&cols, r),
                            columns: Vec::new(),
                            note,
                        });
                    }
                }
            }
        }
        Ok(())
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

    /// Finds the collection rows behind the differences to show, and lists the columns that
    /// differ.
    async fn describe(
        self: &Arc<Self>,
        kept: Kept,
        unclaimed: BTreeSet<Box<[u8]>>,
    ) -> Result<Vec<Difference>, PipelineError> {
        let wanted: HashSet<Box<[u8]>> = kept
            .mismatched
            .iter()
            .map(|(k, _)| k.clone())
            .chain(unclaimed.iter().cloned())
            .collect();
        let found: HashMap<Box<[u8]>, RecordBatch> = match (&self.reader, wanted.is_empty()) {
            (Some(reader), false) => {
                let found = Arc::new(Mutex::new(HashMap::new()));
                let (me, into) = (self.clone(), found.clone());
                reader
                    .scan(
                        self.parallelism,
                        Arc::new(move |batch| {
                            let mut into = into.lock().unwrap_or_else(|e| e.into_inner());
                            me.find_rows(batch, &wanted, &mut into)
                        }),
                    )
                    .await?;
                std::mem::take(&mut *found.lock().unwrap_or_else(|e| e.into_inner()))
            }
            _ => HashMap::new(),
        };
        let mut out = kept.missing;
        out.sort_by_key(|d| d.key.to_string());
        let mut mismatched = kept.mismatched;
        mismatched.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, source_row) in mismatched {
            let source_cols = self.compared(&source_row)?;
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
            let key_value = match (found.get(&key), &self.keys) {
                (Some(row), _) => self.display_key(&self.compared(row)?, 0),
                (None, Some(conv)) => {
                    let parser = conv.parser();
                    let parsed = parser.parse(&key);
                    match (conv.convert_rows([parsed]), &self.keying) {
                        (Ok(arrays), _) if arrays.len() == 1 => {
                            to_json(arrays[0].as_ref(), 0, None)
                        }
                        (Ok(arrays), Keying::Columns(idx)) => Value::Object(
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
                        _ => Value::Null,
                    }
                }
                (None, None) => Value::Null,
            };
            out.push(Difference {
                kind: DifferenceKind::Extraneous,
                key: key_value,
                columns: Vec::new(),
                note: None,
            });
        }
        if kept.duplicates > 0 {
            tracing::warn!(table = %self.plan.source, duplicates = kept.duplicates, "source keys seen more than once");
        }
        Ok(out)
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

enum Outcome {
    Success,
    Mismatch,
    Missing,
    Duplicate,
}
