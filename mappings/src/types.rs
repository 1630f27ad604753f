//! The two type systems a mapping joins: Postgres column types as the catalog describes them
//! ([`PgKind`]) and the vector engine's field types, spelled as Milvus spells them
//! ([`DataType`]). Both are closed enums so that everything past the parse edge matches on
//! variants rather than comparing strings.

use serde::{Deserialize, Serialize};

/// A target field type, named as Milvus names it (`INT64`, `FLOAT_VECTOR`, …): the shared
/// vocabulary's field type, under the name the mapping model has always used.
pub use etl_types::FieldType as DataType;
pub use etl_types::{IndexType, Metric};

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
        assert!(Metric::Cosine.supported_by(DataType::FloatVector));
        assert!(!Metric::Hamming.supported_by(DataType::FloatVector));
        assert!(Metric::Jaccard.supported_by(DataType::BinaryVector));
        assert!(Metric::Ip.supported_by(DataType::SparseFloatVector));
        assert!(!Metric::L2.supported_by(DataType::SparseFloatVector));
    }
}
