//! `etl init` and `etl plan`: read a source's catalog and turn it, with a mapping, into a plan
//! (or, for init, into a new mapping file).

use std::path::{Path, PathBuf};

use etl_connectors::postgres::{self, PgUrl};
use etl_mappings::{
    InitOptions, MappingError, ParsedMapping, Plan, QualifiedName, SourceTable, build_plan,
    parse_mapping, render_mapping,
};

use std::sync::Arc;

use etl_connectors::files::{FileFormat, FileSource, Hints};
use etl_mappings::{DataType, PgKind};

use crate::error::PipelineError;
use crate::source::{Source, beside, postgres_url};
use crate::target::TargetOptions;

/// Reads and parses a mapping file, taking `${VAR}`s from the process environment.
pub fn load_mapping(path: &Path) -> Result<ParsedMapping, PipelineError> {
    let text = fs_err::read_to_string(path)?;
    let name = path.display().to_string();
    Ok(parse_mapping(&text, &name, &|k| std::env::var(k).ok())?)
}

/// Opens the mapping's source and reads its catalog for the tables the mapping names (every
/// table when it names none).
pub async fn open_source(
    mapping: &ParsedMapping,
) -> Result<(Source, Vec<SourceTable>), PipelineError> {
    let source = &mapping.file.source;
    if let Some(path) = &source.dump {
        let opened = Source::open_dump(beside(mapping, path)).await?;
        let catalog = match &opened {
            Source::Dump(a) => a.catalog(),
            _ => Vec::new(),
        };
        return Ok((opened, catalog));
    }
    let files = match (&source.csv, &source.parquet) {
        (Some(p), _) => Some((p, FileFormat::Csv)),
        (None, Some(p)) => Some((p, FileFormat::Parquet)),
        _ => None,
    };
    if let Some((spec, format)) = files {
        let spec = if spec.contains("://") {
            spec.clone()
        } else {
            beside(mapping, spec).display().to_string()
        };
        let opened = FileSource::open(&spec, format, &file_hints(mapping)).await?;
        let catalog = opened.catalog();
        return Ok((Source::Files(Arc::new(opened)), catalog));
    }
    let url = postgres_url(mapping)?;
    let catalog = live_catalog(mapping, &url).await?;
    Ok((Source::Postgres(Box::new(url)), catalog))
}

/// Column types a mapping states for files, where inference cannot know them (a vector's
/// kind and dimension in a text column).
fn file_hints(mapping: &ParsedMapping) -> Hints {
    let mut hints = Hints::new();
    for t in &mapping.file.tables {
        let Ok(table) = QualifiedName::parse(&t.source) else {
            continue;
        };
        for f in &t.fields {
            let kind = match f.data_type.as_deref().and_then(DataType::parse) {
                Some(DataType::FloatVector) => PgKind::Vector { dim: f.dim },
                Some(DataType::Float16Vector) => PgKind::HalfVec { dim: f.dim },
                Some(DataType::SparseFloatVector) => PgKind::SparseVec { dim: f.dim },
                Some(DataType::BinaryVector) => PgKind::Bit { length: f.dim },
                Some(DataType::Json) => PgKind::Jsonb,
                _ => continue,
            };
            hints.insert((table.clone(), f.source.clone()), kind);
        }
    }
    hints
}

/// The live source's catalog for the tables the mapping names (every table when it names none).
pub async fn read_catalog(mapping: &ParsedMapping) -> Result<Vec<SourceTable>, PipelineError> {
    Ok(open_source(mapping).await?.1)
}

async fn live_catalog(
    mapping: &ParsedMapping,
    url: &PgUrl,
) -> Result<Vec<SourceTable>, PipelineError> {
    let client = postgres::connect(url).await?;
    let names = mapping
        .file
        .tables
        .iter()
        .map(|t| QualifiedName::parse(&t.source))
        .collect::<Result<Vec<_>, MappingError>>()?;
    describe_for_plan(&client, &names).await
}

/// Describes the named tables (every table when none are named). When a named table is
/// missing, every table is described instead so the planner can suggest the closest one.
async fn describe_for_plan(
    client: &postgres::Client,
    names: &[QualifiedName],
) -> Result<Vec<SourceTable>, PipelineError> {
    let wanted = (!names.is_empty()).then_some(names);
    let tables = postgres::describe_tables(client, wanted).await?;
    if tables.len() < names.len() {
        return Ok(postgres::describe_tables(client, None).await?);
    }
    Ok(tables)
}

/// Connects, inspects and validates: the plan `etl plan` prints and `etl run` follows, with
/// the source's label.
pub async fn plan(
    mapping: &ParsedMapping,
    recreate: bool,
) -> Result<(String, Plan), PipelineError> {
    let (source, catalog) = open_source(mapping).await?;
    let mut plan = build_plan(mapping, &catalog)?;
    crate::checks::add_source_fixes(mapping, &mut plan, true).await?;
    crate::checks::add_target_fixes(&mut plan);
    // What the target `etl run` would write to refuses and changes, by its own code.
    let route = crate::route::resolve(mapping, None)?;
    let opts = TargetOptions {
        dump: source.dump(),
        ..Default::default()
    };
    crate::target::open(&route.writes(), Some(mapping), &opts)?
        .check(&mut plan, recreate)
        .await?;
    Ok((source.label(), plan))
}

