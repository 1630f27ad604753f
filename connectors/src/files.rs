//! CSV and Parquet files as a source, through DataFusion's own readers. Each file is a table
//! named by its stem (`items.csv` → `public.items`); a directory or a glob gives several. The
//! schema is DataFusion's inference, refined: a CSV column whose values are pgvector's text
//! (`[1,2,3]`, `{1:0.5}/10`) is a vector, and a mapping's `type:` says what a column holds
//! where inference cannot. CSV text then goes through the same text-to-binary step and column
//! decoders as dumps; Parquet columns are cast to the live source's Arrow types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use etl_mappings::{PgKind, PgType, QualifiedName, SourceColumn, SourceTable};
use futures::StreamExt;

use crate::dump::{TextField, encode};
use crate::error::ConnectorError;
use crate::postgres::{ColumnDecoder, ReadKind, ReadOptions, ReadStats, read_kind};

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// CSV with a header row.
    Csv,
    /// Parquet.
    Parquet,
}

impl FileFormat {
    fn extension(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Parquet => "parquet",
        }
    }
}

/// A column type a mapping asks for, by table and column (`type: FLOAT_VECTOR`, `dim: 3`).
pub type Hints = BTreeMap<(QualifiedName, String), PgKind>;

/// One file read as a table.
#[derive(Debug, Clone)]
pub struct FileTable {
    /// The table it is seen as.
    pub source: SourceTable,
    paths: Vec<PathBuf>,
    format: FileFormat,
}

/// The files of a `csv:` or `parquet:` source.
#[derive(Debug, Clone)]
pub struct FileSource {
    format: FileFormat,
    tables: Vec<FileTable>,
}

fn err(path: &Path, reason: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Dump {
        file: path.display().to_string(),
        at: None,
        reason: reason.to_string(),
    }
}

