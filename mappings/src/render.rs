//! Writes a complete, commented mapping file from a plan, for `etl init`: every column spelled
//! out with the type the rules chose, so the user edits decisions instead of discovering them.
//! What it writes parses back into the same plan.

use std::fmt::Write as _;

use crate::plan::{FieldPlan, IndexOrigin, Plan, PrimaryKey, TablePlan};
use crate::types::DataType;

/// What `etl init` knows besides the plan.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The `source:` entry, e.g. `postgres: postgres://app@db:5432/shop` (no password).
    pub source_key: String,
    /// Its value.
    pub source_value: String,
    /// The engine directory, or a Postgres target's URL (no password) when the plan keeps
    /// Postgres types.
    pub target: String,
    /// Extra words for a column's comment, by `table → column` (e.g. how `etl init` read a
    /// dimension the catalog does not declare).
    pub column_notes: std::collections::BTreeMap<(String, String), String>,
}

/// Renders `plan` as a mapping file.
pub fn render_mapping(plan: &Plan, opts: &InitOptions) -> String {
    let mut out = String::new();
    let into_postgres = plan.tables.iter().any(|t| t.keeps_postgres_types);
    let _ = writeln!(
        out,
        "{}",
        if into_postgres {
            "# Written by `etl init`. Every table keeps its Postgres columns, types and constraints;"
        } else {
            "# Written by `etl init`. Every column is listed with the type the default rules chose;"
        }
    );
    let _ = writeln!(
        out,
        "# edit what you want changed, then check it with `etl plan` before `etl run`."
    );
    let _ = writeln!(
        out,
        "# Passwords are never written here: they come from PGPASSWORD or ~/.pgpass,"
    );
    let _ = writeln!(
        out,
        "# or from the environment through ${{VAR}} in the URL."
    );
    let _ = writeln!(out, "version: 1");
    let _ = writeln!(out, "source:");
    let _ = writeln!(
        out,
        "  {}: {}",
        opts.source_key,
        yaml_str(&opts.source_value)
    );
    let _ = writeln!(out, "target:");
    if into_postgres {
        let _ = writeln!(out, "  postgres: {}", yaml_str(&opts.target));
        let _ = writeln!(
            out,
            "  if_exists: fail     # fail | truncate | append | replace (tables may override it)"
        );
    } else {
        let _ = writeln!(out, "  engine: {}", yaml_str(&opts.target));
    }
    let _ = writeln!(out, "tables:");
    if plan.tables.is_empty() {
        let _ = writeln!(out, "  []");
    }
    for table in &plan.tables {
        render_table(&mut out, table, opts);
    }
    let _ = writeln!(out, "options:");
    let _ = writeln!(
        out,
        "  batch_size: {}      # rows per batch",
        plan.batch_size
    );
    let _ = writeln!(
        out,
        "  parallelism: {}       # concurrent readers",
        plan.parallelism
    );
    out
}

