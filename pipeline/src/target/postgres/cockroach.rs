//! The CockroachDB dialect: a source table's definition turned into CockroachDB's, with what
//! CockroachDB lacks said as a required fix or done as a documented conversion, in the manner
//! of its Schema Conversion Tool, and the `IMPORT INTO … CSV DATA (…)` statement that loads a
//! table from CSV files on cloud storage (the migration guide's path for large loads).
//!
//! The rules follow CockroachDB's documentation (v25.2 and later; no CockroachDB server installs
//! from the package registries, so this is tested against golden files, not a live cluster):
//! - pgvector's `vector(n)` is CockroachDB's built-in `VECTOR(n)` (no extension); HNSW and
//!   IVFFlat indexes become `CREATE VECTOR INDEX` with the same operator class (L2, cosine,
//!   inner product; its own C-SPANN tuning replaces `m`, `ef_construction` and `lists`).
//! - `halfvec`, `sparsevec` and `bit` vectors, multi-dimensional arrays, exclusion constraints
//!   and index methods other than B-tree, GIN (an inverted index) and the vector indexes have
//!   no CockroachDB form: required fixes.
//! - Domains become their base type with the domain's checks on the column; a partitioned
//!   table becomes one table (CockroachDB splits ranges itself); the primary key is declared
//!   in `CREATE TABLE` (adding one later rewrites the table); a sequence feeding a primary
//!   key is kept and named in a suggestion, as the guide makes it; an identity column is
//!   created `BY DEFAULT` so the copied values load.

use etl_connectors::postgres::{ColumnFill, ConstraintKind, TableDefinition, TypeDefinition};
use etl_mappings::{Finding, QualifiedName, quote_ident, quote_literal};

use super::ddl::Step;

/// A table converted for CockroachDB.
#[derive(Debug, Default)]
pub struct Converted {
    /// Types, sequences and the table (with its primary key), in order.
    pub pre_data: Vec<String>,
    /// Unique and check constraints, indexes, sequence values, comments, statistics.
    pub post_data: Vec<Step>,
    /// Foreign keys, after every table.
    pub foreign_keys: Vec<Step>,
    /// What cannot move as the mapping says.
    pub required_fixes: Vec<Finding>,
    /// What is converted, and how.
    pub suggestions: Vec<Finding>,
    /// Foreign keys to tables outside the run, left out.
    pub left_out: Vec<String>,
}

fn finding(column: Option<&str>, message: String, fix: &str) -> Finding {
    Finding {
        column: column.map(str::to_string),
        message,
        fix: Some(fix.to_string()),
    }
}

/// A type's bare name: no schema, typmod or array brackets (`public.vector(3)` → `vector`).
fn base_name(type_sql: &str) -> &str {
    let t = type_sql.trim();
    let t = t.split(['(', '[']).next().unwrap_or(t).trim();
    let t = t.rsplit('.').next().unwrap_or(t);
    t.trim_matches('"')
}

/// Array dimensions written in a type (`text[]` → 1).
fn array_dims(type_sql: &str) -> usize {
    type_sql.matches("[]").count()
}

/// Built-in Postgres types CockroachDB takes under the same name.
const SAME: &[&str] = &[
    "smallint",
    "integer",
    "bigint",
    "int2",
    "int4",
    "int8",
    "real",
    "double precision",
    "float4",
    "float8",
    "numeric",
    "decimal",
    "boolean",
    "bool",
    "text",
    "character varying",
    "varchar",
    "character",
    "char",
    "bpchar",
    "name",
    "bytea",
    "uuid",
    "date",
    "time without time zone",
    "time with time zone",
    "timestamp without time zone",
    "timestamp with time zone",
    "timestamp",
    "timestamptz",
    "interval",
    "jsonb",
    "inet",
    "oid",
    "tsvector",
    "tsquery",
];

