//! The two type systems a mapping joins: Postgres column types as the catalog describes them
//! ([`PgKind`]) and the vector engine's field types, spelled as Milvus spells them
//! ([`DataType`]). Both are closed enums so that everything past the parse edge matches on
//! variants rather than comparing strings.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A target field type, named as Milvus names it (`INT64`, `FLOAT_VECTOR`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DataType {
    /// `BOOL`
    Bool,
    /// `INT8`
    Int8,
    /// `INT16`
    Int16,
    /// `INT32`
    Int32,
    /// `INT64`
    Int64,
    /// `FLOAT` (32-bit)
    Float,
    /// `DOUBLE` (64-bit)
    Double,
    /// `VARCHAR` with a `max_length`
    #[serde(rename = "VARCHAR")]
    VarChar,
    /// `JSON`
    Json,
    /// `ARRAY` of a scalar `element_type` with a `max_capacity`
    Array,
    /// `FLOAT_VECTOR` (float32 × dim)
    FloatVector,
    /// `FLOAT16_VECTOR` (IEEE binary16 × dim)
    #[serde(rename = "FLOAT16_VECTOR")]
    Float16Vector,
    /// `BINARY_VECTOR` (dim bits, a multiple of 8)
    BinaryVector,
    /// `SPARSE_FLOAT_VECTOR` (index → float32 pairs)
    SparseFloatVector,
}

impl DataType {
    /// All variants, in the order the docs list them.
    pub const ALL: [DataType; 14] = [
        DataType::Bool,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Float,
        DataType::Double,
        DataType::VarChar,
        DataType::Json,
        DataType::Array,
        DataType::FloatVector,
        DataType::Float16Vector,
        DataType::BinaryVector,
        DataType::SparseFloatVector,
    ];

    /// The name as written in mapping files and shown in reports.
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Float => "FLOAT",
            DataType::Double => "DOUBLE",
            DataType::VarChar => "VARCHAR",
            DataType::Json => "JSON",
            DataType::Array => "ARRAY",
            DataType::FloatVector => "FLOAT_VECTOR",
            DataType::Float16Vector => "FLOAT16_VECTOR",
            DataType::BinaryVector => "BINARY_VECTOR",
            DataType::SparseFloatVector => "SPARSE_FLOAT_VECTOR",
        }
    }

    /// Parses a name as written in a mapping file (case-insensitive).
    pub fn parse(name: &str) -> Option<DataType> {
        DataType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this is one of the vector types.
    pub fn is_vector(self) -> bool {
        matches!(
            self,
            DataType::FloatVector
                | DataType::Float16Vector
                | DataType::BinaryVector
                | DataType::SparseFloatVector
        )
    }

    /// Whether this is a dense vector type with a fixed dimension.
    pub fn is_dense_vector(self) -> bool {
        self.is_vector() && self != DataType::SparseFloatVector
    }

    /// Whether this type may be an `ARRAY` element (Milvus allows scalars only).
    pub fn is_array_element(self) -> bool {
        matches!(
            self,
            DataType::Bool
                | DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::Float
                | DataType::Double
                | DataType::VarChar
        )
    }

    /// Whether this is an integer type.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
        )
    }

    /// Whether this is a numeric (integer or floating point) type.
    pub fn is_numeric(self) -> bool {
        self.is_integer() || matches!(self, DataType::Float | DataType::Double)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Postgres column type, as far as the mapping rules need to know it.
///
/// Domains are described by their base type; the catalog reader resolves them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PgKind {
    /// `boolean`
    Bool,
    /// `smallint`
    Int2,
    /// `integer`
    Int4,
    /// `bigint`
    Int8,
    /// `real`
    Float4,
    /// `double precision`
    Float8,
    /// `numeric(p, s)`, or unconstrained `numeric` when `precision` is `None`.
    Numeric {
        /// Declared precision.
        precision: Option<u32>,
        /// Declared scale.
        scale: Option<u32>,
    },
    /// `text`
    Text,
    /// `character varying(n)`
    Varchar {
        /// Declared maximum length in characters.
        max_length: Option<u32>,
    },
    /// `character(n)`
    Char {
        /// Declared length in characters.
        length: Option<u32>,
    },
    /// `uuid`
    Uuid,
    /// `date`
    Date,
    /// `time without time zone`
    Time,
    /// `time with time zone`
    TimeTz,
    /// `timestamp without time zone`
    Timestamp,
    /// `timestamp with time zone`
    TimestampTz,
    /// `interval`
    Interval,
    /// `inet`
    Inet,
    /// `cidr`
    Cidr,
    /// `json`
    Json,
    /// `jsonb`
    Jsonb,
    /// `bytea`
    Bytea,
    /// pgvector `vector(n)`
    Vector {
        /// Declared dimension.
        dim: Option<u32>,
    },
    /// pgvector `halfvec(n)`
    HalfVec {
        /// Declared dimension.
        dim: Option<u32>,
    },
    /// pgvector `sparsevec(n)`
    SparseVec {
        /// Declared dimension.
        dim: Option<u32>,
    },
    /// `bit(n)`
    Bit {
        /// Declared length in bits.
        length: Option<u32>,
    },
    /// `bit varying(n)`
    VarBit {
        /// Declared maximum length in bits.
        max_length: Option<u32>,
    },
    /// A user-defined enum.
    Enum {
        /// The enum type's name.
        type_name: String,
    },
    /// An array of `element`; `ndims` as declared (Postgres does not enforce it).
    Array {
        /// The element type.
        element: Box<PgKind>,
        /// Declared number of dimensions (0 or 1 means one-dimensional).
        ndims: u32,
    },
    /// Any other type (money, macaddr, point, tsvector, ranges, composites, …): read as text.
    Other {
        /// The type's name as `format_type` prints it.
        type_name: String,
    },
}

