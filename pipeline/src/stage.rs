//! Staged imports: `etl stage` writes a mapping's collections as Parquet files in Milvus'
//! bulk-import layout on an object store (file, S3, GCS, Azure), with a manifest written last;
//! `etl import` loads such a stage into the engine file by file, each file's commit recorded so
//! that a re-run skips what is in, then builds indexes and loads, as `etl run` does. The same
//! files go into a Milvus cluster through its own bulk import.

pub mod import;
pub mod layout;
pub mod manifest;
pub mod writer;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use etl_connectors::store::Store;
use etl_mappings::ParsedMapping;
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

pub use self::import::{ImportOptions, import};
use self::manifest::{FORMAT, MANIFEST, StageManifest, StagedCollection, rfc3339};
use self::writer::DEFAULT_MAX_FILE_BYTES;
use crate::error::PipelineError;
use crate::run::report::{RunObserver, RunReport, StageSummary};
use crate::run::{Prepared, RunContext, RunOptions, Sink, StageSink, prepare};
use crate::source::beside;

/// Deletes every object under `rel` (a missing prefix is fine).
async fn clear(store: &Store, rel: &str) -> Result<(), PipelineError> {
    let prefix = store.path(rel);
    let mut listing = store.store.list(Some(&prefix));
    let mut paths = Vec::new();
    while let Some(meta) = listing.next().await {
        match meta {
            Ok(m) => paths.push(m.location),
            Err(object_store::Error::NotFound { .. }) => break,
            Err(e) => return Err(store.error(rel, e).into()),
        }
    }
    for p in paths {
        match store.store.delete(&p).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store.error(p.as_ref(), e).into()),
        }
    }
    Ok(())
}

/// Stages the mapping's tables under `url`.
pub async fn stage(
    mapping: &ParsedMapping,
    url: &str,
    opts: &RunOptions,
    observer: Arc<dyn RunObserver>,
    cancel: impl Future<Output = ()>,
) -> Result<RunReport, PipelineError> {
    stage_for(mapping, url, opts, None, observer, cancel).await
}

/// Stages the mapping's tables under `url`, for the Milvus at `milvus` when given: what its
/// version cannot hold is refused first, and on a server without NULLs the staged files hold
/// the plan's stand-ins for NULL (the server's import would store some as zero values and
/// fail on others).
pub async fn stage_for(
    mapping: &ParsedMapping,
    url: &str,
    opts: &RunOptions,
    milvus: Option<&str>,
    observer: Arc<dyn RunObserver>,
    cancel: impl Future<Output = ()>,
) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let store = Store::open(url)?;
    let Prepared {
        source,
        catalog,
        plan,
        mut tables,
    } = prepare(mapping, opts).await?;
    let mut fill_nulls = false;
    if let Some(server) = milvus {
        let (client, version) = etl_connectors::milvus::MilvusClient::connect(server).await?;
        crate::milvus::fit_tables(mapping, &mut tables, server, &version).await?;
        // The import after this stage would refuse a collection that is not ours: say so now.
        for t in tables
            .iter()
            .filter(|_| !opts.restart && !opts.dry_run && opts.stage_to.is_none())
        {
            if let crate::milvus::Existing::Foreign { why } =
                crate::milvus::existing(&client, server, mapping, t, Some(url)).await?
            {
                return Err(PipelineError::NeedsFixes {
                    table: t.source.to_string(),
                    fixes: crate::run::fix_lines(&[crate::milvus::foreign_finding(
                        &t.collection,
                        server,
                        why,
                    )]),
                });
            }
        }
        fill_nulls = !crate::milvus::holds_nulls(&version);
    }
    let dry_run = opts.dry_run;
    // Restaging some tables keeps the others' entries of the stage being replaced.
    let kept: Vec<StagedCollection> = match (&opts.tables, dry_run) {
        (Some(_), false) => match read_manifest(&store).await {
            Ok(old) => old
                .collections
                .into_iter()
                .filter(|c| !tables.iter().any(|t| t.collection == c.name))
                .collect(),
            Err(_) => Vec::new(),
        },
        _ => Vec::new(),
    };
    if !dry_run {
        // No manifest while files change: an interrupted stage never names unfinished files.
        match store.store.delete(&store.path(MANIFEST)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store.error(MANIFEST, e).into()),
        }
        for t in &tables {
            clear(&store, &t.collection).await?;
        }
    }
    let snapshot = crate::run::job::now();
    let label = source.label();
    let ctx = RunContext {
        source,
        sink: Sink::Stage(StageSink {
            store: store.clone(),
            max_file_bytes: opts.max_file_bytes.unwrap_or(DEFAULT_MAX_FILE_BYTES),
            staged: Mutex::new(Vec::new()),
            fill_nulls,
        }),
        rejects_dir: beside(mapping, "_rejects"),
        plan,
        catalog,
        opts: opts.clone(),
        observer,
    };
    let reports = tokio::select! {
        r = ctx.run_all(&tables) => r?,
        () = cancel => return Err(PipelineError::Cancelled),
    };
    let Sink::Stage(sink) = ctx.sink else {
        return Err(PipelineError::Internal {
            message: "staging without a stage".into(),
        });
    };
    let mut collections = sink.staged.into_inner().unwrap_or_else(|e| e.into_inner());
    if fill_nulls {
        // The files hold no NULL scalars: say so, so an import does not expect them.
        for c in &mut collections {
            for f in &mut c.schema.fields {
                if !f.data_type.is_vector() {
                    f.nullable = false;
                }
            }
        }
    }
    collections.extend(kept);
    collections.sort_by(|a, b| a.name.cmp(&b.name));
    let stage_id = format!(
        "stage-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let files: usize = collections.iter().map(|c| c.files.len()).sum();
    let bytes: u64 = collections
        .iter()
        .flat_map(|c| &c.files)
        .map(|f| f.bytes)
        .sum();
    if !dry_run {
        let manifest = StageManifest {
            format: FORMAT.into(),
            stage_id: stage_id.clone(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            source_snapshot_time: rfc3339(snapshot),
            source: label,
            collections,
        };
        let body = serde_json::to_vec_pretty(&manifest).map_err(|e| PipelineError::Internal {
            message: e.to_string(),
        })?;
        store
            .store
            .put(&store.path(MANIFEST), PutPayload::from(body))
            .await
            .map_err(|e| store.error(MANIFEST, e))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(RunReport {
        dry_run,
        stage: Some(StageSummary {
            url: url.to_string(),
            stage_id,
            files,
            bytes,
            seconds,
        }),
        ..RunReport::of(reports, seconds)
    })
}

/// Reads a stage's manifest.
pub async fn read_manifest(store: &Store) -> Result<StageManifest, PipelineError> {
    let got = match store.store.get(&store.path(MANIFEST)).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(PipelineError::Usage {
                message: format!(
                    "{}: no {MANIFEST}: the stage is unfinished (run `etl stage` again) or this is not a stage",
                    store.url
                ),
            });
        }
        Err(e) => return Err(store.error(MANIFEST, e).into()),
    };
    let bytes = got.bytes().await.map_err(|e| store.error(MANIFEST, e))?;
    let m: StageManifest = serde_json::from_slice(&bytes).map_err(|e| PipelineError::Usage {
        message: format!("{}/{MANIFEST}: not a stage manifest ({e})", store.url),
    })?;
    if m.format != FORMAT {
        return Err(PipelineError::Usage {
            message: format!(
                "{}/{MANIFEST}: format `{}`, expected `{FORMAT}`",
                store.url, m.format
            ),
        });
    }
    Ok(m)
}