fn render_table(out: &mut String, t: &TablePlan, opts: &InitOptions) {
    let rows = t.estimated_rows.map_or_else(
        || "row count unknown (never analyzed)".to_string(),
        |r| format!("about {r} rows"),
    );
    let key = match &t.primary_key {
        PrimaryKey::Column { column, .. } => format!("primary key {column}"),
        PrimaryKey::Auto { .. } if t.source_key.is_empty() => "no primary key: auto ID".into(),
        PrimaryKey::Auto { .. } => format!("composite key ({}): auto ID", t.source_key.join(", ")),
    };
    let _ = writeln!(
        out,
        "  # {}: {rows}; {key}{}",
        t.source,
        if t.partitioned {
            "; partitioned (read through its partitions)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "  - source: {}",
        yaml_str(&t.source.display_for_mapping())
    );
    if t.keeps_postgres_types {
        // Into Postgres: the table keeps its columns, types and constraints.
        let _ = writeln!(out, "    target: {}", yaml_str(&t.collection));
        let _ = writeln!(out, "    # exclude: [column, ...]    # columns not to move");
        if let Some(f) = &t.filter {
            let _ = writeln!(out, "    where: {}", yaml_str(f));
        }
        return;
    }
    let _ = writeln!(out, "    collection: {}", yaml_str(&t.collection));
    let auto = matches!(t.primary_key, PrimaryKey::Auto { .. });
    let _ = writeln!(out, "    auto_id: {auto}");
    let _ = writeln!(out, "    dynamic_field: {}", t.dynamic_field);
    let _ = writeln!(out, "    shards: {}", t.shards);
    let _ = writeln!(
        out,
        "    max_rejects: {}      # rows that may fail to map before the run fails",
        t.max_rejects
    );
    if let Some(f) = &t.filter {
        let _ = writeln!(out, "    where: {}", yaml_str(f));
    }
    let _ = writeln!(out, "    fields:");
    for f in t.fields.iter().filter(|f| f.source.is_some()) {
        render_field(out, t, f, opts);
    }
}

fn render_field(out: &mut String, t: &TablePlan, f: &FieldPlan, opts: &InitOptions) {
    let Some(source) = &f.source else { return };
    let pg = f.pg_type.as_ref().map_or("?", |p| p.display.as_str());
    let fix = t
        .required_fixes
        .iter()
        .find(|x| x.column.as_deref() == Some(source));
    let mut comment = format!("{pg} → {}", f.type_display());
    if f.primary_key {
        comment.push_str(", primary key");
    }
    for n in &f.notes {
        let _ = write!(comment, "; {}", n.text);
    }
    if let Some(extra) = opts
        .column_notes
        .get(&(t.source.to_string(), source.clone()))
    {
        let _ = write!(comment, "; {extra}");
    }
    let _ = writeln!(
        out,
        "      - source: {}   # {}",
        yaml_str(source),
        comment.replace('\n', " ")
    );
    let Some(ty) = f.data_type else {
        if let Some(fix) = fix {
            let _ = writeln!(out, "        # REQUIRED FIX: {}", fix.message);
            if let Some(how) = &fix.fix {
                let _ = writeln!(out, "        # {how}");
            }
        }
        return;
    };
    if f.name != *source {
        let _ = writeln!(out, "        name: {}", yaml_str(&f.name));
    }
    let _ = writeln!(out, "        type: {ty}");
    match ty {
        t if t.is_dense_vector() => {
            if let Some(d) = f.dim {
                let _ = writeln!(out, "        dim: {d}");
            }
        }
        DataType::Varchar => {
            if let Some(l) = f.max_length {
                let _ = writeln!(out, "        max_length: {l}");
            }
        }
        DataType::Array => {
            if let Some(e) = f.element_type {
                let _ = writeln!(out, "        element_type: {e}");
            }
            if let Some(c) = f.max_capacity {
                let _ = writeln!(out, "        max_capacity: {c}");
            }
            if let Some(l) = f.max_length {
                let _ = writeln!(out, "        max_length: {l}");
            }
        }
        _ => {}
    }
    if !f.primary_key {
        let _ = writeln!(out, "        nullable: {}", f.nullable);
    }
    if let Some(ix) = &f.index {
        let mut line = format!("{{ type: {}", ix.index_type);
        if let Some(m) = ix.metric {
            let _ = write!(line, ", metric: {m}");
        }
        if let Some(h) = ix.hnsw {
            let _ = write!(
                line,
                ", params: {{ M: {}, ef_construction: {} }}",
                h.m, h.ef_construction
            );
        }
        if let Some(v) = ix.ivf {
            let _ = write!(
                line,
                ", params: {{ nlist: {}, nprobe: {} }}",
                v.nlist, v.nprobe
            );
        }
        line.push_str(" }");
        let origin = match &ix.origin {
            IndexOrigin::Source { index } => format!("   # from the source's index {index}"),
            IndexOrigin::Default => "   # the default for this type".into(),
            IndexOrigin::Mapping => String::new(),
        };
        let _ = writeln!(out, "        index: {line}{origin}");
    }
}

/// A YAML scalar: plain where that is unambiguous, single-quoted otherwise.
fn yaml_str(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-@:${}".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '.' || c == '/' || c == '_')
        && !s.contains(": ")
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
        )
        && s.parse::<f64>().is_err();
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

#[cfg(test)]
mod tests {
    use super::yaml_str;

    #[test]
    fn quotes_only_where_needed() {
        assert_eq!(yaml_str("public.items"), "public.items");
        assert_eq!(yaml_str("kb.\"Doc Chunks\""), "'kb.\"Doc Chunks\"'");
        assert_eq!(yaml_str("it's"), "'it''s'");
        assert_eq!(yaml_str("true"), "'true'");
        assert_eq!(yaml_str("123"), "'123'");
        assert_eq!(yaml_str("postgres://u@h:5432/db"), "postgres://u@h:5432/db");
    }
}