/// The tables a spec names, each with its files: a file; a glob; or a directory, whose files
/// with the format's extension are tables by stem and whose subdirectories holding such files
/// are tables by directory name (a stage's `<collection>/*.parquet`). Files that share a stem
/// (`items.2024.csv`, `items.2025.csv`) are one table.
fn expand(
    spec: &str,
    format: FileFormat,
) -> Result<Vec<(QualifiedName, Vec<PathBuf>)>, ConnectorError> {
    let spec_path = Path::new(spec.strip_prefix("file://").unwrap_or(spec));
    if spec.contains("://") && !spec.starts_with("file://") {
        return Err(err(
            spec_path,
            "object-store URLs are read by `etl import`; give a local path or glob here",
        ));
    }
    let has_ext = |p: &Path| p.is_file() && p.extension().is_some_and(|x| x == format.extension());
    let mut groups: BTreeMap<QualifiedName, Vec<PathBuf>> = BTreeMap::new();
    if spec_path.is_dir() {
        let entries: Vec<PathBuf> = std::fs::read_dir(spec_path)
            .map_err(|e| err(spec_path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        for p in entries {
            if has_ext(&p) {
                groups.entry(table_name(&p)).or_default().push(p);
            } else if p.is_dir() {
                let files: Vec<PathBuf> = std::fs::read_dir(&p)
                    .map_err(|e| err(&p, e))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| has_ext(f))
                    .collect();
                if !files.is_empty() {
                    let name = QualifiedName::new(
                        "public",
                        p.file_name()
                            .map(|n| n.to_string_lossy().to_string())
                            .unwrap_or_default(),
                    );
                    groups.entry(name).or_default().extend(files);
                }
            }
        }
    } else if spec.contains(['*', '?', '[']) {
        for p in glob::glob(&spec_path.display().to_string())
            .map_err(|e| err(spec_path, e))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
        {
            groups.entry(table_name(&p)).or_default().push(p);
        }
    } else if spec_path.is_file() {
        groups
            .entry(table_name(spec_path))
            .or_default()
            .push(spec_path.to_path_buf());
    } else {
        return Err(err(spec_path, "no such file"));
    }
    if groups.is_empty() {
        return Err(err(
            spec_path,
            format!("no .{} files here", format.extension()),
        ));
    }
    Ok(groups
        .into_iter()
        .map(|(n, mut f)| {
            f.sort();
            (n, f)
        })
        .collect())
}

/// A file's table: its stem up to the first dot (`items.2024.csv` → `public.items`).
fn table_name(path: &Path) -> QualifiedName {
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = stem.split('.').next().unwrap_or(&stem).to_string();
    QualifiedName::new("public", stem)
}

/// A session reading with `partitions` target partitions.
fn session(partitions: usize) -> SessionContext {
    SessionContext::new_with_config(SessionConfig::new().with_target_partitions(partitions.max(1)))
}

async fn frame(
    ctx: &SessionContext,
    paths: &[PathBuf],
    format: FileFormat,
    schema: Option<&Schema>,
) -> Result<datafusion::dataframe::DataFrame, ConnectorError> {
    let path = paths.first().map(PathBuf::as_path).unwrap_or(Path::new(""));
    let p: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let r = match format {
        FileFormat::Csv => {
            // Quoted fields may hold newlines: never split a file at an arbitrary one.
            let mut o = CsvReadOptions::new()
                .has_header(true)
                .file_extension("")
                .newlines_in_values(true);
            if let Some(s) = schema {
                o = o.schema(s);
            }
            ctx.read_csv(p, o).await
        }
        FileFormat::Parquet => {
            ctx.read_parquet(p, ParquetReadOptions::default().file_extension(""))
                .await
        }
    };
    r.map_err(|e| err(path, e))
}

/// What a text value written by pgvector or Postgres looks like.
fn sniff(value: &str) -> Option<PgKind> {
    let v = value.trim();
    if v.starts_with('[') && v.ends_with(']') {
        let parts: Vec<&str> = v[1..v.len() - 1].split(',').collect();
        if parts.iter().all(|p| p.trim().parse::<f32>().is_ok()) {
            return Some(PgKind::Vector {
                dim: Some(parts.len() as u32),
            });
        }
    }
    if v.starts_with('{')
        && let Some((_, dim)) = v.rsplit_once("}/")
        && let Ok(d) = dim.parse::<u32>()
    {
        return Some(PgKind::SparseVec { dim: Some(d) });
    }
    None
}

/// The Postgres kind a file column stands for.
fn kind_of(dt: &DataType) -> PgKind {
    match dt {
        DataType::Boolean => PgKind::Bool,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => PgKind::Int2,
        DataType::Int32 | DataType::UInt16 => PgKind::Int4,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => PgKind::Int8,
        DataType::Float16 | DataType::Float32 => PgKind::Float4,
        DataType::Float64 => PgKind::Float8,
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => PgKind::Numeric {
            precision: Some(u32::from(*p)),
            scale: Some((*s).max(0) as u32),
        },
        DataType::Date32 | DataType::Date64 => PgKind::Date,
        DataType::Timestamp(_, None) => PgKind::Timestamp,
        DataType::Timestamp(_, Some(_)) => PgKind::TimestampTz,
        DataType::Time32(_) | DataType::Time64(_) => PgKind::Time,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => PgKind::Bytea,
        DataType::FixedSizeBinary(n) => PgKind::Bit {
            length: Some(*n as u32 * 8),
        },
        DataType::FixedSizeList(f, _) | DataType::List(f) | DataType::LargeList(f)
            if matches!(f.data_type(), DataType::Float32 | DataType::Float16) =>
        {
            let dim = match dt {
                DataType::FixedSizeList(_, n) => Some(*n as u32),
                _ => None,
            };
            if *f.data_type() == DataType::Float16 {
                PgKind::HalfVec { dim }
            } else {
                PgKind::Vector { dim }
            }
        }
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            PgKind::Array {
                element: Box::new(kind_of(f.data_type())),
                ndims: 1,
            }
        }
        _ => PgKind::Text,
    }
}

fn display(kind: &PgKind) -> String {
    match kind {
        PgKind::Vector { dim: Some(d) } => format!("vector({d})"),
        PgKind::HalfVec { dim: Some(d) } => format!("halfvec({d})"),
        PgKind::SparseVec { dim: Some(d) } => format!("sparsevec({d})"),
        PgKind::Bit { length: Some(n) } => format!("bit({n})"),
        other => format!("{other:?}")
            .split([' ', '{'])
            .next()
            .unwrap_or("text")
            .to_lowercase(),
    }
}

