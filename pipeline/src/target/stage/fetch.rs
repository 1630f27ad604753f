//! The read side of a stage, for the importers: its manifest, the collections chosen from it,
//! and each file fetched and checked against the manifest's size and SHA-256 before anything
//! of it is loaded.

use std::path::{Path, PathBuf};

use etl_connectors::store::Store;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::manifest::{FORMAT, MANIFEST, StageManifest, StagedCollection, StagedFile, sha256_hex};
use crate::error::PipelineError;

/// The manifest's collections named (all without names); an unknown name is refused with the
/// nearest one.
pub(crate) fn choose<'a>(
    manifest: &'a StageManifest,
    names: Option<&[String]>,
) -> Result<Vec<&'a StagedCollection>, PipelineError> {
    let Some(names) = names else {
        return Ok(manifest.collections.iter().collect());
    };
    let mut out = Vec::new();
    for n in names {
        match manifest.collections.iter().find(|c| c.name == *n) {
            Some(c) => out.push(c),
            None => {
                return Err(PipelineError::UnknownTable {
                    table: n.clone(),
                    suggestion: manifest
                        .collections
                        .iter()
                        .map(|c| c.name.clone())
                        .min_by_key(|c| strsim::levenshtein(c, n)),
                });
            }
        }
    }
    Ok(out)
}

/// A staged file on this machine.
pub(crate) struct Local {
    /// Where it is.
    pub path: PathBuf,
    /// A fetched copy, deleted once it is read.
    pub copy: bool,
    /// Its size and SHA-256 are checked already (fetched copies are, while they are fetched);
    /// otherwise the reader checks them with [`check_local`] before anything of it is kept.
    pub checked: bool,
}

/// A staged file as a local file: read in place from a `file://` stage (not checked yet, so a
/// reader can hash it while it decodes), fetched into `dir` and checked on the way from any
/// other.
pub(crate) async fn local(
    store: &Store,
    f: &StagedFile,
    dir: &Path,
) -> Result<Local, PipelineError> {
    if let Some(root) = &store.local_dir {
        return Ok(Local {
            path: root.join(&f.path),
            copy: false,
            checked: false,
        });
    }
    let path = dir.join(f.path.replace('/', "__"));
    let mut out = tokio::fs::File::create(&path)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let (n, actual) = read_hashed(store, f, Some(&mut out)).await?;
    if let Err(e) = check(store, f, n, &actual) {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e);
    }
    Ok(Local {
        path,
        copy: true,
        checked: true,
    })
}

/// Hashes the local copy of `f` at `path` and refuses it unless its size and SHA-256 are the
/// manifest's (blocking).
pub(crate) fn check_local(store: &Store, f: &StagedFile, path: &Path) -> Result<(), PipelineError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| store.error(&f.path, e))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = file.read(&mut buf).map_err(|e| store.error(&f.path, e))?;
        if k == 0 {
            break;
        }
        hash.update(&buf[..k]);
        n += k as u64;
    }
    check(store, f, n, &sha256_hex(hash))
}

/// Reads a staged file from the store, hashing it and copying it to `out` when given; returns
/// its size and SHA-256.
async fn read_hashed(
    store: &Store,
    f: &StagedFile,
    mut out: Option<&mut tokio::fs::File>,
) -> Result<(u64, String), PipelineError> {
    let got = store
        .store
        .get(&store.path(&f.path))
        .await
        .map_err(|e| store.error(&f.path, e))?;
    let mut stream = got.into_stream();
    let mut hash = Sha256::new();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| store.error(&f.path, e))?;
        hash.update(&chunk);
        n += chunk.len() as u64;
        if let Some(out) = out.as_deref_mut() {
            out.write_all(&chunk).await?;
        }
    }
    if let Some(out) = out {
        out.flush().await?;
    }
    Ok((n, sha256_hex(hash)))
}

/// Checks a staged file's size and SHA-256 against the manifest by reading it through (for a
/// server that reads the file itself, so nothing is kept here).
pub(crate) async fn check_in_place(store: &Store, f: &StagedFile) -> Result<(), PipelineError> {
    let (n, actual) = read_hashed(store, f, None).await?;
    check(store, f, n, &actual)
}

/// Refuses a file whose size or hash is not the manifest's.
fn check(store: &Store, f: &StagedFile, n: u64, actual: &str) -> Result<(), PipelineError> {
    if actual != f.sha256 || n != f.bytes {
        return Err(PipelineError::Checksum {
            file: format!("{}/{}", store.url.trim_end_matches('/'), f.path),
            expected: format!("{} bytes, sha256 {}", f.bytes, f.sha256),
            actual: format!("{n} bytes, sha256 {actual}"),
        });
    }
    Ok(())
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
