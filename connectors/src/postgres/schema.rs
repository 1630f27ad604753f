//! A live source's table definitions as DDL pieces, for a Postgres-compatible target: what
//! pg_dump's pre-data and post-data sections would hold for the tables a mapping moves.
//!
//! The server renders every piece itself (`format_type`, `pg_get_expr`,
//! `pg_get_constraintdef`, `pg_get_indexdef`, `pg_get_partkeydef`), so types with typmods,
//! defaults, check expressions, operator classes and index options (pgvector's `m`,
//! `ef_construction`, `lists`) come out exactly as the source declares them. The target then
//! assembles statements for its own table names; this module only reads.

use etl_mappings::{QualifiedName, quote_ident, quote_literal};
use tokio_postgres::Client;

use crate::error::ConnectorError;

/// How a column gets values the rows do not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnFill {
    /// Nothing: NULL (or the rows' own values).
    None,
    /// `DEFAULT expr` (a serial column's `nextval(...)` included).
    Default(String),
    /// `GENERATED {ALWAYS | BY DEFAULT} AS IDENTITY`.
    Identity {
        /// `ALWAYS` rather than `BY DEFAULT`.
        always: bool,
    },
    /// `GENERATED ALWAYS AS (expr) STORED`: computed by the target, never copied.
    Generated(String),
}

/// One column as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDefinition {
    /// Name.
    pub name: String,
    /// The type as SQL, with its typmod (`vector(768)`, `numeric(12,2)`, `public.mood`).
    pub type_sql: String,
    /// `NOT NULL`.
    pub not_null: bool,
    /// Default, identity or generation.
    pub fill: ColumnFill,
    /// The column's comment.
    pub comment: Option<String>,
}

/// The kinds of table constraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConstraintKind {
    /// `PRIMARY KEY`.
    PrimaryKey,
    /// `UNIQUE`.
    Unique,
    /// `CHECK`.
    Check,
    /// `FOREIGN KEY`: added after every table is loaded.
    ForeignKey,
    /// `EXCLUDE`.
    Exclusion,
}

/// A table constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstraintDefinition {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: ConstraintKind,
    /// The definition after `ADD CONSTRAINT name` (`PRIMARY KEY (id)`, `CHECK (...)`, ...).
    pub definition: String,
    /// The table a foreign key references.
    pub references: Option<QualifiedName>,
}

/// An index not created by a constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDefinition {
    /// Name.
    pub name: String,
    /// `UNIQUE`.
    pub unique: bool,
    /// Everything from `USING` on: method, columns with operator classes, `WITH (...)`,
    /// `WHERE ...`.
    pub using: String,
    /// The access method (`btree`, `hnsw`, `ivfflat`, `gin`, ...).
    pub method: String,
}

/// A sequence that feeds a column (serial or identity) and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceState {
    /// The column it feeds.
    pub column: String,
    /// The sequence (schema-qualified).
    pub sequence: QualifiedName,
    /// Its last value.
    pub last_value: i64,
    /// Whether `last_value` was handed out (`setval`'s third argument).
    pub is_called: bool,
    /// An identity column's sequence (created with the column), rather than a serial's.
    pub identity: bool,
}

/// A partition of a partitioned table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDefinition {
    /// The partition.
    pub name: QualifiedName,
    /// The table it is a partition of (the partitioned table itself, or a sub-partitioned one).
    pub parent: Option<QualifiedName>,
    /// `FOR VALUES ...` or `DEFAULT`.
    pub bound: String,
}

/// A user-defined type a table's columns use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeDefinition {
    /// `CREATE TYPE name AS ENUM (labels)`.
    Enum {
        /// Name.
        name: QualifiedName,
        /// Labels in order.
        labels: Vec<String>,
    },
    /// `CREATE DOMAIN name AS base [constraints]`.
    Domain {
        /// Name.
        name: QualifiedName,
        /// The base type as SQL.
        base: String,
        /// `NOT NULL`.
        not_null: bool,
        /// Its `CHECK (...)` constraints.
        checks: Vec<String>,
    },
}

