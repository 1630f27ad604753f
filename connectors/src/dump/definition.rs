//! Table definitions read from a dump's DDL: the same [`TableDefinition`] the live source reads
//! from `pg_catalog`, so a Postgres target restores a dump with the very code that copies a live
//! database (renames, `exclude`, `if_exists`, resumable post-data steps included).
//!
//! pg_dump spreads a table over many statements: `CREATE TABLE` (columns, `NOT NULL`, inline
//! `CHECK`s, `PARTITION BY`), `ALTER TABLE … ATTACH PARTITION`, `ALTER TABLE … ADD CONSTRAINT`
//! (keys, foreign keys), `ALTER TABLE … ALTER COLUMN … SET DEFAULT` (serials) or `… ADD
//! GENERATED … AS IDENTITY`, `ALTER SEQUENCE … OWNED BY`, `SELECT pg_catalog.setval(…)`,
//! `CREATE INDEX`, `COMMENT ON`, `CREATE TYPE … AS ENUM`, `CREATE DOMAIN`, and the triggers,
//! rules and policies a target does not get. Expressions (defaults, checks, index
//! definitions, partition bounds) are kept as the dump wrote them: they are the server's own
//! rendering, as `pg_get_expr` and `pg_get_indexdef` give it to the live reader.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use etl_mappings::QualifiedName;

use super::sql::{Stmt, TYPE_END_WORDS, ident, literal};
use crate::postgres::{
    ColumnDefinition, ColumnFill, ConstraintDefinition, ConstraintKind, IndexDefinition,
    PartitionDefinition, SequenceState, TableDefinition, TypeDefinition,
};

/// What the dump says about one table.
#[derive(Debug, Default)]
struct Table {
    columns: Vec<ColumnDefinition>,
    partition_by: Option<String>,
    /// Its parent and bound, for a partition.
    parent: Option<(QualifiedName, String)>,
    constraints: Vec<ConstraintDefinition>,
    indexes: Vec<IndexDefinition>,
    comment: Option<String>,
    left_out: BTreeMap<&'static str, u64>,
}

/// A sequence a column owns.
#[derive(Debug)]
struct Owned {
    sequence: QualifiedName,
    table: QualifiedName,
    column: String,
    identity: bool,
}

/// Every table definition a dump's DDL holds.
#[derive(Debug, Default)]
pub struct Definitions {
    tables: HashMap<QualifiedName, Table>,
    enums: HashMap<QualifiedName, Vec<String>>,
    domains: HashMap<QualifiedName, TypeDefinition>,
    owned: Vec<Owned>,
    values: HashMap<QualifiedName, (i64, bool)>,
}

