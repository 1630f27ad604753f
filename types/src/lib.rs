//! The vocabulary every crate shares, defined once: a collection field's type, the vector
//! metrics, the index kinds and their build parameters, spelled as Milvus spells them. The
//! mapping model, the engine and the pipeline used to define these each for itself and bridge
//! them through strings; the copies drifted (an HNSW with no params was built with
//! `ef_construction` 200 by `etl run` and 64 by `etl index build`). Pure: serde only.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The type of a collection field (`INT64`, `FLOAT_VECTOR`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FieldType {
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
    Varchar,
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

impl FieldType {
    /// All types, in the order the docs list them.
    pub const ALL: [FieldType; 14] = [
        FieldType::Bool,
        FieldType::Int8,
        FieldType::Int16,
        FieldType::Int32,
        FieldType::Int64,
        FieldType::Float,
        FieldType::Double,
        FieldType::Varchar,
        FieldType::Json,
        FieldType::Array,
        FieldType::FloatVector,
        FieldType::Float16Vector,
        FieldType::BinaryVector,
        FieldType::SparseFloatVector,
    ];

    /// Milvus' spelling, as mapping files and reports write it.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Bool => "BOOL",
            FieldType::Int8 => "INT8",
            FieldType::Int16 => "INT16",
            FieldType::Int32 => "INT32",
            FieldType::Int64 => "INT64",
            FieldType::Float => "FLOAT",
            FieldType::Double => "DOUBLE",
            FieldType::Varchar => "VARCHAR",
            FieldType::Json => "JSON",
            FieldType::Array => "ARRAY",
            FieldType::FloatVector => "FLOAT_VECTOR",
            FieldType::Float16Vector => "FLOAT16_VECTOR",
            FieldType::BinaryVector => "BINARY_VECTOR",
            FieldType::SparseFloatVector => "SPARSE_FLOAT_VECTOR",
        }
    }

    /// Parses Milvus' spelling, case-insensitively.
    pub fn parse(name: &str) -> Option<FieldType> {
        FieldType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The four vector types.
    pub fn is_vector(self) -> bool {
        matches!(
            self,
            FieldType::FloatVector
                | FieldType::Float16Vector
                | FieldType::BinaryVector
                | FieldType::SparseFloatVector
        )
    }

    /// A vector type with a fixed dimension (all but sparse).
    pub fn is_dense_vector(self) -> bool {
        self.is_vector() && self != FieldType::SparseFloatVector
    }

    /// The integer types.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            FieldType::Int8 | FieldType::Int16 | FieldType::Int32 | FieldType::Int64
        )
    }

    /// The integer and floating-point types.
    pub fn is_numeric(self) -> bool {
        self.is_integer() || matches!(self, FieldType::Float | FieldType::Double)
    }

    /// The types an ARRAY may hold (Milvus allows scalars only).
    pub fn is_array_element(self) -> bool {
        self.is_numeric() || matches!(self, FieldType::Bool | FieldType::Varchar)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A vector distance metric; distances follow pgvector (smaller is nearer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Metric {
    /// Euclidean distance (pgvector `<->`).
    L2,
    /// Negative inner product (pgvector `<#>`).
    Ip,
    /// Cosine distance `1 - cos` (pgvector `<=>`).
    Cosine,
    /// Number of differing bits (`bit_hamming_ops`).
    Hamming,
    /// 1 − |a∧b| / |a∨b| (`bit_jaccard_ops`).
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

    /// Milvus' spelling.
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "L2",
            Metric::Ip => "IP",
            Metric::Cosine => "COSINE",
            Metric::Hamming => "HAMMING",
            Metric::Jaccard => "JACCARD",
        }
    }

    /// Parses Milvus' spelling, case-insensitively.
    pub fn parse(name: &str) -> Option<Metric> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether the metric applies to a field of type `t`.
    pub fn supported_by(self, t: FieldType) -> bool {
        match t {
            FieldType::FloatVector | FieldType::Float16Vector => {
                matches!(self, Metric::L2 | Metric::Ip | Metric::Cosine)
            }
            FieldType::BinaryVector => matches!(self, Metric::Hamming | Metric::Jaccard),
            FieldType::SparseFloatVector => self == Metric::Ip,
            _ => false,
        }
    }

    /// The metric used when none is given: COSINE for float vectors, HAMMING for binary, IP
    /// for sparse.
    pub fn default_for(t: FieldType) -> Metric {
        match t {
            FieldType::BinaryVector => Metric::Hamming,
            FieldType::SparseFloatVector => Metric::Ip,
            _ => Metric::Cosine,
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
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IndexType {
    /// Hierarchical navigable small world graph, for float (and in the engine binary) vectors.
    Hnsw,
    /// HNSW over int8-quantized float vectors, hits re-ranked exactly (Milvus' HNSW_SQ).
    HnswSq,
    /// k-means lists scanned exactly (pgvector's IVFFlat), for float and binary vectors.
    IvfFlat,
    /// Exact search over any dense vector type.
    Flat,
    /// Exact search over binary vectors.
    BinFlat,
    /// Inverted lists per dimension, for sparse vectors (IP).
    SparseInvertedIndex,
    /// Sorted values, for numeric fields.
    StlSort,
    /// Value → rows, for VARCHAR, BOOL, numbers and array elements.
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
        IndexType::SparseInvertedIndex,
        IndexType::StlSort,
        IndexType::Inverted,
    ];

    /// Milvus' spelling.
    pub fn name(self) -> &'static str {
        match self {
            IndexType::Hnsw => "HNSW",
            IndexType::HnswSq => "HNSW_SQ",
            IndexType::IvfFlat => "IVF_FLAT",
            IndexType::Flat => "FLAT",
            IndexType::BinFlat => "BIN_FLAT",
            IndexType::SparseInvertedIndex => "SPARSE_INVERTED_INDEX",
            IndexType::StlSort => "STL_SORT",
            IndexType::Inverted => "INVERTED",
        }
    }

    /// Parses Milvus' spelling, case-insensitively.
    pub fn parse(name: &str) -> Option<IndexType> {
        IndexType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Indexes over vector fields.
    pub fn is_vector(self) -> bool {
        !self.is_scalar()
    }

    /// Indexes over scalar fields.
    pub fn is_scalar(self) -> bool {
        matches!(self, IndexType::StlSort | IndexType::Inverted)
    }

    /// The graph indexes (HNSW, HNSW_SQ).
    pub fn is_graph(self) -> bool {
        matches!(self, IndexType::Hnsw | IndexType::HnswSq)
    }

    /// Indexes whose answers are approximate (a search falls back to exact search when one
    /// comes back short).
    pub fn is_approximate(self) -> bool {
        matches!(
            self,
            IndexType::Hnsw | IndexType::HnswSq | IndexType::IvfFlat
        )
    }

    /// Whether a mapping may put this index on a field of type `t` (arrays: on their
    /// elements): what Milvus builds. The engine also builds HNSW on binary vectors, through
    /// `etl index build`.
    pub fn applies_to(self, t: FieldType, element: Option<FieldType>) -> bool {
        match self {
            IndexType::Hnsw | IndexType::HnswSq => {
                matches!(t, FieldType::FloatVector | FieldType::Float16Vector)
            }
            IndexType::IvfFlat => matches!(
                t,
                FieldType::FloatVector | FieldType::Float16Vector | FieldType::BinaryVector
            ),
            IndexType::Flat => t.is_dense_vector(),
            IndexType::BinFlat => t == FieldType::BinaryVector,
            IndexType::SparseInvertedIndex => t == FieldType::SparseFloatVector,
            IndexType::StlSort => t.is_numeric(),
            IndexType::Inverted => {
                matches!(t, FieldType::Varchar | FieldType::Bool)
                    || t.is_numeric()
                    || (t == FieldType::Array && element.is_some())
            }
        }
    }

    /// The metric a vector index uses when none is named (`None` for scalar fields).
    pub fn default_metric(t: FieldType) -> Option<Metric> {
        t.is_vector().then(|| Metric::default_for(t))
    }

    /// The index a field gets when none is named.
    pub fn default_for(t: FieldType) -> IndexType {
        match t {
            FieldType::FloatVector | FieldType::Float16Vector => IndexType::Hnsw,
            FieldType::BinaryVector => IndexType::BinFlat,
            FieldType::SparseFloatVector => IndexType::SparseInvertedIndex,
            t if t.is_numeric() => IndexType::StlSort,
            _ => IndexType::Inverted,
        }
    }
}

impl fmt::Display for IndexType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// HNSW build parameters (Milvus' names on disk and on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Links per node (Milvus `M`, pgvector `m`).
    #[serde(rename = "M")]
    pub m: u32,
    /// Candidate list size while building.
    #[serde(rename = "efConstruction")]
    pub ef_construction: u32,
}

impl Default for HnswParams {
    fn default() -> Self {
        // pgvector's defaults, so a migrated index behaves as the user's did.
        HnswParams {
            m: 16,
            ef_construction: 64,
        }
    }
}

/// IVF_FLAT parameters: pgvector's `lists` and `ivfflat.probes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IvfParams {
    /// Lists (pgvector `lists`).
    pub nlist: u32,
    /// Lists a search scans unless the request says otherwise (pgvector `ivfflat.probes`).
    pub nprobe: u32,
}

impl Default for IvfParams {
    fn default() -> Self {
        // pgvector's default `lists` is 100; its `probes` default of 1 finds few neighbours, so
        // a tenth of the lists, as pgvector's docs suggest starting. A source `ivfflat` index
        // brings its own `lists` and the connection's `ivfflat.probes` instead.
        IvfParams {
            nlist: 100,
            nprobe: 10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_serialize_as_milvus_spells_them() {
        for t in FieldType::ALL {
            assert_eq!(FieldType::parse(&t.name().to_lowercase()), Some(t));
            assert_eq!(
                serde_json::to_string(&t).ok(),
                Some(format!("\"{}\"", t.name()))
            );
        }
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.name()), Some(m));
        }
        for i in IndexType::ALL {
            assert_eq!(IndexType::parse(i.name()), Some(i));
            assert_eq!(
                serde_json::to_string(&i).ok(),
                Some(format!("\"{}\"", i.name()))
            );
        }
    }
}
