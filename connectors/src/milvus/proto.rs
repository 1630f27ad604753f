//! The part of Milvus' published gRPC API (milvus-io/milvus-proto: `milvus.proto`,
//! `schema.proto`, `common.proto`) this tool calls, as prost messages with the published field
//! numbers (as the 2.3 server and its pymilvus 2.3 descriptors have them). Fields the tool never
//! sets or reads are left out: protobuf skips unknown fields.

#![allow(
    missing_docs,
    reason = "wire messages named and numbered as in the published .proto files"
)]

use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub error_code: i32,
    #[prost(string, tag = "2")]
    pub reason: String,
    #[prost(int32, tag = "3")]
    pub code: i32,
    #[prost(bool, tag = "4")]
    pub retriable: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct KeyValuePair {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `schema.DataType`.
pub mod data_type {
    pub const BOOL: i32 = 1;
    pub const INT8: i32 = 2;
    pub const INT16: i32 = 3;
    pub const INT32: i32 = 4;
    pub const INT64: i32 = 5;
    pub const FLOAT: i32 = 10;
    pub const DOUBLE: i32 = 11;
    pub const VARCHAR: i32 = 21;
    pub const ARRAY: i32 = 22;
    pub const JSON: i32 = 23;
    pub const BINARY_VECTOR: i32 = 100;
    pub const FLOAT_VECTOR: i32 = 101;
    pub const FLOAT16_VECTOR: i32 = 102;
    pub const SPARSE_FLOAT_VECTOR: i32 = 104;
}

#[derive(Clone, PartialEq, Message)]
pub struct FieldSchema {
    #[prost(int64, tag = "1")]
    pub field_id: i64,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(bool, tag = "3")]
    pub is_primary_key: bool,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(int32, tag = "5")]
    pub data_type: i32,
    #[prost(message, repeated, tag = "6")]
    pub type_params: Vec<KeyValuePair>,
    #[prost(message, repeated, tag = "7")]
    pub index_params: Vec<KeyValuePair>,
    #[prost(bool, tag = "8")]
    pub auto_id: bool,
    #[prost(int32, tag = "10")]
    pub element_type: i32,
    #[prost(bool, tag = "12")]
    pub is_dynamic: bool,
    #[prost(bool, tag = "13")]
    pub is_partition_key: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct CollectionSchema {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(bool, tag = "3")]
    pub auto_id: bool,
    #[prost(message, repeated, tag = "4")]
    pub fields: Vec<FieldSchema>,
    #[prost(bool, tag = "5")]
    pub enable_dynamic_field: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct CreateCollectionRequest {
    #[prost(string, tag = "3")]
    pub collection_name: String,
    /// The encoded [`CollectionSchema`].
    #[prost(bytes = "vec", tag = "4")]
    pub schema: Vec<u8>,
    #[prost(int32, tag = "5")]
    pub shards_num: i32,
    #[prost(int32, tag = "6")]
    pub consistency_level: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct CollectionRequest {
    #[prost(string, tag = "3")]
    pub collection_name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct BoolResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    #[prost(bool, tag = "2")]
    pub value: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct DescribeCollectionResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    #[prost(message, optional, tag = "2")]
    pub schema: Option<CollectionSchema>,
    #[prost(int64, tag = "3")]
    pub collection_id: i64,
    #[prost(int32, tag = "8")]
    pub shards_num: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ShowCollectionsRequest {}

#[derive(Clone, PartialEq, Message)]
pub struct ShowCollectionsResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    #[prost(string, repeated, tag = "2")]
    pub collection_names: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LongArray {
    #[prost(int64, repeated, tag = "1")]
    pub data: Vec<i64>,
}
#[derive(Clone, PartialEq, Message)]
pub struct IntArray {
    #[prost(int32, repeated, tag = "1")]
    pub data: Vec<i32>,
}
#[derive(Clone, PartialEq, Message)]
pub struct BoolArray {
    #[prost(bool, repeated, tag = "1")]
    pub data: Vec<bool>,
}
#[derive(Clone, PartialEq, Message)]
pub struct FloatArray {
    #[prost(float, repeated, tag = "1")]
    pub data: Vec<f32>,
}
#[derive(Clone, PartialEq, Message)]
pub struct DoubleArray {
    #[prost(double, repeated, tag = "1")]
    pub data: Vec<f64>,
}
#[derive(Clone, PartialEq, Message)]
pub struct StringArray {
    #[prost(string, repeated, tag = "1")]
    pub data: Vec<String>,
}
#[derive(Clone, PartialEq, Message)]
pub struct BytesArray {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub data: Vec<Vec<u8>>,
}
#[derive(Clone, PartialEq, Message)]
pub struct ArrayArray {
    #[prost(message, repeated, tag = "1")]
    pub data: Vec<ScalarField>,
    #[prost(int32, tag = "2")]
    pub element_type: i32,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Scalars {
    #[prost(message, tag = "1")]
    Bool(BoolArray),
    #[prost(message, tag = "2")]
    Int(IntArray),
    #[prost(message, tag = "3")]
    Long(LongArray),
    #[prost(message, tag = "4")]
    Float(FloatArray),
    #[prost(message, tag = "5")]
    Double(DoubleArray),
    #[prost(message, tag = "6")]
    String(StringArray),
    #[prost(message, tag = "8")]
    Array(ArrayArray),
    #[prost(message, tag = "9")]
    Json(BytesArray),
}

#[derive(Clone, PartialEq, Message)]
pub struct ScalarField {
    #[prost(oneof = "Scalars", tags = "1, 2, 3, 4, 5, 6, 8, 9")]
    pub data: Option<Scalars>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Vectors {
    #[prost(message, tag = "2")]
    Float(FloatArray),
    #[prost(bytes = "vec", tag = "3")]
    Binary(Vec<u8>),
    #[prost(bytes = "vec", tag = "4")]
    Float16(Vec<u8>),
}

#[derive(Clone, PartialEq, Message)]
pub struct VectorField {
    #[prost(int64, tag = "1")]
    pub dim: i64,
    #[prost(oneof = "Vectors", tags = "2, 3, 4")]
    pub data: Option<Vectors>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Field {
    #[prost(message, tag = "3")]
    Scalars(ScalarField),
    #[prost(message, tag = "4")]
    Vectors(VectorField),
}

#[derive(Clone, PartialEq, Message)]
pub struct FieldData {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub field_name: String,
    #[prost(oneof = "Field", tags = "3, 4")]
    pub field: Option<Field>,
    #[prost(bool, tag = "6")]
    pub is_dynamic: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct InsertRequest {
    #[prost(string, tag = "3")]
    pub collection_name: String,
    #[prost(message, repeated, tag = "5")]
    pub fields_data: Vec<FieldData>,
    #[prost(uint32, tag = "7")]
    pub num_rows: u32,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum IdField {
    #[prost(message, tag = "1")]
    Int(LongArray),
    #[prost(message, tag = "2")]
    Str(StringArray),
}

#[derive(Clone, PartialEq, Message)]
pub struct Ids {
    #[prost(oneof = "IdField", tags = "1, 2")]
    pub id_field: Option<IdField>,
}

#[derive(Clone, PartialEq, Message)]
pub struct MutationResult {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    #[prost(message, optional, tag = "2")]
    pub ids: Option<Ids>,
    #[prost(int64, tag = "6")]
    pub insert_cnt: i64,
    #[prost(int64, tag = "8")]
    pub upsert_cnt: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct FlushRequest {
    #[prost(string, repeated, tag = "3")]
    pub collection_names: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StatusOnly {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
}

#[derive(Clone, PartialEq, Message)]
pub struct CreateIndexRequest {
    #[prost(string, tag = "3")]
    pub collection_name: String,
    #[prost(string, tag = "4")]
    pub field_name: String,
    #[prost(message, repeated, tag = "5")]
    pub extra_params: Vec<KeyValuePair>,
    #[prost(string, tag = "6")]
    pub index_name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct DescribeIndexRequest {
    #[prost(string, tag = "3")]
    pub collection_name: String,
    #[prost(string, tag = "4")]
    pub field_name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct IndexDescription {
    #[prost(string, tag = "1")]
    pub index_name: String,
    #[prost(message, repeated, tag = "3")]
    pub params: Vec<KeyValuePair>,
    #[prost(string, tag = "4")]
    pub field_name: String,
    #[prost(int64, tag = "5")]
    pub indexed_rows: i64,
    #[prost(int64, tag = "6")]
    pub total_rows: i64,
    /// `common.IndexState`: 3 finished, 4 failed.
    #[prost(int32, tag = "7")]
    pub state: i32,
    #[prost(string, tag = "8")]
    pub index_state_fail_reason: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct DescribeIndexResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    #[prost(message, repeated, tag = "2")]
    pub index_descriptions: Vec<IndexDescription>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LoadCollectionRequest {
    #[prost(string, tag = "3")]
    pub collection_name: String,
    #[prost(int32, tag = "4")]
    pub replica_number: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct GetLoadingProgressRequest {
    #[prost(string, tag = "2")]
    pub collection_name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct GetLoadingProgressResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    #[prost(int64, tag = "2")]
    pub progress: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct QueryRequest {
    #[prost(string, tag = "3")]
    pub collection_name: String,
    #[prost(string, tag = "4")]
    pub expr: String,
    #[prost(string, repeated, tag = "5")]
    pub output_fields: Vec<String>,
    #[prost(message, repeated, tag = "9")]
    pub query_params: Vec<KeyValuePair>,
    /// `common.ConsistencyLevel`: 0 strong.
    #[prost(int32, tag = "11")]
    pub consistency_level: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct QueryResults {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    #[prost(message, repeated, tag = "2")]
    pub fields_data: Vec<FieldData>,
}

#[derive(Clone, PartialEq, Message)]
pub struct PlaceholderValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    /// `common.PlaceholderType`: 100 binary, 101 float.
    #[prost(int32, tag = "2")]
    pub r#type: i32,
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub values: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct PlaceholderGroup {
    #[prost(message, repeated, tag = "1")]
    pub placeholders: Vec<PlaceholderValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SearchRequest {
    #[prost(string, tag = "3")]
    pub collection_name: String,
    #[prost(string, tag = "5")]
    pub dsl: String,
    /// The encoded [`PlaceholderGroup`].
    #[prost(bytes = "vec", tag = "6")]
    pub placeholder_group: Vec<u8>,
    /// `common.DslType`: 1 boolean expression.
    #[prost(int32, tag = "7")]
    pub dsl_type: i32,
    #[prost(string, repeated, tag = "8")]
    pub output_fields: Vec<String>,
    #[prost(message, repeated, tag = "9")]
    pub search_params: Vec<KeyValuePair>,
    #[prost(int64, tag = "12")]
    pub nq: i64,
    #[prost(int32, tag = "14")]
    pub consistency_level: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct SearchResultData {
    #[prost(int64, tag = "1")]
    pub num_queries: i64,
    #[prost(int64, tag = "2")]
    pub top_k: i64,
    #[prost(message, repeated, tag = "3")]
    pub fields_data: Vec<FieldData>,
    #[prost(float, repeated, tag = "4")]
    pub scores: Vec<f32>,
    #[prost(message, optional, tag = "5")]
    pub ids: Option<Ids>,
    #[prost(int64, repeated, tag = "6")]
    pub topks: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SearchResults {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    #[prost(message, optional, tag = "2")]
    pub results: Option<SearchResultData>,
}

#[derive(Clone, PartialEq, Message)]
pub struct GetVersionRequest {}

#[derive(Clone, PartialEq, Message)]
pub struct GetVersionResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    #[prost(string, tag = "2")]
    pub version: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ImportRequest {
    #[prost(string, tag = "1")]
    pub collection_name: String,
    #[prost(string, repeated, tag = "5")]
    pub files: Vec<String>,
    #[prost(message, repeated, tag = "6")]
    pub options: Vec<KeyValuePair>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ImportResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    #[prost(int64, repeated, tag = "2")]
    pub tasks: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct GetImportStateRequest {
    #[prost(int64, tag = "1")]
    pub task: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct GetImportStateResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    /// `common.ImportState`: 6 completed, 1 failed, 7 failed and cleaned.
    #[prost(int32, tag = "2")]
    pub state: i32,
    #[prost(int64, tag = "3")]
    pub row_count: i64,
    #[prost(message, repeated, tag = "5")]
    pub infos: Vec<KeyValuePair>,
    #[prost(int64, tag = "6")]
    pub id: i64,
    #[prost(int64, tag = "7")]
    pub collection_id: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct ListImportTasksRequest {
    #[prost(string, tag = "1")]
    pub collection_name: String,
    #[prost(int64, tag = "2")]
    pub limit: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct ListImportTasksResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    #[prost(message, repeated, tag = "2")]
    pub tasks: Vec<GetImportStateResponse>,
}