impl TypeDefinition {
    /// The type's name.
    pub fn name(&self) -> &QualifiedName {
        match self {
            TypeDefinition::Enum { name, .. } | TypeDefinition::Domain { name, .. } => name,
        }
    }

    /// The statement that creates it.
    pub fn create_sql(&self) -> String {
        match self {
            TypeDefinition::Enum { name, labels } => format!(
                "CREATE TYPE {} AS ENUM ({})",
                name.quoted(),
                labels
                    .iter()
                    .map(|l| quote_literal(l))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            TypeDefinition::Domain {
                name,
                base,
                not_null,
                checks,
            } => {
                let mut s = format!("CREATE DOMAIN {} AS {base}", name.quoted());
                if *not_null {
                    s.push_str(" NOT NULL");
                }
                for c in checks {
                    s.push(' ');
                    s.push_str(c);
                }
                s
            }
        }
    }
}

/// What a table is made of, as the source declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDefinition {
    /// The source table.
    pub name: QualifiedName,
    /// Columns in order (dropped ones left out).
    pub columns: Vec<ColumnDefinition>,
    /// `PARTITION BY ...` of a partitioned table.
    pub partition_by: Option<String>,
    /// Its partitions (leaves and sub-partitioned ones, parents first).
    pub partitions: Vec<PartitionDefinition>,
    /// Constraints, in name order.
    pub constraints: Vec<ConstraintDefinition>,
    /// Indexes that no constraint created.
    pub indexes: Vec<IndexDefinition>,
    /// Sequences behind serial and identity columns.
    pub sequences: Vec<SequenceState>,
    /// User-defined types the columns use (enums, domains), in creation order.
    pub types: Vec<TypeDefinition>,
    /// The table's comment.
    pub comment: Option<String>,
    /// What the target would not get (rules, policies, triggers, ...), said in `etl plan`.
    pub left_out: Vec<String>,
}

fn query_err(context: String) -> impl FnOnce(tokio_postgres::Error) -> ConnectorError {
    move |e| ConnectorError::from_pg(context, e)
}