impl FileSource {
    /// Lists and describes the files of `spec`.
    pub async fn open(
        spec: &str,
        format: FileFormat,
        hints: &Hints,
    ) -> Result<FileSource, ConnectorError> {
        let groups = expand(spec, format)?;
        let ctx = session(1);
        let mut tables = Vec::new();
        for (name, paths) in groups {
            let path = paths[0].clone();
            let df = frame(&ctx, &paths, format, None).await?;
            let inferred = df.schema().as_arrow().clone();
            // A sample for sniffing text columns.
            let sample = df
                .limit(0, Some(100))
                .map_err(|e| err(&path, e))?
                .collect()
                .await
                .map_err(|e| err(&path, e))?;
            let mut columns = Vec::new();
            for (i, f) in inferred.fields().iter().enumerate() {
                let mut kind = kind_of(f.data_type());
                if kind == PgKind::Text {
                    let first = sample.iter().find_map(|b| {
                        let c = b.column(i);
                        let s = c.as_string_opt::<i32>()?;
                        (0..s.len())
                            .find(|r| s.is_valid(*r))
                            .map(|r| s.value(r).to_string())
                    });
                    if let Some(k) = first.as_deref().and_then(sniff) {
                        kind = k;
                    }
                }
                if let Some(h) = hints.get(&(name.clone(), f.name().clone())) {
                    kind = h.clone();
                }
                columns.push(SourceColumn {
                    name: f.name().clone(),
                    pg_type: PgType::new(display(&kind), kind),
                    nullable: true,
                    generated: false,
                });
            }
            let bytes = Some(
                paths
                    .iter()
                    .filter_map(|p| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum(),
            );
            tables.push(FileTable {
                source: SourceTable {
                    name,
                    columns,
                    primary_key: Vec::new(),
                    partitioned: false,
                    estimated_rows: None,
                    estimated_bytes: bytes,
                    vector_indexes: Vec::new(),
                },
                paths,
                format,
            });
        }
        Ok(FileSource { format, tables })
    }

    /// The tables, for the planner.
    pub fn catalog(&self) -> Vec<SourceTable> {
        self.tables.iter().map(|t| t.source.clone()).collect()
    }

    /// The format.
    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// A provider for the table called `name`.
    pub fn provider(
        &self,
        name: &QualifiedName,
        options: ReadOptions,
    ) -> Result<FileTableProvider, ConnectorError> {
        let t = self
            .tables
            .iter()
            .find(|t| t.source.name == *name)
            .ok_or_else(|| ConnectorError::TableNotFound {
                table: name.to_string(),
            })?;
        if let Some(f) = &options.filter {
            return Err(err(
                &t.paths[0],
                format!("`where: {f}` needs a live Postgres source"),
            ));
        }
        Ok(FileTableProvider::new(t.clone(), options))
    }
}

/// How one column is turned into the live source's Arrow type.
#[derive(Debug, Clone)]
struct Conv {
    name: String,
    kind: ReadKind,
    /// CSV: through text; Parquet: `None`, cast.
    text: Option<TextField>,
}

/// A file table that DataFusion can scan, with the live source's Arrow types.
#[derive(Debug)]
pub struct FileTableProvider {
    table: FileTable,
    convs: Vec<Conv>,
    schema: SchemaRef,
    options: ReadOptions,
    stats: Arc<ReadStats>,
}

impl FileTableProvider {
    fn new(table: FileTable, options: ReadOptions) -> Self {
        let convs: Vec<Conv> = table
            .source
            .columns
            .iter()
            .map(|c| {
                let (kind, _) = read_kind(&c.pg_type.kind);
                let text =
                    (table.format == FileFormat::Csv).then(|| TextField::Binary(kind.clone()));
                Conv {
                    name: c.name.clone(),
                    kind,
                    text,
                }
            })
            .collect();
        let schema = Arc::new(Schema::new(
            convs
                .iter()
                .map(|c| Field::new(&c.name, c.kind.arrow_type(), true))
                .collect::<Vec<_>>(),
        ));
        FileTableProvider {
            table,
            convs,
            schema,
            options,
            stats: Arc::new(ReadStats::default()),
        }
    }