/// Where `etl init` reads the catalog from.
#[derive(Debug, Clone)]
pub enum InitSource {
    /// A live server's URL as given (it may hold a password, which is never written out).
    Postgres(String),
    /// A pg_dump file or directory.
    Dump(PathBuf),
}

/// What `etl init` is asked.
#[derive(Debug, Clone)]
pub struct InitRequest {
    /// The source.
    pub source: InitSource,
    /// Tables to include; all when empty.
    pub tables: Vec<String>,
    /// The engine directory to write into the mapping.
    pub target: String,
}

/// The dimensions found in an untyped vector column (`embedding vector`, as langchain's
/// `PGVector` declares it), most rows first.
struct InferredDims {
    table: QualifiedName,
    column: String,
    found: Vec<(u32, i64)>,
}

/// Reads what the catalog does not say: the dimensions of vector columns declared without one.
async fn infer_dims(
    client: &postgres::Client,
    catalog: &[SourceTable],
) -> Result<Vec<InferredDims>, PipelineError> {
    use etl_mappings::PgKind;
    let mut out = Vec::new();
    for t in catalog {
        for c in &t.columns {
            if !matches!(
                c.pg_type.kind,
                PgKind::Vector { dim: None } | PgKind::HalfVec { dim: None }
            ) {
                continue;
            }
            let found = postgres::vector_dims(client, &t.name, &c.name, None).await?;
            out.push(InferredDims {
                table: t.name.clone(),
                column: c.name.clone(),
                found,
            });
        }
    }
    Ok(out)
}

/// Reads the source's catalog and writes a complete mapping for it.
pub async fn init(req: &InitRequest) -> Result<String, PipelineError> {
    let names = req
        .tables
        .iter()
        .map(|t| QualifiedName::parse(t))
        .collect::<Result<Vec<_>, MappingError>>()?;
    let mut dims: Vec<InferredDims> = Vec::new();
    // `--target postgres://…` writes a Postgres target (its password left out, as the source's);
    // it takes a vector column of any dimension as it is, so no dimension is inferred.
    let into_postgres =
        req.target.starts_with("postgres://") || req.target.starts_with("postgresql://");
    let (source_key, source_value, catalog) = match &req.source {
        InitSource::Postgres(url_text) => {
            let url = PgUrl::parse(url_text)?;
            let client = postgres::connect(&url).await?;
            let catalog = describe_for_plan(&client, &names).await?;
            if !into_postgres {
                dims = infer_dims(&client, &catalog).await?;
            }
            ("postgres", postgres::strip_password(url_text), catalog)
        }
        InitSource::Dump(path) => {
            // Written absolute: the mapping may live anywhere, and paths in it are read
            // relative to its own folder.
            let abs = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            let catalog = match Source::open_dump(abs.clone()).await? {
                Source::Dump(a) => a.catalog(),
                _ => Vec::new(),
            };
            ("dump", abs.display().to_string(), catalog)
        }
    };
    let (target_key, target) = if into_postgres {
        ("postgres", postgres::strip_password(&req.target))
    } else {
        ("engine", req.target.clone())
    };
    let stub = format!(
        "version: 1\nsource:\n  {source_key}: '{}'\ntarget:\n  {target_key}: '{}'\n",
        source_value.replace('\'', "''"),
        target.replace('\'', "''")
    );
    let mut parsed = parse_mapping(&stub, "<init>", &|_| None)?;
    parsed.file.tables = req
        .tables
        .iter()
        .map(|t| etl_mappings::TableSpec {
            source: t.clone(),
            ..Default::default()
        })
        .collect();
    let mut column_notes = std::collections::BTreeMap::new();
    if !dims.is_empty() {
        // Name every table (all of them when none were asked for), with the inferred `dim:`.
        if parsed.file.tables.is_empty() {
            parsed.file.tables = catalog
                .iter()
                .map(|t| etl_mappings::TableSpec {
                    source: t.name.display_for_mapping(),
                    ..Default::default()
                })
                .collect();
        }
        for d in &dims {
            let note = match d.found.as_slice() {
                [(dim, rows)] => {
                    if let Some(spec) = parsed
                        .file
                        .tables
                        .iter_mut()
                        .find(|t| QualifiedName::parse(&t.source).is_ok_and(|n| n == d.table))
                    {
                        spec.fields.push(etl_mappings::FieldSpec {
                            source: d.column.clone(),
                            dim: Some(*dim),
                            ..Default::default()
                        });
                    }
                    format!("dim {dim} inferred from the data (vector_dims of all {rows} rows)")
                }
                [] => "no rows to infer a dimension from".to_string(),
                many => format!(
                    "rows of several dimensions: {}; choose one `dim:` and a `where:` that selects its rows",
                    many.iter()
                        .map(|(d, n)| format!("{d} ({n} rows)"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            column_notes.insert((d.table.to_string(), d.column.clone()), note);
        }
    }
    let plan = build_plan(&parsed, &catalog).map_err(|e| match e {
        MappingError::UnknownTable {
            table, suggestion, ..
        } => PipelineError::UnknownTable { table, suggestion },
        other => PipelineError::Mapping(other),
    })?;
    Ok(render_mapping(
        &plan,
        &InitOptions {
            source_key: source_key.into(),
            source_value,
            target,
            column_notes,
        },
    ))
}
