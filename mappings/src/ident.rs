//! Identifiers on both sides: Postgres' qualified names (with its quoting and case folding) and
//! the vector engine's collection and field names (letters, digits and underscores).
//!
//! Every SQL statement this project sends builds its identifiers through [`quote_ident`], so a
//! table called `Doc "Chunks"` can never break out of its quotes.

use std::fmt;

use crate::error::{MappingError, NameProblem};

/// The longest collection or field name the engine (and Milvus) accepts.
pub const MAX_NAME_LEN: usize = 255;

/// Quotes a Postgres identifier: always double-quoted, inner quotes doubled.
pub fn quote_ident(ident: &str) -> String {
    quote_with(ident, '"')
}

/// Quotes a Postgres string literal, inner quotes doubled (standard_conforming_strings).
pub fn quote_literal(value: &str) -> String {
    quote_with(value, '\'')
}

fn quote_with(text: &str, quote: char) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        if c == quote {
            out.push(quote);
        }
        out.push(c);
    }
    out.push(quote);
    out
}

/// A table name with its schema, as Postgres resolves them (unquoted parts folded to lower case).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    /// The schema (`public` when the mapping names none).
    pub schema: String,
    /// The table.
    pub name: String,
}

impl QualifiedName {
    /// A name from its already-resolved parts.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        QualifiedName {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// Parses `schema.table`, `table`, `kb."Doc Chunks"` as Postgres would.
    pub fn parse(input: &str) -> Result<Self, MappingError> {
        let parts = split_identifiers(input)?;
        match parts.as_slice() {
            [name] => Ok(QualifiedName::new("public", name.clone())),
            [schema, name] => Ok(QualifiedName::new(schema.clone(), name.clone())),
            _ => Err(MappingError::InvalidName {
                input: input.to_string(),
                problem: NameProblem::TooManyParts,
            }),
        }
    }

    /// The name quoted for SQL: `"schema"."table"`.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// The name as a user would write it in a mapping: parts quoted only where they need it.
    pub fn display_for_mapping(&self) -> String {
        format!(
            "{}.{}",
            quote_if_needed(&self.schema),
            quote_if_needed(&self.name)
        )
    }
}

impl serde::Serialize for QualifiedName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_for_mapping())
    }
}

/// Quotes an identifier only if Postgres would otherwise fold or reject it.
pub fn quote_if_needed(ident: &str) -> String {
    let plain = !ident.is_empty()
        && ident
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && ident
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        ident.to_string()
    } else {
        quote_ident(ident)
    }
}

fn split_identifiers(input: &str) -> Result<Vec<String>, MappingError> {
    let mut parts = Vec::new();
    let mut chars = input.trim().chars().peekable();
    loop {
        let mut part = String::new();
        match chars.peek() {
            Some('"') => {
                chars.next();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            part.push('"');
                        }
                        Some('"') => break,
                        Some(c) => part.push(c),
                        None => {
                            return Err(MappingError::InvalidName {
                                input: input.to_string(),
                                problem: NameProblem::UnterminatedQuote,
                            });
                        }
                    }
                }
                if part.is_empty() {
                    return Err(MappingError::InvalidName {
                        input: input.to_string(),
                        problem: NameProblem::EmptyPart,
                    });
                }
            }
            _ => {
                while let Some(&c) = chars.peek() {
                    if c == '.' {
                        break;
                    }
                    if c == '"' || c.is_whitespace() {
                        return Err(MappingError::InvalidName {
                            input: input.to_string(),
                            problem: NameProblem::UnexpectedCharacter(c),
                        });
                    }
                    part.push(c.to_ascii_lowercase());
                    chars.next();
                }
                if part.is_empty() {
                    return Err(MappingError::InvalidName {
                        input: input.to_string(),
                        problem: NameProblem::EmptyPart,
                    });
                }
            }
        }
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => continue,
            Some(c) => {
                return Err(MappingError::InvalidName {
                    input: input.to_string(),
                    problem: NameProblem::UnexpectedCharacter(c),
                });
            }
        }
    }
}

/// Makes a valid collection or field name from any string: characters other than ASCII letters,
/// digits and `_` become `_`, a leading digit gets a `_` prefix, and the result is cut to
/// [`MAX_NAME_LEN`]. Valid names come back unchanged.
pub fn sanitize_name(input: &str) -> String {
    let mut out: String = input
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out.truncate(MAX_NAME_LEN);
    out
}

/// Whether `name` is a valid collection or field name.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_qualified_names() {
        let n = QualifiedName::parse("kb.\"Doc Chunks\"").unwrap();
        assert_eq!(n, QualifiedName::new("kb", "Doc Chunks"));
        assert_eq!(n.quoted(), "\"kb\".\"Doc Chunks\"");
        assert_eq!(
            QualifiedName::parse("Items").unwrap(),
            QualifiedName::new("public", "items")
        );
        assert_eq!(
            QualifiedName::parse("\"My\"\"Schema\".t").unwrap(),
            QualifiedName::new("My\"Schema", "t")
        );
        assert!(QualifiedName::parse("a.b.c").is_err());
        assert!(QualifiedName::parse("\"open").is_err());
        assert!(QualifiedName::parse("a..b").is_err());
        assert!(QualifiedName::parse("").is_err());
    }

    #[test]
    fn sanitizes_names() {
        assert_eq!(sanitize_name("Doc Chunks"), "Doc_Chunks");
        assert_eq!(sanitize_name("9lives"), "_9lives");
        assert_eq!(sanitize_name(""), "_");
        assert_eq!(sanitize_name("items"), "items");
    }

    proptest! {
        #[test]
        fn quoted_names_parse_back(schema in "\\PC{1,20}", name in "\\PC{1,20}") {
            let q = QualifiedName::new(schema.clone(), name.clone());
            let text = format!("{}.{}", quote_ident(&schema), quote_ident(&name));
            prop_assert_eq!(QualifiedName::parse(&text).unwrap(), q.clone());
            // The display form parses back too.
            prop_assert_eq!(QualifiedName::parse(&q.display_for_mapping()).unwrap(), q);
        }

        #[test]
        fn quote_ident_balances_quotes(s in "\\PC*") {
            let q = quote_ident(&s);
            prop_assert!(q.starts_with('"') && q.ends_with('"'));
            // Inside the outer quotes, quotes only come in pairs.
            let inner = &q[1..q.len() - 1];
            prop_assert_eq!(inner.replace("\"\"", "").contains('"'), false);
        }

        #[test]
        fn sanitized_names_are_valid_and_stable(s in "\\PC{0,300}") {
            let once = sanitize_name(&s);
            prop_assert!(is_valid_name(&once), "{once:?}");
            prop_assert_eq!(sanitize_name(&once), once.clone());
            if is_valid_name(&s) {
                prop_assert_eq!(once, s);
            }
        }
    }
}