    /// Rows and bytes read so far.
    pub fn stats(&self) -> Arc<ReadStats> {
        self.stats.clone()
    }
}

#[async_trait]
impl TableProvider for FileTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.convs.len()).collect(),
        };
        let ctx = session(self.options.partitions);
        // CSV is read as text throughout; the conversion below parses it.
        let all_text;
        let read_schema = match self.table.format {
            FileFormat::Csv => {
                all_text = Schema::new(
                    self.convs
                        .iter()
                        .map(|c| Field::new(&c.name, DataType::Utf8, true))
                        .collect::<Vec<_>>(),
                );
                Some(&all_text)
            }
            FileFormat::Parquet => None,
        };
        let df = frame(&ctx, &self.table.paths, self.table.format, read_schema)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let names: Vec<&str> = indices
            .iter()
            .map(|i| self.convs[*i].name.as_str())
            .collect();
        let df = df.select_columns(&names)?;
        let df = match limit {
            Some(l) => df.limit(0, Some(l))?,
            None => df,
        };
        let inner = df.create_physical_plan().await?;
        let schema = Arc::new(self.schema.project(&indices)?);
        let convs: Vec<Conv> = indices.iter().map(|i| self.convs[*i].clone()).collect();
        let parts = inner.properties().partitioning.partition_count();
        let partitions: Vec<Arc<dyn PartitionStream>> = (0..parts)
            .map(|p| {
                Arc::new(Converted {
                    inner: inner.clone(),
                    partition: p,
                    ctx: ctx.task_ctx(),
                    convs: convs.clone(),
                    schema: schema.clone(),
                    stats: self.stats.clone(),
                    table: self.table.source.name.to_string(),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(StreamingTableExec::try_new(
            schema, partitions, None, None, false, None,
        )?))
    }
}

/// One partition of the file scan, converted batch by batch.
#[derive(Debug)]
struct Converted {
    inner: Arc<dyn ExecutionPlan>,
    partition: usize,
    ctx: Arc<TaskContext>,
    convs: Vec<Conv>,
    schema: SchemaRef,
    stats: Arc<ReadStats>,
    table: String,
}

impl PartitionStream for Converted {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = self.schema.clone();
        let convs = self.convs.clone();
        let stats = self.stats.clone();
        let table = self.table.clone();
        let stream = match self.inner.execute(self.partition, self.ctx.clone()) {
            Ok(s) => s
                .map(move |b| {
                    let b = b?;
                    stats.rows.fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                    stats
                        .bytes
                        .fetch_add(b.get_array_memory_size() as u64, Ordering::Relaxed);
                    convert(&b, &convs, &schema, &table)
                        .map_err(|e| DataFusionError::External(Box::new(e)))
                })
                .boxed(),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        };
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

fn convert(
    b: &RecordBatch,
    convs: &[Conv],
    schema: &SchemaRef,
    table: &str,
) -> Result<RecordBatch, ConnectorError> {
    let bad = |col: &str, reason: String| ConnectorError::Decode {
        table: table.to_string(),
        column: Some(col.to_string()),
        row: 0,
        reason,
    };
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(convs.len());
    let mut scratch = Vec::new();
    for (c, col) in convs.iter().zip(b.columns()) {
        match &c.text {
            Some(field) => {
                let text = cast(col, &DataType::Utf8).map_err(|e| bad(&c.name, e.to_string()))?;
                let s = text.as_string::<i32>();
                let mut dec = ColumnDecoder::new(&c.kind);
                for r in 0..s.len() {
                    if s.is_null(r) {
                        dec.append(None).map_err(|e| bad(&c.name, e.0))?;
                        continue;
                    }
                    encode(field, s.value(r).as_bytes(), &mut scratch)
                        .map_err(|e| bad(&c.name, format!("row {} of the batch: {e}", r + 1)))?;
                    dec.append(Some(&scratch)).map_err(|e| bad(&c.name, e.0))?;
                }
                arrays.push(dec.finish());
            }
            None => {
                let want = c.kind.arrow_type();
                let strict = datafusion::arrow::compute::CastOptions {
                    safe: false,
                    ..Default::default()
                };
                let a = datafusion::arrow::compute::cast_with_options(col, &want, &strict)
                    .map_err(|e| {
                        bad(
                            &c.name,
                            format!("cannot read {} as {want}: {e}", col.data_type()),
                        )
                    })?;
                arrays.push(a);
            }
        }
    }
    let options = RecordBatchOptions::new().with_row_count(Some(b.num_rows()));
    RecordBatch::try_new_with_options(schema.clone(), arrays, &options)
        .map_err(|e| bad("*", e.to_string()))
}