impl Definitions {
    /// Reads `statements` (a dump's DDL, in dump order).
    pub fn read<'a>(statements: impl IntoIterator<Item = &'a str>) -> Definitions {
        let mut d = Definitions::default();
        for s in statements {
            d.statement(&Stmt::new(s));
        }
        d
    }

    fn statement(&mut self, s: &Stmt<'_>) {
        match (s.w(0), s.w(1)) {
            ("create", _) => self.create(s),
            ("alter", "table") => self.alter_table(s),
            ("alter", "sequence") => self.alter_sequence(s),
            ("select", _) if s.text.contains("setval") => self.setval(s),
            ("comment", "on") => self.comment(s),
            _ => {}
        }
    }

    fn table(&mut self, name: &QualifiedName) -> &mut Table {
        self.tables.entry(name.clone()).or_default()
    }

    fn create(&mut self, s: &Stmt<'_>) {
        let mut i = 1;
        while matches!(
            s.w(i),
            "unlogged" | "or" | "replace" | "unique" | "constraint"
        ) {
            i += 1;
        }
        match s.w(i) {
            "table" => self.create_table(s, i + 1),
            "index" => self.create_index(s),
            "type" => {
                let mut j = i + 1;
                if let Some(name) = s.qname(&mut j)
                    && s.is(j, &["as", "enum", "("])
                {
                    let labels = s.items(j + 3, s.closing(j + 2).unwrap_or(s.toks.len()));
                    let labels = labels
                        .into_iter()
                        .filter_map(|r| literal(s.w(r.start)))
                        .collect();
                    self.enums.insert(name, labels);
                }
            }
            "domain" => self.create_domain(s, i + 1),
            "trigger" => self.left_out_on(s, i + 1, "on", "trigger(s)"),
            "rule" => self.left_out_on(s, i + 1, "to", "rule(s)"),
            "policy" => self.left_out_on(s, i + 1, "on", "row-level security policies"),
            _ => {}
        }
    }

    /// Counts something a target is not given against the table named after `word`.
    fn left_out_on(&mut self, s: &Stmt<'_>, from: usize, word: &str, what: &'static str) {
        let Some(mut at) = (from..s.toks.len()).find(|j| s.w(*j) == word) else {
            return;
        };
        at += 1;
        if s.w(at) == "only" {
            at += 1;
        }
        if let Some(t) = s.qname(&mut at) {
            *self.table(&t).left_out.entry(what).or_default() += 1;
        }
    }

    fn create_table(&mut self, s: &Stmt<'_>, mut i: usize) {
        if s.is(i, &["if", "not", "exists"]) {
            i += 3;
        }
        let Some(name) = s.qname(&mut i) else { return };
        let mut parent = None;
        if s.is(i, &["partition", "of"]) {
            i += 2;
            parent = s.qname(&mut i);
        }
        let mut table = Table::default();
        if s.w(i) == "(" {
            let end = s.closing(i).unwrap_or(s.toks.len());
            for item in s.items(i + 1, end) {
                self.table_element(s, item, &mut table);
            }
            i = end + 1;
        }
        let by = s
            .find(i, s.toks.len(), &["partition"])
            .filter(|j| s.w(j + 1) == "by");
        if let Some(p) = parent {
            let bound_end = by.unwrap_or(s.toks.len());
            table.parent = Some((p, s.slice(i, bound_end)));
        }
        if let Some(j) = by {
            table.partition_by = Some(s.rest(j + 2));
        }
        let known = self.table(&name);
        table.constraints.append(&mut known.constraints);
        table.indexes.append(&mut known.indexes);
        self.tables.insert(name, table);
    }

    fn table_element(&self, s: &Stmt<'_>, item: Range<usize>, table: &mut Table) {
        let first = item.start;
        match s.w(first) {
            "constraint" => {
                let name = ident(s.w(first + 1));
                // A named NOT NULL (PostgreSQL 18) marks its column elsewhere; nothing to add.
                if let Some(c) = constraint(s, name, first + 2, item.end) {
                    table.constraints.push(c);
                }
                return;
            }
            "check" | "unique" | "primary" | "foreign" | "exclude" | "like" => return,
            _ => {}
        }
        let name = ident(s.w(first));
        let type_end = s
            .find(first + 1, item.end, &TYPE_END_WORDS)
            .unwrap_or(item.end);
        let mut column = ColumnDefinition {
            name,
            type_sql: s.slice(first + 1, type_end),
            not_null: false,
            fill: ColumnFill::None,
            comment: None,
        };
        let mut j = type_end;
        while j < item.end {
            match s.w(j) {
                "not" if s.w(j + 1) == "null" => {
                    column.not_null = true;
                    j += 2;
                }
                "default" => {
                    let end = s
                        .find(
                            j + 1,
                            item.end,
                            &[
                                "not",
                                "constraint",
                                "generated",
                                "check",
                                "references",
                                "primary",
                                "unique",
                                "collate",
                            ],
                        )
                        .unwrap_or(item.end);
                    column.fill = ColumnFill::Default(s.slice(j + 1, end));
                    j = end;
                }
                "generated" if s.is(j + 1, &["always", "as", "("]) => {
                    let close = s.closing(j + 3).unwrap_or(item.end);
                    column.fill = ColumnFill::Generated(s.slice(j + 4, close));
                    j = close + 1;
                }
                "generated" if s.find(j, item.end, &["identity"]).is_some() => {
                    column.fill = ColumnFill::Identity {
                        always: s.w(j + 1) == "always",
                    };
                    j = s.find(j, item.end, &["identity"]).unwrap_or(item.end) + 1;
                    if s.w(j) == "(" {
                        j = s.closing(j).unwrap_or(item.end) + 1;
                    }
                }
                "(" => j = s.closing(j).unwrap_or(item.end) + 1,
                _ => j += 1,
            }
        }
        table.columns.push(column);
    }

    fn alter_table(&mut self, s: &Stmt<'_>) {
        let mut i = 2;
        if s.is(i, &["if", "exists"]) {
            i += 2;
        }
        if s.w(i) == "only" {
            i += 1;
        }
        let Some(name) = s.qname(&mut i) else { return };
        if s.is(i, &["attach", "partition"]) {
            i += 2;
            if let Some(child) = s.qname(&mut i) {
                let bound = s.rest(i);
                self.table(&child).parent = Some((name, bound));
            }
        } else if s.is(i, &["add", "constraint"]) {
            let cname = ident(s.w(i + 2));
            if let Some(c) = constraint(s, cname, i + 3, s.toks.len()) {
                self.table(&name).constraints.push(c);
            }
        } else if s.is(i, &["alter", "column"]) {
            let column = ident(s.w(i + 2));
            let j = i + 3;
            if s.is(j, &["set", "default"]) {
                let expr = s.rest(j + 2);
                self.fill(&name, &column, ColumnFill::Default(expr));
            } else if s.is(j, &["add", "generated"]) {
                let always = s.w(j + 2) == "always";
                self.fill(&name, &column, ColumnFill::Identity { always });
                let named = (j..s.toks.len()).find(|k| s.is(*k, &["sequence", "name"]));
                if let Some(mut k) = named.map(|k| k + 2)
                    && let Some(sequence) = s.qname(&mut k)
                {
                    self.owned.push(Owned {
                        sequence,
                        table: name,
                        column,
                        identity: true,
                    });
                }
            }
        } else if s.is(i, &["enable", "row", "level", "security"]) {
            *self
                .table(&name)
                .left_out
                .entry("row-level security (enabled)")
                .or_default() += 1;
        }
    }

    fn fill(&mut self, table: &QualifiedName, column: &str, fill: ColumnFill) {
        if let Some(c) = self
            .table(table)
            .columns
            .iter_mut()
            .find(|c| c.name == column)
        {
            c.fill = fill;
        }
    }

    /// `ALTER SEQUENCE s OWNED BY schema.table.column`.
    fn alter_sequence(&mut self, s: &Stmt<'_>) {
        let mut i = 2;
        let Some(sequence) = s.qname(&mut i) else {
            return;
        };
        if !s.is(i, &["owned", "by"]) {
            return;
        }
        let parts: Vec<String> = s.toks[i + 2..]
            .iter()
            .filter(|t| t.0 != ".")
            .map(|t| ident(&t.0))
            .collect();
        let (table, column) = match parts.as_slice() {
            [schema, table, column] => (QualifiedName::new(schema, table), column.clone()),
            [table, column] => (QualifiedName::new("public", table), column.clone()),
            _ => return,
        };
        self.owned.push(Owned {
            sequence,
            table,
            column,
            identity: false,
        });
    }

    /// `SELECT pg_catalog.setval('schema.seq', 51, true)`.
    fn setval(&mut self, s: &Stmt<'_>) {
        let Some(open) = (0..s.toks.len()).find(|j| s.w(*j) == "setval" && s.w(j + 1) == "(")
        else {
            return;
        };
        let args = s.items(open + 2, s.closing(open + 1).unwrap_or(s.toks.len()));
        let [name, value, called] = args.as_slice() else {
            return;
        };
        let Some(sequence) = literal(s.w(name.start)).and_then(|n| QualifiedName::parse(&n).ok())
        else {
            return;
        };
        let Ok(value) = s
            .slice(value.start, value.end)
            .replace(' ', "")
            .parse::<i64>()
        else {
            return;
        };
        self.values
            .insert(sequence, (value, s.w(called.start) == "true"));
    }

    /// `COMMENT ON TABLE t IS '…'` and `COMMENT ON COLUMN t.c IS '…'`.
    fn comment(&mut self, s: &Stmt<'_>) {
        let Some(is) = (2..s.toks.len()).rfind(|j| s.w(*j) == "is") else {
            return;
        };
        let text = literal(s.w(is + 1));
        let parts: Vec<String> = s.toks[3..is]
            .iter()
            .filter(|t| t.0 != ".")
            .map(|t| ident(&t.0))
            .collect();
        match (s.w(2), parts.as_slice()) {
            ("table", [schema, table]) => {
                self.table(&QualifiedName::new(schema, table)).comment = text;
            }
            ("column", [schema, table, column]) => {
                if let Some(c) = self
                    .table(&QualifiedName::new(schema, table))
                    .columns
                    .iter_mut()
                    .find(|c| c.name == *column)
                {
                    c.comment = text;
                }
            }
            _ => {}
        }
    }

    fn create_index(&mut self, s: &Stmt<'_>) {
        let unique = s.w(1) == "unique";
        let Some(on) = (1..s.toks.len()).find(|j| s.w(*j) == "on") else {
            return;
        };
        let Some(name) = s
            .toks
            .get(on - 1)
            .map(|t| ident(&t.0))
            .filter(|n| n != "index")
        else {
            return;
        };
        let mut i = on + 1;
        if s.w(i) == "only" {
            i += 1;
        }
        let Some(table) = s.qname(&mut i) else { return };
        let (using, method) = if s.w(i) == "using" {
            (s.rest(i), s.w(i + 1).to_string())
        } else {
            (format!("USING btree {}", s.rest(i)), "btree".into())
        };
        self.table(&table).indexes.push(IndexDefinition {
            name,
            unique,
            using,
            method,
        });
    }

    fn create_domain(&mut self, s: &Stmt<'_>, mut i: usize) {
        let Some(name) = s.qname(&mut i) else { return };
        if s.w(i) == "as" {
            i += 1;
        }
        let end = s.toks.len();
        let type_end = s
            .find(
                i,
                end,
                &["collate", "default", "constraint", "not", "null", "check"],
            )
            .unwrap_or(end);
        let base = s.slice(i, type_end);
        let mut not_null = false;
        let mut checks = Vec::new();
        let mut j = type_end;
        while j < end {
            match s.w(j) {
                "not" if s.w(j + 1) == "null" => {
                    not_null = true;
                    j += 2;
                }
                "constraint" if s.w(j + 2) == "check" && s.w(j + 3) == "(" => {
                    let close = s.closing(j + 3).unwrap_or(end);
                    checks.push(format!("CONSTRAINT {}", s.slice(j + 1, close + 1)));
                    j = close + 1;
                }
                "check" if s.w(j + 1) == "(" => {
                    let close = s.closing(j + 1).unwrap_or(end);
                    checks.push(s.slice(j, close + 1));
                    j = close + 1;
                }
                _ => j += 1,
            }
        }
        self.domains.insert(
            name.clone(),
            TypeDefinition::Domain {
                name,
                base,
                not_null,
                checks,
            },
        );
    }

    /// The definition of `name`, or `None` when the dump does not create it.
    pub fn table_definition(&self, name: &QualifiedName) -> Option<TableDefinition> {
        let t = self.tables.get(name)?;
        // Partitions, parents first.
        let mut partitions = Vec::new();
        let mut level = vec![name.clone()];
        while !level.is_empty() {
            let mut next = Vec::new();
            for p in &level {
                let mut children: Vec<(&QualifiedName, &String)> = self
                    .tables
                    .iter()
                    .filter_map(|(n, c)| match &c.parent {
                        Some((parent, bound)) if parent == p => Some((n, bound)),
                        _ => None,
                    })
                    .collect();
                children.sort();
                for (child, bound) in children {
                    partitions.push(PartitionDefinition {
                        name: child.clone(),
                        parent: Some(p.clone()),
                        bound: bound.clone(),
                    });
                    next.push(child.clone());
                }
            }
            level = next;
        }
        let mut constraints = t.constraints.clone();
        constraints.sort_by(|a, b| {
            (a.kind != ConstraintKind::PrimaryKey, &a.name)
                .cmp(&(b.kind != ConstraintKind::PrimaryKey, &b.name))
        });
        let mut indexes = t.indexes.clone();
        indexes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut sequences: Vec<SequenceState> = self
            .owned
            .iter()
            .filter(|o| o.table == *name)
            .map(|o| {
                let (last_value, is_called) =
                    self.values.get(&o.sequence).copied().unwrap_or((1, false));
                SequenceState {
                    column: o.column.clone(),
                    sequence: o.sequence.clone(),
                    last_value,
                    is_called,
                    identity: o.identity,
                }
            })
            .collect();
        sequences.sort_by(|a, b| a.column.cmp(&b.column));
        let mut types = Vec::new();
        for c in &t.columns {
            self.used_type(&c.type_sql, &mut types);
        }
        Some(TableDefinition {
            name: name.clone(),
            columns: t.columns.clone(),
            partition_by: t.partition_by.clone(),
            partitions,
            constraints,
            indexes,
            sequences,
            types,
            comment: t.comment.clone(),
            left_out: t
                .left_out
                .iter()
                .map(|(what, n)| {
                    if what.starts_with("row-level security (") {
                        (*what).to_string()
                    } else {
                        format!("{n} {what}")
                    }
                })
                .collect(),
        })
    }

    /// Adds the enum or domain `type_sql` names (a domain's base first) to `out`.
    fn used_type(&self, type_sql: &str, out: &mut Vec<TypeDefinition>) {
        let mut base = type_sql.trim();
        while let Some(b) = base.strip_suffix("[]") {
            base = b.trim_end();
        }
        let base = base.split('(').next().unwrap_or(base).trim();
        let Ok(name) = QualifiedName::parse(base) else {
            return;
        };
        let found = match self.enums.get(&name) {
            Some(labels) => Some(TypeDefinition::Enum {
                name,
                labels: labels.clone(),
            }),
            None => self.domains.get(&name).cloned(),
        };
        let Some(def) = found else { return };
        if let TypeDefinition::Domain { base, .. } = &def {
            self.used_type(base, out);
        }
        if !out.iter().any(|t| t.name() == def.name()) {
            out.push(def);
        }
    }
}