impl PgKind {
    /// Whether the type is one of Postgres' integer types.
    pub fn is_integer(&self) -> bool {
        matches!(self, PgKind::Int2 | PgKind::Int4 | PgKind::Int8)
    }

    /// A vector type's declared dimension (a bit string's length).
    pub fn dim(&self) -> Option<u32> {
        match self {
            PgKind::Vector { dim } | PgKind::HalfVec { dim } | PgKind::SparseVec { dim } => *dim,
            PgKind::Bit { length } => *length,
            _ => None,
        }
    }

    /// Whether the type is a character string type.
    pub fn is_text(&self) -> bool {
        matches!(
            self,
            PgKind::Text | PgKind::Varchar { .. } | PgKind::Char { .. }
        )
    }
}

/// A Postgres column type: its display name and its kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgType {
    /// As `format_type(atttypid, atttypmod)` prints it, e.g. `vector(768)` or a domain's name.
    pub display: String,
    /// What the rules look at.
    pub kind: PgKind,
}

impl PgType {
    /// A type with the given display name and kind.
    pub fn new(display: impl Into<String>, kind: PgKind) -> Self {
        PgType {
            display: display.into(),
            kind,
        }
    }
}

/// A vector distance metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Metric {
    /// Euclidean distance (pgvector `<->`).
    L2,
    /// Negative inner product (pgvector `<#>`).
    Ip,
    /// Cosine distance (pgvector `<=>`).
    Cosine,
    /// Hamming distance on bits.
    Hamming,
    /// Jaccard distance on bits.
    Jaccard,
}

impl Metric {
    /// All metrics.
    pub const ALL: [Metric; 5] = [
        Metric::L2,
        Metric::Ip,
        Metric::Cosine,
        Metric::Hamming,
        Metric::Jaccard,
    ];