/// Reads the definition of `table`.
pub async fn table_definition(
    client: &Client,
    table: &QualifiedName,
) -> Result<TableDefinition, ConnectorError> {
    let name = table.to_string();
    let row = client
        .query_opt(
            "SELECT c.oid, c.relkind::text, pg_get_partkeydef(c.oid), obj_description(c.oid, 'pg_class') \
             FROM pg_class c WHERE c.oid = to_regclass($1)",
            &[&table.quoted()],
        )
        .await
        .map_err(query_err(format!("reading the definition of {name}")))?
        .ok_or_else(|| ConnectorError::TableNotFound {
            table: name.clone(),
        })?;
    let oid: u32 = row.get(0);
    let partition_by: Option<String> = row.get(2);
    let comment: Option<String> = row.get(3);
    let ctx = |what: &str| format!("reading the {what} of {name}");

    let columns = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                    a.attidentity::text, a.attgenerated::text, pg_get_expr(d.adbin, d.adrelid), \
                    col_description(a.attrelid, a.attnum) \
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(query_err(ctx("columns")))?
        .into_iter()
        .map(|r| {
            let identity: String = r.get(3);
            let generated: String = r.get(4);
            let expr: Option<String> = r.get(5);
            let fill = match (identity.as_str(), generated.as_str(), expr) {
                ("a", _, _) => ColumnFill::Identity { always: true },
                ("d", _, _) => ColumnFill::Identity { always: false },
                (_, "s", Some(e)) => ColumnFill::Generated(e),
                (_, _, Some(e)) => ColumnFill::Default(e),
                _ => ColumnFill::None,
            };
            ColumnDefinition {
                name: r.get(0),
                type_sql: r.get(1),
                not_null: r.get(2),
                fill,
                comment: r.get(6),
            }
        })
        .collect();

    let constraints = client
        .query(
            "SELECT k.conname::text, k.contype::text, pg_get_constraintdef(k.oid), \
                    rn.nspname::text, r.relname::text \
             FROM pg_constraint k LEFT JOIN pg_class r ON r.oid = k.confrelid \
             LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace \
             WHERE k.conrelid = $1 AND k.contype IN ('p', 'u', 'c', 'f', 'x') AND k.conislocal \
             ORDER BY CASE k.contype WHEN 'p' THEN 0 ELSE 1 END, k.conname",
            &[&oid],
        )
        .await
        .map_err(query_err(ctx("constraints")))?
        .into_iter()
        .filter_map(|r| {
            let kind = match r.get::<_, String>(1).as_str() {
                "p" => ConstraintKind::PrimaryKey,
                "u" => ConstraintKind::Unique,
                "c" => ConstraintKind::Check,
                "f" => ConstraintKind::ForeignKey,
                "x" => ConstraintKind::Exclusion,
                _ => return None,
            };
            let references = match (r.get::<_, Option<String>>(3), r.get::<_, Option<String>>(4)) {
                (Some(s), Some(n)) => Some(QualifiedName::new(s, n)),
                _ => None,
            };
            Some(ConstraintDefinition {
                name: r.get(0),
                kind,
                definition: r.get(2),
                references,
            })
        })
        .collect();

    let indexes = client
        .query(
            "SELECT ic.relname::text, i.indisunique, pg_get_indexdef(i.indexrelid), am.amname::text \
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam \
             WHERE i.indrelid = $1 \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid) \
               AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid) \
             ORDER BY 1",
            &[&oid],
        )
        .await
        .map_err(query_err(ctx("indexes")))?
        .into_iter()
        .filter_map(|r| {
            let def: String = r.get(2);
            // `CREATE [UNIQUE] INDEX name ON [ONLY] table USING ...`: keep from USING on.
            let at = def.find(" USING ")?;
            Some(IndexDefinition {
                name: r.get(0),
                unique: r.get(1),
                using: def[at + 1..].to_string(),
                method: r.get(3),
            })
        })
        .collect();

    let seq_rows = client
        .query(
            "SELECT a.attname::text, sn.nspname::text, s.relname::text, d.deptype::text \
             FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
             JOIN pg_namespace sn ON sn.oid = s.relnamespace \
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
             WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
               AND d.refobjid = $1 AND d.deptype IN ('a', 'i') ORDER BY 1",
            &[&oid],
        )
        .await
        .map_err(query_err(ctx("sequences")))?;
    let mut sequences = Vec::with_capacity(seq_rows.len());
    for r in seq_rows {
        let sequence = QualifiedName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        let state = client
            .query_one(
                &format!("SELECT last_value, is_called FROM {}", sequence.quoted()),
                &[],
            )
            .await
            .map_err(query_err(format!("reading sequence {sequence}")))?;
        sequences.push(SequenceState {
            column: r.get(0),
            sequence,
            last_value: state.get(0),
            is_called: state.get(1),
            identity: r.get::<_, String>(3) == "i",
        });
    }

    let partitions = client
        .query(
            "SELECT n.nspname::text, c.relname::text, pg_get_expr(c.relpartbound, c.oid), \
                    pn.nspname::text, p.relname::text \
             FROM pg_partition_tree($1::oid::regclass) t JOIN pg_class c ON c.oid = t.relid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_class p ON p.oid = t.parentrelid LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace \
             WHERE t.level > 0 ORDER BY t.level, 1, 2",
            &[&oid],
        )
        .await
        .map_err(query_err(ctx("partitions")))?
        .into_iter()
        .map(|r| PartitionDefinition {
            name: QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
            parent: match (r.get::<_, Option<String>>(3), r.get::<_, Option<String>>(4)) {
                (Some(s), Some(n)) => Some(QualifiedName::new(s, n)),
                _ => None,
            },
            bound: r.get(2),
        })
        .collect();

    let types = used_types(client, oid, &name).await?;

    let mut left_out = Vec::new();
    let extras = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal), \
                    (SELECT count(*) FROM pg_rewrite WHERE ev_class = $1 AND rulename <> '_RETURN'), \
                    (SELECT count(*) FROM pg_policy WHERE polrelid = $1), \
                    (SELECT relrowsecurity FROM pg_class WHERE oid = $1)",
            &[&oid],
        )
        .await
        .map_err(query_err(ctx("triggers, rules and policies")))?;
    for (i, what) in [
        (0, "trigger(s)"),
        (1, "rule(s)"),
        (2, "row-level security policies"),
    ] {
        let n: i64 = extras.get(i);
        if n > 0 {
            left_out.push(format!("{n} {what}"));
        }
    }
    if extras.get::<_, bool>(3) && extras.get::<_, i64>(2) == 0 {
        left_out.push("row-level security (enabled)".into());
    }
    Ok(TableDefinition {
        name: table.clone(),
        columns,
        partition_by,
        partitions,
        constraints,
        indexes,
        sequences,
        types,
        comment,
        left_out,
    })
}

