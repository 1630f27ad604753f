//! A real Milvus as a sink: a small client over Milvus' published gRPC API (tonic + prost
//! messages with the published field numbers; no generated code, no protoc). Credentials come
//! from the environment (`MILVUS_TOKEN`, or `MILVUS_USER` and `MILVUS_PASSWORD`) and travel in
//! the `authorization` header; they never appear in a message. TLS when the URL says https.

pub mod proto;

use std::time::Duration;

use base64::Engine as _;
use prost::Message;
use tonic::codec::ProstCodec;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use self::proto::*;
use crate::error::ConnectorError;

/// Largest gRPC message sent or received (Milvus' own default limits are 256 MiB / 64 MiB).
const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// A connected client.
#[derive(Clone)]
pub struct MilvusClient {
    channel: Channel,
    auth: Option<MetadataValue<tonic::metadata::Ascii>>,
    /// The user the credentials name (for messages; never the secret).
    user: String,
    url: String,
}

impl std::fmt::Debug for MilvusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MilvusClient({})", self.url)
    }
}

fn failed(url: &str, context: &str, reason: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Milvus {
        url: url.to_string(),
        context: context.to_string(),
        reason: reason.to_string(),
    }
}

/// The credentials the environment gives, as `user:password` (a token is that already).
pub fn credentials() -> Option<String> {
    if let Ok(t) = std::env::var("MILVUS_TOKEN")
        && !t.is_empty()
    {
        return Some(t);
    }
    match (
        std::env::var("MILVUS_USER"),
        std::env::var("MILVUS_PASSWORD"),
    ) {
        (Ok(u), Ok(p)) if !u.is_empty() => Some(format!("{u}:{p}")),
        _ => None,
    }
}

/// An answer carrying Milvus' status.
trait Answer {
    fn status(&self) -> Option<&Status>;
}

impl Answer for Status {
    fn status(&self) -> Option<&Status> {
        Some(self)
    }
}

macro_rules! answers {
    ($($t:ty),* $(,)?) => {
        $(impl Answer for $t {
            fn status(&self) -> Option<&Status> {
                self.status.as_ref()
            }
        })*
    };
}

answers!(
    GetVersionResponse,
    BoolResponse,
    DescribeCollectionResponse,
    ShowCollectionsResponse,
    MutationResult,
    StatusOnly,
    GetLoadingProgressResponse,
    QueryResults,
    SearchResults,
    ImportResponse,
    GetImportStateResponse,
    ListImportTasksResponse,
);

/// Milvus' own success: both the old `error_code` and the new `code` zero.
fn check(url: &str, context: &str, status: Option<&Status>) -> Result<(), ConnectorError> {
    match status {
        Some(s) if s.error_code != 0 || s.code != 0 => Err(failed(url, context, &s.reason)),
        _ => Ok(()),
    }
}

impl MilvusClient {
    /// Connects to `url` (`http://host:19530`, `https://…`) with the environment's credentials
    /// and asks its version, so a wrong address or credential fails here.
    pub async fn connect(url: &str) -> Result<(MilvusClient, String), ConnectorError> {
        Self::connect_with(url, credentials()).await
    }

