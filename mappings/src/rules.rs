//! The default type-mapping rules: what each Postgres type becomes when the mapping says nothing,
//! which overrides are allowed, and which columns can be primary keys.
//!
//! The table in the README and in the foundation issue is the contract; every row of it has a
//! unit test below.

use crate::types::{DataType, PgKind};

/// The longest VARCHAR the engine (and Milvus) holds.
pub const MAX_VARCHAR_LENGTH: u32 = 65_535;
/// The largest ARRAY capacity the engine (and Milvus) holds; also the default.
pub const MAX_ARRAY_CAPACITY: u32 = 4_096;
/// `numeric(p, s)` up to this precision fits a DOUBLE exactly enough to map to one.
pub const MAX_DOUBLE_NUMERIC_PRECISION: u32 = 15;

/// How loud a note is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Could surprise: precision, length or meaning changes.
    Warning,
}

/// A remark attached to a field's mapping.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Note {
    /// How loud.
    pub severity: Severity,
    /// What to know.
    pub text: String,
}

impl Note {
    /// An informational note.
    pub fn info(text: impl Into<String>) -> Self {
        Note {
            severity: Severity::Info,
            text: text.into(),
        }
    }
    /// A warning.
    pub fn warning(text: impl Into<String>) -> Self {
        Note {
            severity: Severity::Warning,
            text: text.into(),
        }
    }
}

/// A target type with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeChoice {
    /// The field type.
    pub data_type: DataType,
    /// Vector dimension.
    pub dim: Option<u32>,
    /// VARCHAR (or VARCHAR element) length limit.
    pub max_length: Option<u32>,
    /// ARRAY element type.
    pub element_type: Option<DataType>,
    /// ARRAY capacity.
    pub max_capacity: Option<u32>,
    /// What the user should know about this choice.
    pub note: Option<Note>,
}

impl TypeChoice {
    pub(crate) fn of(data_type: DataType) -> Self {
        TypeChoice {
            data_type,
            dim: None,
            max_length: None,
            element_type: None,
            max_capacity: None,
            note: None,
        }
    }
    fn varchar(max_length: u32) -> Self {
        TypeChoice {
            max_length: Some(max_length),
            ..TypeChoice::of(DataType::Varchar)
        }
    }
    fn vector(data_type: DataType, dim: Option<u32>) -> Self {
        TypeChoice {
            dim,
            ..TypeChoice::of(data_type)
        }
    }
    fn with(mut self, note: Note) -> Self {
        self.note = Some(note);
        self
    }
}

/// A column the rules cannot map without the user's decision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RequiredFix {
    /// Why it cannot be mapped.
    pub reason: String,
    /// What the user can do.
    pub fix: String,
}