/// Converts `def` for CockroachDB, as table `target`, without the `excluded` columns; foreign
/// keys reference the tables `rename` maps the source's to (`None`: not in the run, left out).
pub fn convert(
    def: &TableDefinition,
    target: &QualifiedName,
    excluded: &[String],
    rename: &dyn Fn(&QualifiedName) -> Option<QualifiedName>,
) -> Converted {
    let mut c = Converted::default();
    let t = target.quoted();
    let enum_names: Vec<&str> = def
        .types
        .iter()
        .filter_map(|ty| match ty {
            TypeDefinition::Enum { name, .. } => Some(name.name.as_str()),
            TypeDefinition::Domain { .. } => None,
        })
        .collect();
    for ty in &def.types {
        if let TypeDefinition::Enum { .. } = ty {
            c.pre_data.push(ty.create_sql());
        }
    }
    let key_columns = primary_key_columns(def);
    for s in def.sequences.iter().filter(|s| !s.identity) {
        c.pre_data.push(format!(
            "CREATE SEQUENCE IF NOT EXISTS {}",
            s.sequence.quoted()
        ));
    }

    // Columns.
    let mut cols = Vec::new();
    let mut checks: Vec<(String, String)> = Vec::new();
    for col in def.columns.iter().filter(|c| !excluded.contains(&c.name)) {
        let name = col.name.as_str();
        let base = base_name(&col.type_sql);
        let mut type_sql = col.type_sql.clone();
        let mut not_null = col.not_null;
        match base {
            "vector" => {
                type_sql = col
                    .type_sql
                    .trim()
                    .rsplit('.')
                    .next()
                    .unwrap_or(&col.type_sql)
                    .replacen("vector", "VECTOR", 1);
            }
            "halfvec" | "sparsevec" => c.required_fixes.push(finding(
                Some(name),
                format!("column `{name}` is a pgvector {base}, which CockroachDB has no type for (its VECTOR holds 32-bit floats)"),
                "`exclude:` the column, or move it into a vector(n) column on the source first",
            )),
            "bit" | "bit varying" | "varbit" => c.required_fixes.push(finding(
                Some(name),
                format!("column `{name}` is a bit vector ({}), and CockroachDB has no binary vectors (no Hamming or Jaccard distance)", col.type_sql),
                "`exclude:` the column, or keep such vectors in a store that searches them",
            )),
            _ => {}
        }
        if array_dims(&col.type_sql) > 1 {
            c.required_fixes.push(finding(
                Some(name),
                format!("column `{name}` is a multi-dimensional array ({}), which CockroachDB does not have", col.type_sql),
                "`exclude:` the column, or flatten it into a one-dimensional array or JSONB on the source",
            ));
        }
        // A domain: its base type, its checks on the column.
        if let Some(TypeDefinition::Domain {
            name: dname,
            base: dbase,
            not_null: dnn,
            checks: dchecks,
        }) = def
            .types
            .iter()
            .find(|ty| matches!(ty, TypeDefinition::Domain { name, .. } if name.name == base))
        {
            type_sql = format!("{dbase}{}", "[]".repeat(array_dims(&col.type_sql)));
            not_null |= *dnn;
            for (i, check) in dchecks.iter().enumerate() {
                let body = check
                    .find("CHECK")
                    .map_or(check.as_str(), |at| &check[at..]);
                checks.push((
                    format!(
                        "{}_{}_check{}",
                        target.name,
                        name,
                        if i > 0 { format!("{i}") } else { String::new() }
                    ),
                    replace_value(body, &quote_ident(name)),
                ));
            }
            c.suggestions.push(finding(
                Some(name),
                format!("column `{name}`: CockroachDB has no domains; {dname} becomes its base type {dbase} with the domain's checks on the column"),
                "nothing to do",
            ));
        } else if base == "json" {
            type_sql = "JSONB".into();
            c.suggestions.push(finding(
                Some(name),
                format!("column `{name}`: json becomes JSONB (CockroachDB's JSON is JSONB: key order and duplicate keys are not kept)"),
                "nothing to do",
            ));
        } else if !SAME.contains(&base)
            && !enum_names.contains(&base)
            && base != "vector"
            && !matches!(
                base,
                "halfvec" | "sparsevec" | "bit" | "bit varying" | "varbit"
            )
        {
            c.required_fixes.push(finding(
                Some(name),
                format!(
                    "column `{name}` has type {}, which CockroachDB may not have",
                    col.type_sql
                ),
                "`exclude:` the column, or change its type on the source to one CockroachDB has",
            ));
        }
        let mut s = format!("{} {type_sql}", quote_ident(name));
        match &col.fill {
            ColumnFill::None => {}
            ColumnFill::Default(e) => {
                s.push_str(" DEFAULT ");
                s.push_str(e);
                if e.contains("nextval(") && key_columns.contains(&col.name) {
                    c.suggestions.push(finding(
                        Some(name),
                        format!("primary key column `{name}` takes its values from a sequence; CockroachDB keeps it, but sequential keys write to one range at a time"),
                        "consider `DEFAULT unique_rowid()` or a UUID key (`gen_random_uuid()`) on CockroachDB",
                    ));
                }
            }
            ColumnFill::Identity { always } => {
                // The copied values go in as they are: BY DEFAULT takes them on any loader.
                s.push_str(" GENERATED BY DEFAULT AS IDENTITY");
                if *always {
                    c.suggestions.push(finding(
                        Some(name),
                        format!("column `{name}` is GENERATED ALWAYS AS IDENTITY; it is created BY DEFAULT so the source's values load"),
                        "after the load, `ALTER TABLE … ALTER COLUMN … SET GENERATED ALWAYS` if the application relies on it",
                    ));
                }
                if key_columns.contains(&col.name) {
                    c.suggestions.push(finding(
                        Some(name),
                        format!("primary key column `{name}` is an identity column (a sequence); CockroachDB keeps it, but sequential keys write to one range at a time"),
                        "consider `DEFAULT unique_rowid()` or a UUID key (`gen_random_uuid()`) on CockroachDB",
                    ));
                }
            }
            ColumnFill::Generated(e) => s.push_str(&format!(" GENERATED ALWAYS AS ({e}) STORED")),
        }
        if not_null {
            s.push_str(" NOT NULL");
        }
        cols.push(s);
    }
    // The primary key belongs in CREATE TABLE on CockroachDB.
    for k in def
        .constraints
        .iter()
        .filter(|k| k.kind == ConstraintKind::PrimaryKey)
    {
        cols.push(format!(
            "CONSTRAINT {} {}",
            quote_ident(&k.name),
            k.definition
        ));
    }
    if key_columns.is_empty() {
        c.suggestions.push(finding(
            None,
            format!("{target} has no primary key: CockroachDB adds a hidden `rowid` key"),
            "add a primary key on the source if rows have a natural one",
        ));
    }
    c.pre_data.push(format!(
        "CREATE TABLE {t} (\n    {}\n)",
        cols.join(",\n    ")
    ));
    if def.partition_by.is_some() {
        let parts: Vec<String> = def.partitions.iter().map(|p| p.name.to_string()).collect();
        c.suggestions.push(finding(
            None,
            format!(
                "{target} is partitioned ({}); on CockroachDB it is one table holding the rows of {} (CockroachDB splits and places ranges itself)",
                def.partition_by.as_deref().unwrap_or_default(),
                parts.join(", ")
            ),
            "use CockroachDB's own PARTITION BY or REGIONAL BY ROW after the load if rows must be placed by value",
        ));
    }

    // Post-data: unique and check constraints, domain checks, indexes.
    let mut constraints: Vec<_> = def
        .constraints
        .iter()
        .filter(|k| {
            !matches!(
                k.kind,
                ConstraintKind::PrimaryKey | ConstraintKind::ForeignKey
            )
        })
        .collect();
    constraints.sort_by_key(|k| k.kind);
    for k in constraints {
        if k.kind == ConstraintKind::Exclusion {
            c.required_fixes.push(finding(
                None,
                format!(
                    "exclusion constraint {} ({}) has no CockroachDB form",
                    k.name, k.definition
                ),
                "drop it from the source, or enforce it in the application",
            ));
            continue;
        }
        c.post_data.push(Step {
            name: format!("constraint:{}", k.name),
            sql: format!(
                "ALTER TABLE {t} ADD CONSTRAINT {} {}",
                quote_ident(&k.name),
                k.definition
            ),
            builds_index: k.kind == ConstraintKind::Unique,
        });
    }
    for (name, check) in checks {
        c.post_data.push(Step {
            name: format!("constraint:{name}"),
            sql: format!(
                "ALTER TABLE {t} ADD CONSTRAINT {} {check}",
                quote_ident(&name)
            ),
            builds_index: false,
        });
    }
    let mut vector_index = false;
    for ix in &def.indexes {
        let columns = ix
            .using
            .find('(')
            .map_or(ix.using.as_str(), |at| &ix.using[at..]);
        match ix.method.as_str() {
            "btree" => c.post_data.push(Step {
                name: format!("index:{}", ix.name),
                sql: format!(
                    "CREATE {}INDEX {} ON {t} {columns}",
                    if ix.unique { "UNIQUE " } else { "" },
                    quote_ident(&ix.name)
                ),
                builds_index: true,
            }),
            "gin" => {
                c.post_data.push(Step {
                    name: format!("index:{}", ix.name),
                    sql: format!("CREATE INVERTED INDEX {} ON {t} {}", quote_ident(&ix.name), strip_opclass_ops(columns)),
                    builds_index: true,
                });
                c.suggestions.push(finding(
                    None,
                    format!("GIN index {} becomes an inverted index", ix.name),
                    "nothing to do",
                ));
            }
            "hnsw" | "ivfflat" => match vector_index_sql(&ix.name, &t, columns) {
                Ok(sql) => {
                    vector_index = true;
                    c.post_data.push(Step {
                        name: format!("index:{}", ix.name),
                        sql,
                        builds_index: true,
                    });
                    let params = ix.using.find(" WITH (").map(|at| ix.using[at + 1..].to_string());
                    c.suggestions.push(finding(
                        None,
                        format!(
                            "{} index {} becomes a CockroachDB vector index (C-SPANN){}",
                            ix.method.to_uppercase(),
                            ix.name,
                            params.map(|p| format!("; its {p} has no CockroachDB equivalent and is dropped")).unwrap_or_default()
                        ),
                        "tune CockroachDB's vector index (min_partition_size, max_partition_size, build_beam_size) if recall or speed need it",
                    ));
                }
                Err(opclass) => c.required_fixes.push(finding(
                    None,
                    format!("{} index {} uses operator class {opclass}, which CockroachDB's vector index does not have", ix.method.to_uppercase(), ix.name),
                    "index with vector_l2_ops, vector_cosine_ops or vector_ip_ops, or leave the index out",
                )),
            },
            other => c.required_fixes.push(finding(
                None,
                format!("index {} uses the {other} method, which CockroachDB does not have", ix.name),
                "replace it with a B-tree or inverted index on the source, or leave it out",
            )),
        }
    }
    if vector_index {
        c.suggestions.push(finding(
            None,
            "vector indexes need `SET CLUSTER SETTING feature.vector_index.enabled = true` on the cluster, and building one on loaded rows `SET sql_safe_updates = false`".into(),
            "set both before the post-data steps",
        ));
    }
    c.post_data
        .extend(super::ddl::closing_steps(def, target, excluded));
    let (fks, outside) = super::ddl::foreign_keys(def, target, rename);
    c.foreign_keys = fks;
    c.left_out = outside;
    c
}