    /// The name as written in mapping files.
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "L2",
            Metric::Ip => "IP",
            Metric::Cosine => "COSINE",
            Metric::Hamming => "HAMMING",
            Metric::Jaccard => "JACCARD",
        }
    }

    /// Parses a metric name (case-insensitive).
    pub fn parse(name: &str) -> Option<Metric> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether the metric applies to a field of type `ty`.
    pub fn applies_to(self, ty: DataType) -> bool {
        match ty {
            DataType::FloatVector | DataType::Float16Vector => {
                matches!(self, Metric::L2 | Metric::Ip | Metric::Cosine)
            }
            DataType::BinaryVector => matches!(self, Metric::Hamming | Metric::Jaccard),
            DataType::SparseFloatVector => self == Metric::Ip,
            _ => false,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An index kind, named as Milvus names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IndexType {
    /// Graph index for dense float vectors.
    #[serde(rename = "HNSW")]
    Hnsw,
    /// HNSW over int8-quantized float vectors, hits re-ranked exactly (Milvus' HNSW_SQ).
    #[serde(rename = "HNSW_SQ")]
    HnswSq,
    /// k-means lists scanned exactly (pgvector's IVFFlat), for float and binary vectors.
    #[serde(rename = "IVF_FLAT")]
    IvfFlat,
    /// Exact search over any dense vector type.
    #[serde(rename = "FLAT")]
    Flat,
    /// Exact search over binary vectors.
    #[serde(rename = "BIN_FLAT")]
    BinFlat,
    /// Inverted index over sparse vectors.
    #[serde(rename = "SPARSE_INVERTED_INDEX")]
    SparseInverted,
    /// Sorted scalar index for numbers.
    #[serde(rename = "STL_SORT")]
    StlSort,
    /// Inverted scalar index for strings, booleans and array elements.
    #[serde(rename = "INVERTED")]
    Inverted,
}

impl IndexType {
    /// All index types.
    pub const ALL: [IndexType; 8] = [
        IndexType::Hnsw,
        IndexType::HnswSq,
        IndexType::IvfFlat,
        IndexType::Flat,
        IndexType::BinFlat,
        IndexType::SparseInverted,
        IndexType::StlSort,
        IndexType::Inverted,
    ];

    /// The name as written in mapping files.
    pub fn name(self) -> &'static str {
        match self {
            IndexType::Hnsw => "HNSW",
            IndexType::HnswSq => "HNSW_SQ",
            IndexType::IvfFlat => "IVF_FLAT",
            IndexType::Flat => "FLAT",
            IndexType::BinFlat => "BIN_FLAT",
            IndexType::SparseInverted => "SPARSE_INVERTED_INDEX",
            IndexType::StlSort => "STL_SORT",
            IndexType::Inverted => "INVERTED",
        }
    }

    /// Parses an index type name (case-insensitive).
    pub fn parse(name: &str) -> Option<IndexType> {
        IndexType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this is a vector index.
    pub fn is_vector(self) -> bool {
        matches!(
            self,
            IndexType::Hnsw
                | IndexType::HnswSq
                | IndexType::IvfFlat
                | IndexType::Flat
                | IndexType::BinFlat
                | IndexType::SparseInverted
        )
    }

    /// Whether the index can be built on a field of type `ty` (arrays: on their elements).
    pub fn applies_to(self, ty: DataType, element: Option<DataType>) -> bool {
        match self {
            IndexType::Hnsw | IndexType::HnswSq => {
                matches!(ty, DataType::FloatVector | DataType::Float16Vector)
            }
            IndexType::IvfFlat => matches!(
                ty,
                DataType::FloatVector | DataType::Float16Vector | DataType::BinaryVector
            ),
            IndexType::Flat => ty.is_dense_vector(),
            IndexType::BinFlat => ty == DataType::BinaryVector,
            IndexType::SparseInverted => ty == DataType::SparseFloatVector,
            IndexType::StlSort => ty.is_numeric(),
            IndexType::Inverted => {
                matches!(ty, DataType::VarChar | DataType::Bool)
                    || ty.is_numeric()
                    || (ty == DataType::Array && element.is_some())
            }
        }
    }

    /// The metric used when a mapping names none.
    pub fn default_metric(ty: DataType) -> Option<Metric> {
        match ty {
            DataType::FloatVector | DataType::Float16Vector => Some(Metric::Cosine),
            DataType::BinaryVector => Some(Metric::Hamming),
            DataType::SparseFloatVector => Some(Metric::Ip),
            _ => None,
        }
    }
}

impl fmt::Display for IndexType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in DataType::ALL {
            assert_eq!(DataType::parse(t.name()), Some(t));
            let yaml = serde_json::to_string(&t).unwrap_or_default();
            assert_eq!(yaml, format!("\"{}\"", t.name()));
        }
        for m in Metric::ALL {
            assert_eq!(Metric::parse(&m.name().to_lowercase()), Some(m));
        }
        for i in IndexType::ALL {
            assert_eq!(IndexType::parse(i.name()), Some(i));
        }
    }

    #[test]
    fn metrics_fit_their_vector_types() {
        assert!(Metric::Cosine.applies_to(DataType::FloatVector));
        assert!(!Metric::Hamming.applies_to(DataType::FloatVector));
        assert!(Metric::Jaccard.applies_to(DataType::BinaryVector));
        assert!(Metric::Ip.applies_to(DataType::SparseFloatVector));
        assert!(!Metric::L2.applies_to(DataType::SparseFloatVector));
    }
}