    /// [`connect`](Self::connect) with explicit credentials (`user:password` or a token).
    pub async fn connect_with(
        url: &str,
        credentials: Option<String>,
    ) -> Result<(MilvusClient, String), ConnectorError> {
        let url = url.trim_end_matches('/').to_string();
        if url
            .split("://")
            .nth(1)
            .unwrap_or(&url)
            .split('/')
            .next()
            .unwrap_or("")
            .contains('@')
        {
            // Never echoed: the message names the rule, not the URL.
            return Err(failed(
                "(a Milvus URL with credentials)",
                "parsing the URL",
                "credentials do not go in the URL; set MILVUS_TOKEN, or MILVUS_USER and MILVUS_PASSWORD",
            ));
        }
        let http = url.replacen("milvus://", "http://", 1);
        let mut endpoint = Endpoint::from_shared(http.clone())
            .map_err(|e| failed(&url, "parsing the URL", e))?
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600));
        if http.starts_with("https://") {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().with_webpki_roots())
                .map_err(|e| failed(&url, "setting up TLS", e))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| ConnectorError::Unreachable {
                url: url.clone(),
                reason: describe(&e),
            })?;
        // The user named in messages: the part before `:`; an API key (no `:`) is a secret whole.
        let user = match credentials.as_deref().and_then(|c| c.split_once(':')) {
            Some((u, _)) => u.to_string(),
            None if credentials.is_some() => "(API key)".to_string(),
            None => String::new(),
        };
        let auth = credentials
            .map(|c| base64::engine::general_purpose::STANDARD.encode(c))
            .map(|b| MetadataValue::try_from(b.as_str()))
            .transpose()
            .map_err(|_| failed(&url, "encoding the credentials", "not ASCII"))?;
        let client = MilvusClient {
            channel,
            auth,
            user,
            url,
        };
        let v: GetVersionResponse = client
            .rpc(
                "GetVersion",
                GetVersionRequest {},
                "asking the server version",
            )
            .await?;
        Ok((client, v.version))
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls `method` and checks the status in its answer; `what` names the work in errors.
    async fn rpc<Q: Message + 'static, R: Message + Default + Answer + 'static>(
        &self,
        method: &'static str,
        req: Q,
        what: &str,
    ) -> Result<R, ConnectorError> {
        let r: R = self.call(method, req).await?;
        check(&self.url, what, r.status())?;
        Ok(r)
    }

    async fn call<Q: Message + 'static, R: Message + Default + 'static>(
        &self,
        method: &'static str,
        req: Q,
    ) -> Result<R, ConnectorError> {
        // Answers (query pages, search results) may exceed tonic's 4 MiB default.
        let mut grpc = tonic::client::Grpc::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        grpc.ready()
            .await
            .map_err(|e| ConnectorError::Unreachable {
                url: self.url.clone(),
                reason: describe(&e),
            })?;
        let mut request = tonic::Request::new(req);
        if let Some(a) = &self.auth {
            request.metadata_mut().insert("authorization", a.clone());
        }
        let path = format!("/milvus.proto.milvus.MilvusService/{method}");
        let path =
            http::uri::PathAndQuery::try_from(path).map_err(|e| failed(&self.url, method, e))?;
        let codec: ProstCodec<Q, R> = ProstCodec::default();
        match grpc.unary(request, path, codec).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) if s.code() == tonic::Code::Unauthenticated => Err(ConnectorError::Auth {
                url: self.url.clone(),
                user: self.user.clone(),
                reason: s.message().to_string(),
            }),
            Err(s) if s.code() == tonic::Code::Unavailable => Err(ConnectorError::Unreachable {
                url: self.url.clone(),
                reason: s.message().to_string(),
            }),
            Err(s) => Err(failed(&self.url, method, s.message())),
        }
    }

    /// Whether a collection exists.
    pub async fn has_collection(&self, name: &str) -> Result<bool, ConnectorError> {
        let r: BoolResponse = self
            .rpc(
                "HasCollection",
                CollectionRequest {
                    collection_name: name.into(),
                },
                "HasCollection",
            )
            .await?;
        Ok(r.value)
    }

    async fn describe(&self, name: &str) -> Result<DescribeCollectionResponse, ConnectorError> {
        self.rpc(
            "DescribeCollection",
            CollectionRequest {
                collection_name: name.into(),
            },
            &format!("describing collection `{name}`"),
        )
        .await
    }

    /// The collection's schema as the server has it.
    pub async fn describe_collection(
        &self,
        name: &str,
    ) -> Result<CollectionSchema, ConnectorError> {
        self.describe(name)
            .await?
            .schema
            .ok_or_else(|| failed(&self.url, "DescribeCollection", "no schema in the answer"))
    }

    /// Every collection's name.
    pub async fn list_collections(&self) -> Result<Vec<String>, ConnectorError> {
        let r: ShowCollectionsResponse = self
            .rpc(
                "ShowCollections",
                ShowCollectionsRequest {},
                "ShowCollections",
            )
            .await?;
        Ok(r.collection_names)
    }

    /// Creates a collection.
    pub async fn create_collection(
        &self,
        schema: &CollectionSchema,
        shards: i32,
    ) -> Result<(), ConnectorError> {
        let _: Status = self
            .rpc(
                "CreateCollection",
                CreateCollectionRequest {
                    collection_name: schema.name.clone(),
                    schema: schema.encode_to_vec(),
                    shards_num: shards.max(1),
                    consistency_level: 0,
                },
                &format!("creating collection `{}`", schema.name),
            )
            .await?;
        Ok(())
    }

    /// Releases a loaded collection from the query nodes' memory.
    pub async fn release(&self, name: &str) -> Result<(), ConnectorError> {
        // ReleaseCollectionRequest has the collection name at field 3, as CollectionRequest.
        let _: Status = self
            .rpc(
                "ReleaseCollection",
                CollectionRequest {
                    collection_name: name.into(),
                },
                &format!("releasing collection `{name}`"),
            )
            .await?;
        Ok(())
    }

    /// Drops a collection.
    pub async fn drop_collection(&self, name: &str) -> Result<(), ConnectorError> {
        let _: Status = self
            .rpc(
                "DropCollection",
                CollectionRequest {
                    collection_name: name.into(),
                },
                &format!("dropping collection `{name}`"),
            )
            .await?;
        Ok(())
    }

    /// Inserts column data; returns the rows the server took.
    pub async fn insert(
        &self,
        name: &str,
        fields: Vec<FieldData>,
        rows: u32,
    ) -> Result<i64, ConnectorError> {
        self.mutate("Insert", name, fields, rows).await
    }

    /// Inserts column data, replacing rows with the same primary keys (Milvus 2.3 and later;
    /// not for auto-ID collections).
    pub async fn upsert(
        &self,
        name: &str,
        fields: Vec<FieldData>,
        rows: u32,
    ) -> Result<i64, ConnectorError> {
        self.mutate("Upsert", name, fields, rows).await
    }

    async fn mutate(
        &self,
        method: &'static str,
        name: &str,
        fields: Vec<FieldData>,
        rows: u32,
    ) -> Result<i64, ConnectorError> {
        // Insert and Upsert requests share their field numbers.
        let r: MutationResult = self
            .rpc(
                method,
                InsertRequest {
                    collection_name: name.into(),
                    fields_data: fields,
                    num_rows: rows,
                },
                &format!("{} `{name}`", method.to_ascii_lowercase()),
            )
            .await?;
        Ok(r.insert_cnt.max(r.upsert_cnt))
    }

    /// The server's id of a collection (a recreated collection has a new one).
    pub async fn collection_id(&self, name: &str) -> Result<i64, ConnectorError> {
        Ok(self.describe(name).await?.collection_id)
    }

    /// Seals what was inserted.
    pub async fn flush(&self, name: &str) -> Result<(), ConnectorError> {
        let _: StatusOnly = self
            .rpc(
                "Flush",
                FlushRequest {
                    collection_names: vec![name.into()],
                },
                &format!("flushing `{name}`"),
            )
            .await?;
        Ok(())
    }

    /// Creates an index and waits until it is built.
    pub async fn create_index(
        &self,
        name: &str,
        field: &str,
        params: Vec<(String, String)>,
    ) -> Result<(), ConnectorError> {
        let what = format!("indexing `{name}.{field}`");
        let _: Status = self
            .rpc(
                "CreateIndex",
                CreateIndexRequest {
                    collection_name: name.into(),
                    field_name: field.into(),
                    extra_params: params
                        .into_iter()
                        .map(|(key, value)| KeyValuePair { key, value })
                        .collect(),
                    index_name: String::new(),
                },
                &what,
            )
            .await?;
        let mut missing = 0;
        loop {
            let d = self.describe_indexes(name, field).await?;
            match d
                .first()
                .map(|i| (i.state, i.index_state_fail_reason.clone()))
            {
                None if missing >= 20 => {
                    return Err(failed(
                        &self.url,
                        &what,
                        "the index is not there (dropped?)",
                    ));
                }
                None => {
                    missing += 1;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Some((3, _)) => return Ok(()),
                Some((4, reason)) => return Err(failed(&self.url, &what, reason)),
                _ => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    }

    /// Loads a collection for search and waits until it is loaded.
    pub async fn load(&self, name: &str) -> Result<(), ConnectorError> {
        let what = format!("loading `{name}`");
        let _: Status = self
            .rpc(
                "LoadCollection",
                LoadCollectionRequest {
                    collection_name: name.into(),
                    replica_number: 1,
                },
                &what,
            )
            .await?;
        loop {
            let p: GetLoadingProgressResponse = self
                .rpc(
                    "GetLoadingProgress",
                    GetLoadingProgressRequest {
                        collection_name: name.into(),
                    },
                    &what,
                )
                .await?;
            if p.progress >= 100 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Rows matching a Milvus expression, the chosen fields as columns.
    pub async fn query(
        &self,
        name: &str,
        expr: &str,
        output_fields: &[String],
        limit: Option<u64>,
    ) -> Result<Vec<FieldData>, ConnectorError> {
        let mut params = Vec::new();
        if let Some(l) = limit {
            params.push(KeyValuePair {
                key: "limit".into(),
                value: l.to_string(),
            });
        }
        let r: QueryResults = self
            .rpc(
                "Query",
                QueryRequest {
                    collection_name: name.into(),
                    expr: expr.into(),
                    output_fields: output_fields.to_vec(),
                    query_params: params,
                    consistency_level: 0,
                },
                &format!("querying `{name}` where {expr}"),
            )
            .await?;
        Ok(r.fields_data)
    }

    /// Searches float vectors; returns the raw result.
    #[allow(clippy::too_many_arguments)]
    pub async fn search(
        &self,
        name: &str,
        field: &str,
        vectors: &[Vec<f32>],
        limit: usize,
        metric: &str,
        params: &str,
        filter: &str,
        output_fields: &[String],
    ) -> Result<SearchResultData, ConnectorError> {
        let values = vectors
            .iter()
            .map(|v| v.iter().flat_map(|x| x.to_le_bytes()).collect())
            .collect();
        self.search_raw(
            name,
            field,
            data_type::FLOAT_VECTOR,
            values,
            limit,
            metric,
            params,
            filter,
            output_fields,
        )
        .await
    }

    /// Searches vectors given as the server's bytes (`kind` FLOAT_VECTOR: little-endian f32s;
    /// BINARY_VECTOR: packed bits); returns the raw result.
    #[allow(clippy::too_many_arguments)]
    pub async fn search_raw(
        &self,
        name: &str,
        field: &str,
        kind: i32,
        values: Vec<Vec<u8>>,
        limit: usize,
        metric: &str,
        params: &str,
        filter: &str,
        output_fields: &[String],
    ) -> Result<SearchResultData, ConnectorError> {
        let nq = values.len();
        let group = PlaceholderGroup {
            placeholders: vec![PlaceholderValue {
                tag: "$0".into(),
                r#type: kind,
                values,
            }],
        };
        let kv = |k: &str, v: String| KeyValuePair {
            key: k.into(),
            value: v,
        };
        let r: SearchResults = self
            .rpc(
                "Search",
                SearchRequest {
                    collection_name: name.into(),
                    dsl: filter.into(),
                    placeholder_group: group.encode_to_vec(),
                    dsl_type: 1,
                    output_fields: output_fields.to_vec(),
                    search_params: vec![
                        kv("anns_field", field.into()),
                        kv("topk", limit.to_string()),
                        kv("metric_type", metric.into()),
                        kv("params", params.into()),
                        kv("round_decimal", "-1".into()),
                    ],
                    nq: nq as i64,
                    consistency_level: 0,
                },
                &format!("searching `{name}`"),
            )
            .await?;
        r.results
            .ok_or_else(|| failed(&self.url, "Search", "no results in the answer"))
    }

    /// The indexes on a field (every field's when `field` is empty); none is not an error.
    pub async fn describe_indexes(
        &self,
        name: &str,
        field: &str,
    ) -> Result<Vec<IndexDescription>, ConnectorError> {
        let d: DescribeIndexResponse = self
            .call(
                "DescribeIndex",
                DescribeIndexRequest {
                    collection_name: name.into(),
                    field_name: field.into(),
                },
            )
            .await?;
        match d.status.as_ref() {
            // 25: IndexNotExist.
            Some(s) if s.error_code == 25 || s.reason.contains("index not found") => Ok(Vec::new()),
            other => {
                check(
                    &self.url,
                    &format!("describing the indexes of `{name}`"),
                    other,
                )?;
                Ok(d.index_descriptions)
            }
        }
    }

    /// Bulk-imports one file (an absolute path the server can read) and waits for the task;
    /// returns the rows imported.
    pub async fn import_file(&self, name: &str, file: &str) -> Result<i64, ConnectorError> {
        let task = self.start_import(name, file).await?;
        self.wait_import(task, &format!("importing {file} into `{name}`"), |_| {})
            .await
    }

    /// Starts a bulk import of one file; returns its task id.
    pub async fn start_import(&self, name: &str, file: &str) -> Result<i64, ConnectorError> {
        let what = format!("importing {file} into `{name}`");
        let r: ImportResponse = self
            .rpc(
                "Import",
                ImportRequest {
                    collection_name: name.into(),
                    files: vec![file.into()],
                    options: Vec::new(),
                },
                &what,
            )
            .await?;
        r.tasks
            .first()
            .copied()
            .ok_or_else(|| failed(&self.url, &what, "no task id"))
    }

    /// An import task's state.
    pub async fn import_state(&self, task: i64) -> Result<GetImportStateResponse, ConnectorError> {
        let s: GetImportStateResponse = self
            .rpc(
                "GetImportState",
                GetImportStateRequest { task },
                &format!("asking import task {task}'s state"),
            )
            .await?;
        Ok(s)
    }

    /// Waits for an import task to end, calling `progress` with each state seen; returns the
    /// rows imported.
    pub async fn wait_import(
        &self,
        task: i64,
        what: &str,
        mut progress: impl FnMut(&GetImportStateResponse),
    ) -> Result<i64, ConnectorError> {
        loop {
            let s = self.import_state(task).await?;
            progress(&s);
            match s.state {
                import_state::COMPLETED => return Ok(s.row_count),
                import_state::FAILED | import_state::FAILED_AND_CLEANED => {
                    return Err(failed(&self.url, what, import_failure(&s)));
                }
                _ => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    }

    /// The server's recent import tasks into a collection (newest last).
    pub async fn list_import_tasks(
        &self,
        name: &str,
    ) -> Result<Vec<GetImportStateResponse>, ConnectorError> {
        let r: ListImportTasksResponse = self
            .rpc(
                "ListImportTasks",
                ListImportTasksRequest {
                    collection_name: name.into(),
                    limit: 0,
                },
                &format!("listing the import tasks of `{name}`"),
            )
            .await?;
        Ok(r.tasks)
    }
}

/// `common.ImportState` values.
pub mod import_state {
    /// Waiting for a worker.
    pub const PENDING: i32 = 0;
    /// Failed.
    pub const FAILED: i32 = 1;
    /// Reading the files.
    pub const STARTED: i32 = 2;
    /// Segments written.
    pub const PERSISTED: i32 = 5;
    /// Rows visible.
    pub const COMPLETED: i32 = 6;
    /// Failed, and its partial segments removed.
    pub const FAILED_AND_CLEANED: i32 = 7;
    /// Segments flushed.
    pub const FLUSHED: i32 = 8;
}

/// An import task's value for `key` in its infos (`files`, `failed_reason`, …).
pub fn import_info<'a>(s: &'a GetImportStateResponse, key: &str) -> Option<&'a str> {
    s.infos
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_str())
}

fn import_failure(s: &GetImportStateResponse) -> String {
    import_info(s, "failed_reason")
        .filter(|r| !r.is_empty())
        .unwrap_or("the import task failed")
        .to_string()
}

/// A transport error with its causes.
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
