//! What a stage tells the import that follows it in the same command (`target: { stage, engine }`),
//! as it happens: the stage's id, each collection as its first file is started, each file once
//! it is uploaded and its size and SHA-256 are known, each collection's end, and the end of the
//! whole stage (after its manifest is written). An importer that listens loads a file as soon
//! as it is complete and checked, instead of after the whole stage; one that does not waits for
//! [`Staged::Done`] and imports the stage from its manifest.
//!
//! The events go through an unbounded channel: they are few (one per file of up to
//! `max_file_bytes`) and the stage must never wait on the import.

use tokio::sync::mpsc;

use super::manifest::{StagedCollection, StagedFile};
use crate::error::PipelineError;

/// An event of a stage being written.
#[derive(Debug, Clone)]
pub enum Staged {
    /// The stage begins; its files are recorded under `stage_id` (the manifest's).
    Begun {
        /// The id the manifest will carry.
        stage_id: String,
    },
    /// A collection is being staged (its `files` empty, its `rows` 0).
    Opened(StagedCollection),
    /// A file of `collection` is complete.
    File {
        /// The collection's name.
        collection: String,
        /// The file, as the manifest will list it.
        file: StagedFile,
    },
    /// `collection` has no more files.
    Closed {
        /// The collection's name.
        collection: String,
    },
    /// The manifest is written: the stage is complete.
    Done,
}

/// The stage's side of the channel.
pub type StagedTx = mpsc::UnboundedSender<Staged>;
/// The import's side of the channel.
pub type StagedRx = mpsc::UnboundedReceiver<Staged>;

/// A channel from a stage to the import that follows it.
pub fn channel() -> (StagedTx, StagedRx) {
    mpsc::unbounded_channel()
}

/// Sends `event` when an import listens. A listener that has gone (its import failed) is not
/// the stage's error: the run reports the import's.
pub(crate) fn tell(to: Option<&StagedTx>, event: Staged) {
    if let Some(tx) = to {
        let _ = tx.send(event);
    }
}

/// What an import that follows a stage returns when the stage stopped before it was complete:
/// the stage's own error (or the user's Ctrl-C) is the one the run reports, so this one says
/// only that the import stopped with it.
pub(crate) fn unfinished() -> PipelineError {
    PipelineError::Cancelled
}

/// Waits until the stage is complete.
pub async fn until_done(rx: &mut StagedRx) -> Result<(), PipelineError> {
    while let Some(event) = rx.recv().await {
        if let Staged::Done = event {
            return Ok(());
        }
    }
    Err(unfinished())
}
