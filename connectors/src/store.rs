//! Object stores by URL, for staged files: `file:///abs/path`, `s3://bucket/prefix`,
//! `gs://bucket/prefix`, `az://container/prefix`. Credentials, region and endpoint come from
//! the standard environment variables (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
//! `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, …), never from the URL, so a URL is
//! safe to print. A plain-http endpoint (a local S3-compatible server) is allowed when the
//! endpoint says `http://`. Requests retry with backoff.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{BackoffConfig, RetryConfig};

use crate::error::ConnectorError;

/// A store and the prefix under it.
#[derive(Debug, Clone)]
pub struct Store {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The prefix every path is under.
    pub prefix: StorePath,
    /// The URL as given (it holds no secret).
    pub url: String,
    /// For `file://` stores, the directory: files are read in place, not fetched.
    pub local_dir: Option<std::path::PathBuf>,
}

fn bad(url: &str, reason: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Store {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: 8,
        retry_timeout: Duration::from_secs(300),
    }
}

impl Store {
    /// Opens the store a URL names.
    pub fn open(url: &str) -> Result<Store, ConnectorError> {
        // Keep no query string (it could carry a token) in what is printed.
        let url = url.split(['?', '#']).next().unwrap_or(url);
        let parsed = url::Url::parse(url).map_err(|e| bad(url, format!("not a URL ({e})")))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(
                "(a URL with credentials, not shown)",
                "credentials go in the environment (AWS_ACCESS_KEY_ID, …), not the URL",
            ));
        }
        let bucket = parsed.host_str().unwrap_or_default().to_string();
        let prefix = StorePath::from(parsed.path().trim_start_matches('/'));
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|_| bad(url, "a file:// URL needs an absolute path"))?;
                std::fs::create_dir_all(&dir).map_err(|e| bad(url, e))?;
                let fs = LocalFileSystem::new_with_prefix(&dir).map_err(|e| bad(url, e))?;
                return Ok(Store {
                    store: Arc::new(fs),
                    prefix: StorePath::default(),
                    url: url.to_string(),
                    local_dir: Some(dir),
                });
            }
            "s3" | "s3a" => {
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(&bucket)
                    .with_retry(retry());
                let endpoint = std::env::var("AWS_ENDPOINT_URL")
                    .or_else(|_| std::env::var("AWS_ENDPOINT"))
                    .ok();
                if let Some(ep) = endpoint {
                    if ep.starts_with("http://") {
                        b = b.with_allow_http(true);
                    }
                    b = b.with_endpoint(ep).with_virtual_hosted_style_request(false);
                }
                if std::env::var("AWS_REGION").is_err()
                    && std::env::var("AWS_DEFAULT_REGION").is_err()
                {
                    b = b.with_region("us-east-1");
                }
                Arc::new(b.build().map_err(|e| bad(url, e))?)
            }
            "gs" => Arc::new(
                GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&bucket)
                    .with_retry(retry())
                    .build()
                    .map_err(|e| bad(url, e))?,
            ),
            "az" | "abfs" | "abfss" => Arc::new(
                MicrosoftAzureBuilder::from_env()
                    .with_container_name(&bucket)
                    .with_retry(retry())
                    .build()
                    .map_err(|e| bad(url, e))?,
            ),
            other => {
                return Err(bad(
                    url,
                    format!("unknown scheme `{other}`; use file://, s3://, gs:// or az://"),
                ));
            }
        };
        Ok(Store {
            store,
            prefix,
            url: url.to_string(),
            local_dir: None,
        })
    }

    /// A path under the prefix.
    pub fn path(&self, rel: &str) -> StorePath {
        let mut p = self.prefix.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.join(part);
        }
        p
    }

    /// Describes a store error with the URL and the path concerned.
    pub fn error(&self, rel: &str, e: impl std::fmt::Display) -> ConnectorError {
        bad(&format!("{}/{rel}", self.url.trim_end_matches('/')), e)
    }
}