/// What a Postgres type becomes by default.
pub fn default_rule(kind: &PgKind) -> Result<TypeChoice, RequiredFix> {
    use DataType as T;
    Ok(match kind {
        PgKind::Bool => TypeChoice::of(T::Bool),
        PgKind::Int2 => TypeChoice::of(T::Int16),
        PgKind::Int4 => TypeChoice::of(T::Int32),
        PgKind::Int8 => TypeChoice::of(T::Int64),
        PgKind::Float4 => TypeChoice::of(T::Float),
        PgKind::Float8 => TypeChoice::of(T::Double),
        PgKind::Numeric {
            precision: Some(p),
            ..
        } if *p <= MAX_DOUBLE_NUMERIC_PRECISION => TypeChoice::of(T::Double),
        PgKind::Numeric { precision, .. } => {
            let (len, why) = match precision {
                Some(p) => (p.saturating_add(2).max(9), format!("numeric({p}) is wider")),
                None => (MAX_VARCHAR_LENGTH, "unconstrained numeric can be wider".into()),
            };
            TypeChoice::varchar(len.min(MAX_VARCHAR_LENGTH)).with(Note::warning(format!(
                "VARCHAR holding the exact decimal text: {why} than a DOUBLE keeps exactly \
                 (set `type: DOUBLE` to accept rounding)"
            )))
        }
        PgKind::Text => TypeChoice::varchar(MAX_VARCHAR_LENGTH),
        PgKind::Varchar { max_length } | PgKind::Char { length: max_length } => {
            match max_length {
                Some(n) if *n > MAX_VARCHAR_LENGTH => TypeChoice::varchar(MAX_VARCHAR_LENGTH)
                    .with(Note::warning(format!(
                        "declared length {n} exceeds VARCHAR's {MAX_VARCHAR_LENGTH}; longer values are rejected"
                    ))),
                Some(n) => TypeChoice::varchar(*n),
                None => TypeChoice::varchar(MAX_VARCHAR_LENGTH),
            }
        }
        PgKind::Uuid => TypeChoice::varchar(36).with(Note::info("uuid as its canonical text")),
        PgKind::Date => TypeChoice::varchar(32).with(Note::info("date as ISO 8601 text")),
        PgKind::Time => TypeChoice::varchar(32).with(Note::info("time as ISO 8601 text")),
        PgKind::TimeTz => {
            TypeChoice::varchar(32).with(Note::info("time with time zone as ISO 8601 text"))
        }
        PgKind::Timestamp => {
            TypeChoice::varchar(40).with(Note::info("timestamp as ISO 8601 text"))
        }
        PgKind::TimestampTz => TypeChoice::varchar(40).with(Note::info(
            "timestamptz as ISO 8601 text in UTC, so string order is time order",
        )),
        PgKind::Interval => TypeChoice::varchar(128).with(Note::info("interval as text")),
        PgKind::Inet | PgKind::Cidr => {
            TypeChoice::varchar(64).with(Note::info("network address as text"))
        }
        PgKind::Enum { type_name } => TypeChoice::varchar(256)
            .with(Note::info(format!("enum {type_name} as its label"))),
        PgKind::Json | PgKind::Jsonb => TypeChoice::of(T::Json),
        PgKind::Bytea => {
            return Err(RequiredFix {
                reason: "bytea has no counterpart in the vector engine".into(),
                fix: "exclude the column, or map it with `type: VARCHAR` to carry base64 text"
                    .into(),
            });
        }
        PgKind::Vector { dim } => dense(T::FloatVector, "vector", *dim)?,
        PgKind::HalfVec { dim } => dense(T::Float16Vector, "halfvec", *dim)?,
        PgKind::SparseVec { dim } => TypeChoice::vector(T::SparseFloatVector, *dim),
        PgKind::Bit { length: Some(n) } if *n > 0 && n % 8 == 0 => {
            TypeChoice::vector(T::BinaryVector, Some(*n))
        }
        PgKind::Bit { length } => {
            return Err(RequiredFix {
                reason: format!(
                    "bit({}) is not a whole number of bytes; BINARY_VECTOR needs a multiple of 8",
                    length.map_or_else(|| "?".to_string(), |n| n.to_string())
                ),
                fix: "exclude the column, or map it with `type: VARCHAR` to carry the bit string"
                    .into(),
            });
        }
        PgKind::VarBit { .. } => {
            TypeChoice::varchar(MAX_VARCHAR_LENGTH).with(Note::info("bit varying as its bit string"))
        }
        PgKind::Array { element, ndims } if *ndims <= 1 => {
            let elem = default_rule(element).map_err(|f| RequiredFix {
                reason: format!("array elements: {}", f.reason),
                fix: "exclude the column".into(),
            })?;
            if elem.data_type.is_array_element() {
                TypeChoice {
                    element_type: Some(elem.data_type),
                    max_length: elem.max_length,
                    max_capacity: Some(MAX_ARRAY_CAPACITY),
                    note: elem.note,
                    ..TypeChoice::of(T::Array)
                }
            } else {
                TypeChoice::of(T::Json).with(Note::info(format!(
                    "array of {} as JSON: ARRAY holds scalars only",
                    elem.data_type
                )))
            }
        }
        PgKind::Array { .. } => {
            TypeChoice::of(T::Json).with(Note::info("multi-dimensional array as nested JSON"))
        }
        PgKind::Other { type_name } => TypeChoice::varchar(MAX_VARCHAR_LENGTH)
            .with(Note::info(format!("{type_name} as its text form"))),
    })
}

fn dense(data_type: DataType, pg: &str, dim: Option<u32>) -> Result<TypeChoice, RequiredFix> {
    match dim {
        Some(d) => Ok(TypeChoice::vector(data_type, Some(d))),
        None => Err(RequiredFix {
            reason: format!("{pg} without a declared dimension"),
            fix: format!("give the field a `dim:` (or declare the column as {pg}(n))"),
        }),
    }
}

