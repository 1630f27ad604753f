//! The crate's one error type. Every variant that comes from the mapping file carries a
//! [`Location`] so the user sees `mapping.yaml:12:7` and can jump straight to the mistake.

use std::fmt;

/// Where in a mapping file something is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// What is wrong with a qualified name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// More than `schema.table`.
    TooManyParts,
    /// A `"` that is never closed.
    UnterminatedQuote,
    /// `a..b`, `""` or nothing at all.
    EmptyPart,
    /// A character that cannot stand there unquoted.
    UnexpectedCharacter(char),
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::TooManyParts => f.write_str("expected `table` or `schema.table`"),
            NameProblem::UnterminatedQuote => f.write_str("a double quote is never closed"),
            NameProblem::EmptyPart => f.write_str("a part of the name is empty"),
            NameProblem::UnexpectedCharacter(c) => {
                write!(f, "unexpected {c:?}; quote the identifier (\"…\")")
            }
        }
    }
}

/// Renders ` (did you mean `x`?)` or nothing.
pub(crate) struct Suggest<'a>(pub &'a Option<String>);

impl fmt::Display for Suggest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, "; did you mean `{s}`?"),
            None => Ok(()),
        }
    }
}

/// Errors in a mapping file or in what it asks for.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// The file is not valid YAML, or a value has the wrong shape.
    #[error("{at}: {message}")]
    Syntax {
        /// Where.
        at: Location,
        /// The parser's description.
        message: String,
    },
    /// A key the mapping format does not have.
    #[error("{at}: unknown key `{key}`{}; expected one of {}", Suggest(suggestion), expected.join(", "))]
    UnknownKey {
        /// Where.
        at: Location,
        /// The key as written.
        key: String,
        /// The keys allowed there.
        expected: Vec<String>,
        /// The closest allowed key.
        suggestion: Option<String>,
    },
    /// A value outside its allowed set (a type, metric or index name, a number out of range).
    #[error("{at}: invalid {key} `{value}`: {reason}{}", Suggest(suggestion))]
    InvalidValue {
        /// Where.
        at: Location,
        /// The key whose value is wrong.
        key: String,
        /// The value as written.
        value: String,
        /// Why it is wrong.
        reason: String,
        /// The closest allowed value.
        suggestion: Option<String>,
    },
    /// A `${VAR}` whose variable is not set.
    #[error("{at}: environment variable `{var}` is not set")]
    MissingEnv {
        /// Where.
        at: Location,
        /// The variable's name.
        var: String,
    },
    /// A mapping that names no source, or more than one.
    #[error("{at}: `source` needs exactly one of `postgres`, `dump`, `csv` or `parquet`")]
    SourceKind {
        /// Where.
        at: Location,
    },
    /// A qualified name that does not parse.
    #[error("invalid table name `{input}`: {problem}")]
    InvalidName {
        /// The name as written.
        input: String,
        /// What is wrong with it.
        problem: NameProblem,
    },
    /// A table that the source does not have.
    #[error(
        "{at}: table `{table}` does not exist in the source{}",
        Suggest(suggestion)
    )]
    UnknownTable {
        /// Where.
        at: Location,
        /// The table as written.
        table: String,
        /// The closest existing table.
        suggestion: Option<String>,
    },
    /// A column that the table does not have.
    #[error(
        "{at}: column `{column}` does not exist in table `{table}`{}",
        Suggest(suggestion)
    )]
    UnknownColumn {
        /// Where.
        at: Location,
        /// The table.
        table: String,
        /// The column as written.
        column: String,
        /// The closest existing column.
        suggestion: Option<String>,
    },
    /// A type override whose values do not convert.
    #[error(
        "{at}: column `{column}` of `{table}` is `{pg_type}` and cannot become {target}: {reason}"
    )]
    IncompatibleOverride {
        /// Where.
        at: Location,
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The column's Postgres type.
        pg_type: String,
        /// The requested target type.
        target: String,
        /// Why not.
        reason: String,
    },
    /// Two fields of one collection with the same name, or two tables into one collection.
    #[error("{at}: {what} `{name}` is used twice")]
    Duplicate {
        /// Where.
        at: Location,
        /// `field` or `collection`.
        what: &'static str,
        /// The duplicated name.
        name: String,
    },
    /// A setting that contradicts another.
    #[error("{at}: {message}")]
    Conflict {
        /// Where.
        at: Location,
        /// What contradicts what.
        message: String,
    },
}

impl MappingError {
    /// Whether this error is the user's mistake in the file (as opposed to a required fix).
    pub fn location(&self) -> Option<&Location> {
        match self {
            MappingError::Syntax { at, .. }
            | MappingError::UnknownKey { at, .. }
            | MappingError::InvalidValue { at, .. }
            | MappingError::MissingEnv { at, .. }
            | MappingError::SourceKind { at }
            | MappingError::UnknownTable { at, .. }
            | MappingError::UnknownColumn { at, .. }
            | MappingError::IncompatibleOverride { at, .. }
            | MappingError::Duplicate { at, .. }
            | MappingError::Conflict { at, .. } => Some(at),
            MappingError::InvalidName { .. } => None,
        }
    }
}

/// The closest candidate to `input` by Jaro-Winkler similarity, if it is close enough to be a
/// plausible typo.
pub fn closest<'a, I>(input: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = input.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names() {
        assert_eq!(
            closest("metirc", ["type", "metric", "params"]),
            Some("metric".into())
        );
        assert_eq!(closest("zzz", ["type", "metric"]), None);
    }
}
