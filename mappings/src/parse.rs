//! From YAML text to a [`MappingFile`], with errors that point at `file:line:column`.
//!
//! serde reports shape errors with a position; unknown keys get a did-you-mean suggestion from
//! the keys allowed at that spot. Later checks (unknown tables, bad types) find their position
//! again through a [`Locator`] over the same text.

use crate::error::{Location, MappingError, closest};
use crate::model::{MAPPING_VERSION, MappingFile};

/// A parsed mapping file together with the text it came from, for locating later errors.
#[derive(Debug, Clone)]
pub struct ParsedMapping {
    /// The file's content as structs.
    pub file: MappingFile,
    /// Finds positions in the original text.
    pub locator: Locator,
}

/// Parses a mapping file's text; `file` is the name used in error messages. `${VAR}` in the
/// source and target URLs is replaced from `env`.
pub fn parse_mapping(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ParsedMapping, MappingError> {
    let locator = Locator::new(file, text);
    let mut mapping: MappingFile =
        serde_yaml_ng::from_str(text).map_err(|e| yaml_error(&e, file, text))?;
    if mapping.version != MAPPING_VERSION {
        return Err(MappingError::InvalidValue {
            at: locator.key("version", None),
            key: "version".into(),
            value: mapping.version.to_string(),
            reason: format!("this etl reads mapping version {MAPPING_VERSION}"),
            suggestion: None,
        });
    }
    let source_kinds = [
        &mapping.source.postgres,
        &mapping.source.dump,
        &mapping.source.csv,
        &mapping.source.parquet,
    ]
    .iter()
    .filter(|s| s.is_some())
    .count();
    if source_kinds != 1 {
        return Err(MappingError::SourceKind {
            at: locator.key("source", None),
        });
    }
    if mapping.target.engine.is_none()
        && mapping.target.stage.is_none()
        && mapping.target.milvus.is_none()
        && mapping.target.postgres.is_none()
    {
        return Err(MappingError::Conflict {
            at: locator.key("target", None),
            message: "`target` needs at least one of `engine`, `stage`, `milvus` or `postgres`"
                .into(),
        });
    }
    for value in [
        &mut mapping.source.postgres,
        &mut mapping.source.dump,
        &mut mapping.source.csv,
        &mut mapping.source.parquet,
        &mut mapping.target.engine,
        &mut mapping.target.stage,
        &mut mapping.target.milvus,
        &mut mapping.target.postgres,
    ]
    .into_iter()
    .flatten()
    {
        *value = expand_env(value, &locator, env)?;
    }
    Ok(ParsedMapping {
        file: mapping,
        locator,
    })
}

/// Replaces `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`.
pub fn expand_env(
    value: &str,
    locator: &Locator,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, MappingError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                out.push('$');
                rest = after;
                continue;
            };
            let expr = &body[..end];
            let (var, default) = match expr.split_once(":-") {
                Some((v, d)) => (v, Some(d)),
                None => (expr, None),
            };
            match (env(var), default) {
                (Some(v), _) if !v.is_empty() || default.is_none() => out.push_str(&v),
                (_, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(MappingError::MissingEnv {
                        at: locator.text(&format!("${{{expr}}}")),
                        var: var.to_string(),
                    });
                }
                (Some(v), None) => out.push_str(&v),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn yaml_error(err: &serde_yaml_ng::Error, file: &str, text: &str) -> MappingError {
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    let at = Location {
        file: file.to_string(),
        line,
        column,
    };
    let full = err.to_string();
    // serde_yaml appends " at line L column C"; the location is reported separately.
    let message = match full.rfind(" at line ") {
        Some(pos) => full[..pos].to_string(),
        None => full,
    };
    if let Some(unknown) = parse_unknown_field(&message) {
        let suggestion = closest(&unknown.0, unknown.1.iter().map(String::as_str));
        // serde points at the mapping that holds the key; find the key's own line.
        let at = Locator::new(file, text)
            .key_from(&unknown.0, line)
            .unwrap_or(at);
        return MappingError::UnknownKey {
            at,
            key: unknown.0,
            expected: unknown.1.iter().map(|k| format!("`{k}`")).collect(),
            suggestion,
        };
    }
    MappingError::Syntax { at, message }
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" into the key and the choices.
fn parse_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let start = message.find("unknown field `")? + "unknown field `".len();
    let end = start + message[start..].find('`')?;
    let key = message[start..end].to_string();
    let expected = message[end..]
        .split('`')
        .skip(2)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((key, expected))
}

/// Finds the position of keys and values in a mapping file's text.
#[derive(Debug, Clone)]
pub struct Locator {
    file: String,
    lines: Vec<String>,
}

impl Locator {
    /// A locator over `text`, reporting positions in `file`.
    pub fn new(file: &str, text: &str) -> Self {
        Locator {
            file: file.to_string(),
            lines: text.lines().map(str::to_string).collect(),
        }
    }

    /// The file name used in positions.
    pub fn file(&self) -> &str {
        &self.file
    }

    fn at(&self, line: usize, column: usize) -> Location {
        Location {
            file: self.file.clone(),
            line,
            column,
        }
    }

    /// The first line (1-based, at or after `from_line`) holding `key:`, optionally followed by
    /// `value`.
    fn find_key(&self, key: &str, value: Option<&str>, from_line: usize) -> Option<Location> {
        for (i, line) in self
            .lines
            .iter()
            .enumerate()
            .skip(from_line.saturating_sub(1))
        {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            let (body, offset) = match trimmed.strip_prefix("- ") {
                Some(b) => {
                    let t = b.trim_start();
                    (t, indent + (trimmed.len() - t.len()))
                }
                None => (trimmed, indent),
            };
            // Also find keys inside flow mappings: `{ type: HNSW, metirc: L2 }`.
            let positions: Vec<usize> = std::iter::once(0)
                .chain(body.match_indices(['{', ',']).map(|(p, _)| p + 1))
                .collect();
            for p in positions {
                let seg = body[p..].trim_start();
                let col = offset + p + (body[p..].len() - seg.len());
                let unquoted = seg.trim_start_matches(['"', '\'']);
                if let Some(rest) = unquoted.strip_prefix(key) {
                    let rest = rest.trim_start_matches(['"', '\'']);
                    if let Some(v) = rest.strip_prefix(':') {
                        let matches = value.is_none_or(|want| {
                            let v = v.trim().trim_matches(['"', '\'']);
                            v == want || v.starts_with(want) || v.contains(want)
                        });
                        if matches {
                            return Some(self.at(i + 1, col + 1));
                        }
                    }
                }
            }
        }
        None
    }

    /// Where `key:` (with `value`, when given) first appears; line 1 when it cannot be found.
    pub fn key(&self, key: &str, value: Option<&str>) -> Location {
        self.find_key(key, value, 1)
            .unwrap_or_else(|| self.at(1, 1))
    }

    /// Where `key:` first appears at or after `line`.
    pub fn key_from(&self, key: &str, line: usize) -> Option<Location> {
        self.find_key(key, None, line)
    }

    /// Where `key: value` appears after the table whose `source:` is `table`.
    pub fn in_table(&self, table: &str, key: &str, value: Option<&str>) -> Location {
        let start = self
            .find_key("source", Some(table), 1)
            .map(|l| l.line)
            .unwrap_or(1);
        self.find_key(key, value, start)
            .unwrap_or_else(|| self.at(start, 1))
    }

    /// Where the table whose `source:` is `table` starts.
    pub fn table(&self, table: &str) -> Location {
        self.key("source", Some(table))
    }

    /// Where `needle` first appears anywhere.
    pub fn text(&self, needle: &str) -> Location {
        for (i, line) in self.lines.iter().enumerate() {
            if let Some(col) = line.find(needle) {
                return self.at(i + 1, col + 1);
            }
        }
        self.at(1, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const GOOD: &str = "version: 1
source:
  postgres: postgres://u@h:5432/db
target:
  engine: ./data
tables:
  - source: public.items
    fields:
      - source: embedding
        index: { type: HNSW, metric: COSINE, params: { M: 16, ef_construction: 200 } }
";

    #[test]
    fn parses_the_documented_shape() {
        let p = parse_mapping(GOOD, "m.yaml", &no_env).unwrap();
        assert_eq!(p.file.tables[0].source, "public.items");
        let idx = p.file.tables[0].fields[0].index.as_ref().unwrap();
        assert_eq!(idx.metric.as_deref(), Some("COSINE"));
        assert_eq!(idx.params["M"], serde_json::json!(16));
    }

    #[test]
    fn unknown_key_names_position_and_suggestion() {
        let bad = GOOD.replace("metric: COSINE", "metirc: COSINE");
        let err = parse_mapping(&bad, "m.yaml", &no_env).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("m.yaml:10:"), "{msg}");
        assert!(
            msg.contains("unknown key `metirc`; did you mean `metric`?"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_top_level_key() {
        let bad = format!("{GOOD}optoins:\n  batch_size: 5\n");
        let err = parse_mapping(&bad, "m.yaml", &no_env).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("m.yaml:11:1"), "{msg}");
        assert!(msg.contains("did you mean `options`?"), "{msg}");
    }

    #[test]
    fn malformed_yaml_has_a_position() {
        let err = parse_mapping("version: 1\nsource: [\n", "m.yaml", &no_env).unwrap_err();
        assert!(matches!(err, MappingError::Syntax { .. }));
        assert!(err.to_string().starts_with("m.yaml:"), "{err}");
    }

    #[test]
    fn wrong_shape_is_a_syntax_error() {
        let bad = GOOD.replace("version: 1", "version: one");
        let err = parse_mapping(&bad, "m.yaml", &no_env).unwrap_err();
        assert!(err.to_string().contains("m.yaml:1:"), "{err}");
    }

    #[test]
    fn expands_environment_variables() {
        let text = GOOD.replace("postgres://u@h:5432/db", "postgres://${PGUSER}@h/${DB:-x}");
        let env = |k: &str| (k == "PGUSER").then(|| "alice".to_string());
        let p = parse_mapping(&text, "m.yaml", &env).unwrap();
        assert_eq!(
            p.file.source.postgres.as_deref(),
            Some("postgres://alice@h/x")
        );
        let err = parse_mapping(&text, "m.yaml", &no_env).unwrap_err();
        assert!(err.to_string().contains("`PGUSER` is not set"), "{err}");
        assert!(err.to_string().starts_with("m.yaml:3:"), "{err}");
    }

    #[test]
    fn needs_exactly_one_source() {
        let text = GOOD.replace("  postgres:", "  dump: x.sql\n  postgres:");
        assert!(matches!(
            parse_mapping(&text, "m.yaml", &no_env),
            Err(MappingError::SourceKind { .. })
        ));
    }
}