/// A table constraint: its kind from the definition's first word, what a foreign key references.
fn constraint(s: &Stmt<'_>, name: String, from: usize, to: usize) -> Option<ConstraintDefinition> {
    let kind = match s.w(from) {
        "primary" => ConstraintKind::PrimaryKey,
        "unique" => ConstraintKind::Unique,
        "check" => ConstraintKind::Check,
        "foreign" => ConstraintKind::ForeignKey,
        "exclude" => ConstraintKind::Exclusion,
        _ => return None,
    };
    let references = match kind {
        ConstraintKind::ForeignKey => (from..to)
            .find(|j| s.w(*j) == "references")
            .and_then(|j| s.qname(&mut (j + 1))),
        _ => None,
    };
    Some(ConstraintDefinition {
        name,
        kind,
        definition: s.slice(from, to),
        references,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &[&str] = &[
        "CREATE TYPE public.mood AS ENUM (\n    'sad',\n    'it''s ok'\n)",
        "CREATE DOMAIN public.posint AS integer CONSTRAINT posint_check CHECK ((VALUE > 0))",
        "CREATE TABLE public.\"Items\" (\n    id integer NOT NULL,\n    title character varying(20) DEFAULT 'x, y'::character varying NOT NULL,\n    embedding public.vector(3),\n    m public.mood[],\n    qty public.posint,\n    total numeric(12,2) GENERATED ALWAYS AS ((qty * 2)) STORED,\n    CONSTRAINT items_title_check CHECK ((length((title)::text) > 0))\n)",
        "CREATE SEQUENCE public.\"Items_id_seq\"\n    AS integer\n    START WITH 1",
        "ALTER SEQUENCE public.\"Items_id_seq\" OWNED BY public.\"Items\".id",
        "ALTER TABLE ONLY public.\"Items\" ALTER COLUMN id SET DEFAULT nextval('public.\"Items_id_seq\"'::regclass)",
        "SELECT pg_catalog.setval('public.\"Items_id_seq\"', 51, true)",
        "ALTER TABLE ONLY public.\"Items\"\n    ADD CONSTRAINT \"Items_pkey\" PRIMARY KEY (id)",
        "CREATE INDEX items_hnsw ON public.\"Items\" USING hnsw (embedding public.vector_cosine_ops) WITH (m='8', ef_construction='40')",
        "COMMENT ON TABLE public.\"Items\" IS 'the items'",
        "COMMENT ON COLUMN public.\"Items\".title IS 'a title'",
        "CREATE TABLE public.ev (\n    id bigint NOT NULL,\n    at date NOT NULL,\n    item integer\n)\nPARTITION BY RANGE (at)",
        "CREATE TABLE public.ev_2024 (\n    id bigint NOT NULL,\n    at date NOT NULL,\n    item integer\n)",
        "ALTER TABLE ONLY public.ev ATTACH PARTITION public.ev_2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
        "ALTER TABLE public.ev ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (\n    SEQUENCE NAME public.ev_id_seq\n    START WITH 1\n)",
        "SELECT pg_catalog.setval('public.ev_id_seq', 7, false)",
        "ALTER TABLE public.ev\n    ADD CONSTRAINT ev_item_fkey FOREIGN KEY (item) REFERENCES public.\"Items\"(id) ON DELETE CASCADE",
        "CREATE TRIGGER t BEFORE INSERT ON public.ev FOR EACH ROW EXECUTE FUNCTION public.f()",
        "ALTER TABLE public.ev ENABLE ROW LEVEL SECURITY",
    ];

    #[test]
    fn reads_what_pg_dump_spreads_over_statements() {
        let d = Definitions::read(DUMP.iter().copied());
        let items = d
            .table_definition(&QualifiedName::new("public", "Items"))
            .unwrap();
        let cols: Vec<(&str, &str, bool)> = items
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.type_sql.as_str(), c.not_null))
            .collect();
        assert_eq!(
            cols,
            [
                ("id", "integer", true),
                ("title", "character varying(20)", true),
                ("embedding", "public.vector(3)", false),
                ("m", "public.mood[]", false),
                ("qty", "public.posint", false),
                ("total", "numeric(12,2)", false),
            ]
        );
        assert_eq!(
            items.columns[0].fill,
            ColumnFill::Default("nextval('public.\"Items_id_seq\"'::regclass)".into())
        );
        assert_eq!(
            items.columns[1].fill,
            ColumnFill::Default("'x, y'::character varying".into())
        );
        assert_eq!(
            items.columns[5].fill,
            ColumnFill::Generated("(qty * 2)".into())
        );
        assert_eq!(items.columns[1].comment.as_deref(), Some("a title"));
        assert_eq!(items.comment.as_deref(), Some("the items"));
        let cons: Vec<(&str, ConstraintKind, &str)> = items
            .constraints
            .iter()
            .map(|c| (c.name.as_str(), c.kind, c.definition.as_str()))
            .collect();
        assert_eq!(
            cons,
            [
                ("Items_pkey", ConstraintKind::PrimaryKey, "PRIMARY KEY (id)"),
                (
                    "items_title_check",
                    ConstraintKind::Check,
                    "CHECK ((length((title)::text) > 0))"
                ),
            ]
        );
        assert_eq!(
            items.indexes,
            [IndexDefinition {
                name: "items_hnsw".into(),
                unique: false,
                using: "USING hnsw (embedding public.vector_cosine_ops) WITH (m='8', ef_construction='40')".into(),
                method: "hnsw".into(),
            }]
        );
        assert_eq!(
            items.sequences,
            [SequenceState {
                column: "id".into(),
                sequence: QualifiedName::new("public", "Items_id_seq"),
                last_value: 51,
                is_called: true,
                identity: false,
            }]
        );
        let types: Vec<String> = items.types.iter().map(|t| t.create_sql()).collect();
        assert_eq!(
            types,
            [
                "CREATE TYPE \"public\".\"mood\" AS ENUM ('sad', 'it''s ok')",
                "CREATE DOMAIN \"public\".\"posint\" AS integer CONSTRAINT posint_check CHECK ((VALUE > 0))",
            ]
        );

        let ev = d
            .table_definition(&QualifiedName::new("public", "ev"))
            .unwrap();
        assert_eq!(ev.partition_by.as_deref(), Some("RANGE (at)"));
        assert_eq!(
            ev.partitions,
            [PartitionDefinition {
                name: QualifiedName::new("public", "ev_2024"),
                parent: Some(QualifiedName::new("public", "ev")),
                bound: "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')".into(),
            }]
        );
        assert_eq!(ev.columns[0].fill, ColumnFill::Identity { always: true });
        assert_eq!(
            (
                ev.sequences[0].last_value,
                ev.sequences[0].is_called,
                ev.sequences[0].identity
            ),
            (7, false, true)
        );
        assert_eq!(
            ev.constraints[0].references,
            Some(QualifiedName::new("public", "Items"))
        );
        assert_eq!(
            ev.constraints[0].definition,
            "FOREIGN KEY (item) REFERENCES public.\"Items\"(id) ON DELETE CASCADE"
        );
        assert_eq!(
            ev.left_out,
            ["row-level security (enabled)", "1 trigger(s)"]
        );
        assert!(
            d.table_definition(&QualifiedName::new("public", "nope"))
                .is_none()
        );
    }
}