/// The primary key type for a single-column key of this kind, if it can be one.
pub fn primary_key_type(kind: &PgKind) -> Option<DataType> {
    match kind {
        k if k.is_integer() => Some(DataType::Int64),
        k if k.is_text() => Some(DataType::Varchar),
        PgKind::Uuid => Some(DataType::Varchar),
        _ => None,
    }
}

/// Whether a column of `kind` may be mapped to `target`. `Ok` carries a note where the
/// conversion can reject or change values; `Err` the reason it is refused.
pub fn check_override(kind: &PgKind, target: DataType) -> Result<Option<Note>, String> {
    use DataType as T;
    let default = default_rule(kind).ok().map(|c| c.data_type);
    if default == Some(target) {
        return Ok(None);
    }
    let refuse = |why: &str| Err(why.to_string());
    match (kind, target) {
        // Everything scalar has a canonical text form.
        (PgKind::Bytea, T::Varchar) => Ok(Some(Note::info("bytea as base64 text"))),
        (
            PgKind::Vector { .. }
            | PgKind::HalfVec { .. }
            | PgKind::SparseVec { .. }
            | PgKind::Bit { .. },
            T::Varchar,
        ) => Ok(Some(Note::info("vector as its pgvector text form"))),
        (_, T::Varchar) => Ok(None),
        (k, t) if k.is_integer() && t.is_integer() => Ok(narrowing(kind, t)),
        (k, T::Float | T::Double) if k.is_integer() => Ok(None),
        (PgKind::Float4 | PgKind::Float8, T::Float | T::Double) => Ok(if target == T::Float {
            Some(Note::warning("rounded to 32-bit float"))
        } else {
            None
        }),
        (PgKind::Numeric { .. }, T::Float | T::Double) => {
            Ok(Some(Note::warning("rounded to binary floating point")))
        }
        (PgKind::Numeric { scale, .. }, t) if t.is_integer() => match scale {
            Some(0) => Ok(Some(Note::warning(
                "values outside the integer's range are rejected",
            ))),
            _ => refuse("a numeric with a fractional part does not convert to an integer"),
        },
        (PgKind::Bool, t) if t.is_integer() => Ok(None),
        (k, T::Json) if k.is_text() => Ok(Some(Note::warning(
            "rows whose text is not valid JSON are rejected",
        ))),
        (PgKind::Json | PgKind::Jsonb | PgKind::Array { .. }, T::Json) => Ok(None),
        // No declared dimension: the mapping's `dim` decides, other rows are rejected.
        (PgKind::Vector { dim: None }, T::FloatVector)
        | (PgKind::HalfVec { dim: None }, T::Float16Vector) => Ok(Some(Note::warning(
            "the column declares no dimension: rows whose dimension is not `dim` are rejected",
        ))),
        (PgKind::Vector { .. }, T::Float16Vector) => {
            Ok(Some(Note::warning("rounded to 16-bit floats")))
        }
        (PgKind::HalfVec { .. }, T::FloatVector) => Ok(None),
        (PgKind::Array { element, .. }, T::Array) => match default_rule(element) {
            Ok(e) if e.data_type.is_array_element() => Ok(None),
            _ => refuse("ARRAY holds scalars only"),
        },
        (PgKind::Array { element, .. }, T::FloatVector | T::Float16Vector)
            if matches!(
                **element,
                PgKind::Float4 | PgKind::Float8 | PgKind::Numeric { .. }
            ) =>
        {
            Ok(Some(Note::warning(
                "arrays of another length than `dim`, or with NULLs, are rejected",
            )))
        }
        (_, t) if t.is_vector() => refuse(&format!(
            "only vector columns (or float arrays) become {t}; this column's values are not vectors"
        )),
        (_, T::Array) => refuse("only array columns become ARRAY"),
        (_, T::Json) => refuse("only json, jsonb, text and array columns become JSON"),
        (_, t) => refuse(&format!("its values do not convert to {t}")),
    }
}

fn narrowing(kind: &PgKind, target: DataType) -> Option<Note> {
    let source_bits = match kind {
        PgKind::Int2 => 16,
        PgKind::Int4 => 32,
        _ => 64,
    };
    let target_bits = match target {
        DataType::Int8 => 8,
        DataType::Int16 => 16,
        DataType::Int32 => 32,
        _ => 64,
    };
    (target_bits < source_bits)
        .then(|| Note::warning("values outside the target range are rejected"))
}

#[cfg(test)]
mod tests;