/// The primary key's columns, from its definition (`PRIMARY KEY (a, b)`).
fn primary_key_columns(def: &TableDefinition) -> Vec<String> {
    def.constraints
        .iter()
        .find(|k| k.kind == ConstraintKind::PrimaryKey)
        .and_then(|k| {
            let open = k.definition.find('(')?;
            let close = k.definition.rfind(')')?;
            Some(
                k.definition[open + 1..close]
                    .split(',')
                    .map(|c| c.trim().trim_matches('"').to_string())
                    .collect(),
            )
        })
        .unwrap_or_default()
}

/// A domain check's `VALUE` as the column (`CHECK ((VALUE >= 0))` → `CHECK (("price" >= 0))`).
fn replace_value(check: &str, column: &str) -> String {
    let mut out = String::with_capacity(check.len());
    let b = check.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        if check[i..].starts_with("VALUE")
            && (i == 0 || !word(b[i - 1]))
            && b.get(i + 5).is_none_or(|c| !word(*c))
        {
            out.push_str(column);
            i += 5;
        } else {
            let ch = check[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// `(meta jsonb_path_ops)` → `(meta)`: CockroachDB's inverted indexes take no operator class.
fn strip_opclass_ops(columns: &str) -> String {
    let end = columns.rfind(')').map_or(columns.len(), |e| e + 1);
    let inner = columns[..end].trim_start_matches('(').trim_end_matches(')');
    let cols: Vec<&str> = inner
        .split(',')
        .map(|c| c.split_whitespace().next().unwrap_or(c))
        .collect();
    format!("({}){}", cols.join(", "), &columns[end..])
}

/// `CREATE VECTOR INDEX` for an HNSW or IVFFlat index's `(column opclass) [WITH (...)]`;
/// `Err(opclass)` when CockroachDB has no such operator class.
fn vector_index_sql(name: &str, table: &str, columns: &str) -> Result<String, String> {
    let end = columns.find(')').unwrap_or(columns.len());
    let inner = columns[..end].trim_start_matches('(');
    let mut parts = inner.split_whitespace();
    let column = parts.next().unwrap_or_default();
    let opclass = parts
        .next()
        .map(|o| o.rsplit('.').next().unwrap_or(o).to_string())
        .unwrap_or_else(|| "vector_l2_ops".into());
    if !matches!(
        opclass.as_str(),
        "vector_l2_ops" | "vector_cosine_ops" | "vector_ip_ops"
    ) {
        return Err(opclass);
    }
    Ok(format!(
        "CREATE VECTOR INDEX {} ON {table} ({column} {opclass})",
        quote_ident(name)
    ))
}

/// `IMPORT INTO` for CSV files written by `etl stage --format csv` (a header row, `\N` for
/// NULL, vectors as `[x,y,…]`): the statement the migration guide runs for large loads.
pub fn import_into(target: &QualifiedName, columns: &[String], files: &[String]) -> String {
    format!(
        "IMPORT INTO {} ({}) CSV DATA ({}) WITH skip = '1', nullif = '\\N'",
        target.quoted(),
        columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        files
            .iter()
            .map(|f| quote_literal(f))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_rewrites() {
        assert_eq!(base_name("public.vector(3)"), "vector");
        assert_eq!(base_name("shop.mood[]"), "mood");
        assert_eq!(array_dims("integer[][]"), 2);
        assert_eq!(
            replace_value(
                "CHECK ((VALUE >= (0)::numeric AND VALUES_X > 1))",
                "\"price\""
            ),
            "CHECK ((\"price\" >= (0)::numeric AND VALUES_X > 1))"
        );
        assert_eq!(strip_opclass_ops("(meta jsonb_path_ops)"), "(meta)");
        assert_eq!(
            vector_index_sql(
                "i",
                "\"s\".\"t\"",
                "(emb public.vector_cosine_ops) WITH (m='8')"
            ),
            Ok("CREATE VECTOR INDEX \"i\" ON \"s\".\"t\" (emb vector_cosine_ops)".to_string())
        );
        assert_eq!(
            vector_index_sql("i", "t", "(h halfvec_l2_ops)"),
            Err("halfvec_l2_ops".to_string())
        );
    }
}
