//! Jobs: every run has an id and a state kept in the target directory (`_jobs/<id>.json`),
//! so `etl jobs list|show` can report on it and a re-run can resume it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::PipelineError;

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Created, not started.
    Pending,
    /// Running (or killed while running).
    InProgress,
    /// Finished; every table loaded.
    Successful,
    /// Stopped by an error.
    Failed,
    /// Stopped by the user (Ctrl-C).
    Cancelled,
}

/// A run of a mapping file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// The id.
    pub id: String,
    /// The mapping file (absolute).
    pub mapping: String,
    /// The state.
    pub state: JobState,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    /// When it ended, if it did.
    pub finished_at: Option<u64>,
    /// The error that stopped it.
    pub error: Option<String>,
    /// The last report (per table counts).
    pub report: Option<serde_json::Value>,
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn jobs_dir(target: &Path) -> PathBuf {
    target.join("_jobs")
}

impl Job {
    /// A new job for `mapping`.
    pub fn new(mapping: &Path) -> Job {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Job {
            id: format!("job-{:x}", nanos / 1000),
            mapping: mapping.display().to_string(),
            state: JobState::Pending,
            started_at: now(),
            finished_at: None,
            error: None,
            report: None,
        }
    }

    /// Writes the job file atomically.
    pub fn save(&self, target: &Path) -> Result<(), PipelineError> {
        let dir = jobs_dir(target);
        fs_err::create_dir_all(&dir)?;
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| PipelineError::Internal {
            message: e.to_string(),
        })?;
        etl_engine::fsutil::atomic_write(&dir.join(format!("{}.json", self.id)), &bytes)?;
        Ok(())
    }

    /// The job a run of `key` continues (its latest unfinished one, unless `restart`) or a
    /// new one, marked in progress and saved; the flag says whether it is resumed.
    pub(crate) fn start(
        target: &Path,
        key: &Path,
        restart: bool,
    ) -> Result<(Job, bool), PipelineError> {
        let previous = if restart {
            None
        } else {
            unfinished_job(target, key)?
        };
        let resumed = previous.is_some();
        let mut job = previous.unwrap_or_else(|| Job::new(key));
        job.state = JobState::InProgress;
        job.error = None;
        job.save(target)?;
        Ok((job, resumed))
    }

    /// Records how the run ended: its report (given its id) on success, its error otherwise.
    pub(crate) fn end(
        &mut self,
        target: &Path,
        outcome: Result<&mut crate::report::RunReport, &PipelineError>,
    ) -> Result<(), PipelineError> {
        match outcome {
            Ok(report) => {
                report.job_id = self.id.clone();
                self.report = serde_json::to_value(&*report).ok();
                self.finish(target, JobState::Successful, None)
            }
            Err(e) => {
                let state = if matches!(e, PipelineError::Cancelled) {
                    JobState::Cancelled
                } else {
                    JobState::Failed
                };
                self.finish(target, state, Some(e.to_string()))
            }
        }
    }

    /// Marks the job finished in `state`.
    pub fn finish(
        &mut self,
        target: &Path,
        state: JobState,
        error: Option<String>,
    ) -> Result<(), PipelineError> {
        self.state = state;
        self.error = error;
        self.finished_at = Some(now());
        self.save(target)
    }
}

/// Every job of a target directory, oldest first.
pub fn list_jobs(target: &Path) -> Result<Vec<Job>, PipelineError> {
    let dir = jobs_dir(target);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut jobs: Vec<Job> = Vec::new();
    for e in fs_err::read_dir(&dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "json") {
            let bytes = fs_err::read(&p)?;
            if let Ok(j) = serde_json::from_slice::<Job>(&bytes) {
                jobs.push(j);
            }
        }
    }
    jobs.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
    Ok(jobs)
}

/// One job by id.
pub fn show_job(target: &Path, id: &str) -> Result<Job, PipelineError> {
    list_jobs(target)?
        .into_iter()
        .find(|j| j.id == id)
        .ok_or_else(|| PipelineError::Usage {
            message: format!("no job `{id}` in {}", target.display()),
        })
}

/// The latest unfinished job of a mapping, which a re-run resumes.
pub fn unfinished_job(target: &Path, mapping: &Path) -> Result<Option<Job>, PipelineError> {
    let m = mapping.display().to_string();
    Ok(list_jobs(target)?
        .into_iter()
        .rev()
        .find(|j| j.mapping == m)
        .filter(|j| j.state != JobState::Successful))
}