/// The enums and domains the columns of table `oid` use (a domain's base type first).
async fn used_types(
    client: &Client,
    oid: u32,
    table: &str,
) -> Result<Vec<TypeDefinition>, ConnectorError> {
    let rows = client
        .query(
            "WITH RECURSIVE used(t, depth) AS ( \
               SELECT CASE WHEN ty.typelem <> 0 AND ty.typcategory = 'A' THEN ty.typelem ELSE ty.oid END, 0 \
               FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid \
               WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
               UNION SELECT d.typbasetype, u.depth + 1 FROM used u JOIN pg_type d ON d.oid = u.t \
               WHERE d.typtype = 'd') \
             SELECT ty.oid, n.nspname::text, ty.typname::text, ty.typtype::text, \
                    format_type(ty.typbasetype, ty.typtypmod), ty.typnotnull, max(u.depth) \
             FROM used u JOIN pg_type ty ON ty.oid = u.t JOIN pg_namespace n ON n.oid = ty.typnamespace \
             WHERE ty.typtype IN ('e', 'd') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY max(u.depth) DESC, 2, 3",
            &[&oid],
        )
        .await
        .map_err(query_err(format!("reading the types of {table}")))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let toid: u32 = r.get(0);
        let name = QualifiedName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        if r.get::<_, String>(3) == "e" {
            let labels = client
                .query(
                    "SELECT enumlabel::text FROM pg_enum WHERE enumtypid = $1 ORDER BY enumsortorder",
                    &[&toid],
                )
                .await
                .map_err(query_err(format!("reading the labels of {name}")))?
                .into_iter()
                .map(|l| l.get(0))
                .collect();
            out.push(TypeDefinition::Enum { name, labels });
        } else {
            let checks = client
                .query(
                    "SELECT 'CONSTRAINT ' || quote_ident(conname) || ' ' || pg_get_constraintdef(oid) \
                     FROM pg_constraint WHERE contypid = $1 ORDER BY conname",
                    &[&toid],
                )
                .await
                .map_err(query_err(format!("reading the checks of {name}")))?
                .into_iter()
                .map(|c| c.get(0))
                .collect();
            out.push(TypeDefinition::Domain {
                name,
                base: r.get(4),
                not_null: r.get(5),
                checks,
            });
        }
    }
    Ok(out)
}

/// The installed version of an extension (`None`: not installed) and whether it could be
/// installed (available to `CREATE EXTENSION`).
pub async fn extension_state(
    client: &Client,
    extension: &str,
) -> Result<(Option<String>, Option<String>), ConnectorError> {
    let r = client
        .query_one(
            "SELECT (SELECT extversion FROM pg_extension WHERE extname = $1), \
                    (SELECT default_version FROM pg_available_extensions WHERE name = $1)",
            &[&extension],
        )
        .await
        .map_err(query_err(format!("looking up extension {extension}")))?;
    Ok((r.get(0), r.get(1)))
}

/// A column list for SQL: `"a", "b"`.
pub fn column_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(", ")
}
