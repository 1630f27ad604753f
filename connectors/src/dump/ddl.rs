//! The catalog a dump describes, read from its DDL as pg_dump writes it: `CREATE TABLE` (types
//! with typmods, `NOT NULL`, `PARTITION BY`, `PARTITION OF`), `ALTER TABLE … ADD CONSTRAINT …
//! PRIMARY KEY`, `ATTACH PARTITION`, pgvector indexes, enum and domain types. Whatever else a
//! dump holds (settings, sequences, ownership, grants, comments, functions, triggers,
//! extensions) is counted by kind and skipped.

use std::collections::{BTreeMap, HashMap};

use etl_mappings::{
    PgKind, PgType, QualifiedName, SourceColumn, SourceTable, SourceVectorIndex, VectorIndexMethod,
    metric_of_opclass,
};

use super::sql::{TYPE_END_WORDS, ident, tokens};

/// What one statement was.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// DDL that shaped the catalog.
    Used,
    /// A statement the tool does not need, by kind (`SET`, `GRANT`, …).
    Skipped(String),
    /// `COPY table (columns) FROM stdin`: data follows.
    Copy {
        /// The table.
        table: QualifiedName,
        /// Its columns in data order.
        columns: Vec<String>,
    },
    /// `INSERT INTO table [(columns)] VALUES …`.
    Insert {
        /// The table.
        table: QualifiedName,
        /// Its columns, when the statement names them.
        columns: Option<Vec<String>>,
    },
}

/// A table being described.
#[derive(Debug, Clone, Default)]
struct Table {
    columns: Vec<SourceColumn>,
    /// Generated (computed) columns: in INSERT position lists, never in COPY data, so left
    /// out of the catalog.
    generated: Vec<String>,
    /// Every column name in table order, generated ones included (INSERT positions).
    order: Vec<String>,
    primary_key: Vec<String>,
    partitioned: bool,
    parent: Option<QualifiedName>,
    indexes: Vec<SourceVectorIndex>,
}

/// The catalog built statement by statement.
#[derive(Debug, Default)]
pub struct Ddl {
    tables: BTreeMap<QualifiedName, Table>,
    enums: HashMap<String, ()>,
    domains: HashMap<String, String>,
}

/// A DDL problem, with a reason.
pub type DdlError = String;

fn qname(toks: &[String], i: &mut usize) -> Option<QualifiedName> {
    let first = ident(toks.get(*i)?);
    *i += 1;
    if toks.get(*i).map(String::as_str) == Some(".") {
        let second = ident(toks.get(*i + 1)?);
        *i += 2;
        Some(QualifiedName::new(first, second))
    } else {
        Some(QualifiedName::new("public", first))
    }
}

fn type_key(name: &QualifiedName) -> String {
    format!("{}.{}", name.schema, name.name)
}

/// The index of the `)` closing the `(` at `open`.
fn closing(toks: &[String], open: usize) -> Option<usize> {
    super::sql::closing(toks.iter().map(String::as_str), open)
}

/// Splits `toks[from..to]` at top-level commas.
fn split_commas(toks: &[String]) -> Vec<&[String]> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (j, t) in toks.iter().enumerate() {
        match t.as_str() {
            "(" | "[" => depth += 1,
            ")" | "]" => depth -= 1,
            "," if depth == 0 => {
                out.push(&toks[start..j]);
                start = j + 1;
            }
            _ => {}
        }
    }
    if start < toks.len() {
        out.push(&toks[start..]);
    }
    out
}

fn ident_list(toks: &[String]) -> Vec<String> {
    split_commas(toks)
        .into_iter()
        .filter_map(|part| part.first().map(|t| ident(t)))
        .collect()
}

fn is(toks: &[String], i: usize, words: &[&str]) -> bool {
    words
        .iter()
        .enumerate()
        .all(|(k, w)| toks.get(i + k).map(String::as_str) == Some(*w))
}

/// Joins type tokens back into `format_type`'s spelling.
fn join_type(toks: &[String]) -> String {
    let mut s = String::new();
    for t in toks {
        let word = t
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"');
        if word
            && s.chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ')')
        {
            s.push(' ');
        }
        s.push_str(&ident(t));
    }
    s
}

impl Ddl {
    /// Takes one statement.
    pub fn statement(&mut self, text: &str) -> Result<Outcome, DdlError> {
        if text.starts_with('\\') {
            return Ok(Outcome::Skipped("psql meta-command".into()));
        }
        let toks = tokens(text);
        let w = |i: usize| toks.get(i).map(String::as_str).unwrap_or("");
        match (w(0), w(1)) {
            ("copy", _) => {
                let mut i = 1;
                let table = qname(&toks, &mut i).ok_or("COPY without a table")?;
                let columns = if w(i) == "(" {
                    let end = closing(&toks, i).ok_or("unclosed column list in COPY")?;
                    let cols = ident_list(&toks[i + 1..end]);
                    i = end + 1;
                    cols
                } else {
                    self.columns_of(&table)?
                };
                if !(is(&toks, i, &["from", "stdin"])) {
                    return Ok(Outcome::Skipped("COPY (not FROM stdin)".into()));
                }
                Ok(Outcome::Copy { table, columns })
            }
            ("insert", "into") => {
                let mut i = 2;
                let table = qname(&toks, &mut i).ok_or("INSERT without a table")?;
                let columns = if w(i) == "(" {
                    let end = closing(&toks, i).ok_or("unclosed column list in INSERT")?;
                    Some(ident_list(&toks[i + 1..end]))
                } else {
                    None
                };
                Ok(Outcome::Insert { table, columns })
            }
            ("create", _) => self.create(&toks),
            ("alter", "table") => self.alter_table(&toks),
            ("set", _) | ("reset", _) => Ok(Outcome::Skipped("SET".into())),
            ("select", _) if text.contains("setval(") => {
                Ok(Outcome::Skipped("sequence value".into()))
            }
            ("select", _) if text.contains("set_config(") => Ok(Outcome::Skipped("SET".into())),
            ("comment", _) => Ok(Outcome::Skipped("COMMENT".into())),
            ("grant", _) | ("revoke", _) => Ok(Outcome::Skipped("GRANT/REVOKE".into())),
            ("alter", "default") => Ok(Outcome::Skipped("GRANT/REVOKE".into())),
            ("alter", _) if text.contains(" OWNER TO ") => Ok(Outcome::Skipped("OWNER".into())),
            ("alter", kind) => Ok(Outcome::Skipped(format!("ALTER {}", kind.to_uppercase()))),
            (first, _) => Ok(Outcome::Skipped(first.to_uppercase())),
        }
    }

    fn columns_of(&self, table: &QualifiedName) -> Result<Vec<String>, DdlError> {
        self.tables
            .get(table)
            .map(|t| t.order.clone())
            .ok_or_else(|| format!("data for {table}, which the dump never creates"))
    }

    fn create(&mut self, toks: &[String]) -> Result<Outcome, DdlError> {
        let mut i = 1;
        while matches!(
            toks.get(i).map(String::as_str),
            Some(
                "unlogged"
                    | "temporary"
                    | "temp"
                    | "or"
                    | "replace"
                    | "unique"
                    | "global"
                    | "local"
            )
        ) {
            i += 1;
        }
        let what = toks.get(i).map(String::as_str).unwrap_or("");
        match what {
            "table" => self.create_table(toks, i + 1),
            "index" => self.create_index(toks, i + 1),
            "type" => {
                let mut j = i + 1;
                let name = qname(toks, &mut j).ok_or("CREATE TYPE without a name")?;
                if is(toks, j, &["as", "enum"]) {
                    self.enums.insert(type_key(&name), ());
                    Ok(Outcome::Used)
                } else {
                    Ok(Outcome::Skipped("CREATE TYPE".into()))
                }
            }
            "domain" => {
                let mut j = i + 1;
                let name = qname(toks, &mut j).ok_or("CREATE DOMAIN without a name")?;
                if toks.get(j).map(String::as_str) == Some("as") {
                    j += 1;
                }
                let end = type_end(toks, j);
                self.domains
                    .insert(type_key(&name), join_type(&toks[j..end]));
                Ok(Outcome::Used)
            }
            "materialized" => Ok(Outcome::Skipped("CREATE MATERIALIZED VIEW".into())),
            other => Ok(Outcome::Skipped(format!("CREATE {}", other.to_uppercase()))),
        }
    }

    fn create_table(&mut self, toks: &[String], mut i: usize) -> Result<Outcome, DdlError> {
        if is(toks, i, &["if", "not", "exists"]) {
            i += 3;
        }
        let name = qname(toks, &mut i).ok_or("CREATE TABLE without a name")?;
        let mut table = Table::default();
        if is(toks, i, &["partition", "of"]) {
            i += 2;
            let parent = qname(toks, &mut i).ok_or("PARTITION OF without a parent")?;
            let p = self.tables.get(&parent).ok_or_else(|| {
                format!("{name} is a partition of {parent}, which the dump has not created")
            })?;
            table.columns = p.columns.clone();
            table.order = p.order.clone();
            table.generated = p.generated.clone();
            table.parent = Some(parent);
        }
        if toks.get(i).map(String::as_str) == Some("(") {
            let end = closing(toks, i)
                .ok_or_else(|| format!("unclosed column list in CREATE TABLE {name}"))?;
            for element in split_commas(&toks[i + 1..end]) {
                self.table_element(&mut table, element)?;
            }
            i = end + 1;
        }
        if is(toks, i, &["inherits", "("]) {
            let end = closing(toks, i + 1).ok_or("unclosed INHERITS list")?;
            let mut parents = Vec::new();
            let mut j = i + 2;
            while j < end {
                if let Some(q) = qname(toks, &mut j) {
                    parents.push(q);
                }
                if toks.get(j).map(String::as_str) == Some(",") {
                    j += 1;
                }
            }
            // pg_dump prints only a child's own columns: the inherited ones come first.
            let mut inherited: Vec<SourceColumn> = Vec::new();
            for p in &parents {
                if let Some(pt) = self.tables.get(p) {
                    for c in &pt.columns {
                        if !inherited.iter().any(|x| x.name == c.name) {
                            inherited.push(c.clone());
                        }
                    }
                }
            }
            let own = std::mem::take(&mut table.columns);
            for c in own {
                match inherited.iter_mut().find(|x| x.name == c.name) {
                    Some(x) => x.nullable &= c.nullable,
                    None => inherited.push(c),
                }
            }
            let mut order: Vec<String> = inherited
                .iter()
                .map(|c| c.name.clone())
                .filter(|n| !table.order.contains(n))
                .collect();
            order.append(&mut table.order);
            table.order = order;
            table.columns = inherited;
            i = end + 1;
        }
        if is(toks, i, &["partition", "by"]) {
            table.partitioned = true;
        }
        for c in &mut table.columns {
            if table.primary_key.contains(&c.name) {
                c.nullable = false;
            }
        }
        self.tables.insert(name, table);
        Ok(Outcome::Used)
    }

    fn table_element(&self, table: &mut Table, el: &[String]) -> Result<(), DdlError> {
        let w = |i: usize| el.get(i).map(String::as_str).unwrap_or("");
        let mut i = 0;
        if w(0) == "constraint" {
            i = 2;
        }
        match w(i) {
            "primary" if w(i + 1) == "key" => {
                if let Some(open) = (i..el.len()).find(|j| el[*j] == "(") {
                    let end = closing(el, open).unwrap_or(el.len());
                    table.primary_key = ident_list(&el[open + 1..end]);
                }
                return Ok(());
            }
            "check" | "unique" | "foreign" | "like" => return Ok(()),
            "exclude" if matches!(w(i + 1), "using" | "(") => return Ok(()),
            _ if i > 0 => return Ok(()),
            _ => {}
        }
        let name = ident(el.first().ok_or("an empty column definition")?);
        if table.parent.is_some() {
            // `PARTITION OF` lists only constraints on inherited columns.
            if let Some(c) = table.columns.iter_mut().find(|c| c.name == name)
                && el.windows(2).any(|p| p[0] == "not" && p[1] == "null")
            {
                c.nullable = false;
            }
            return Ok(());
        }
        let end = type_end(el, 1);
        let display = join_type(&el[1..end]);
        let kind = self.kind_of(&display);
        let rest = &el[end..];
        if rest
            .windows(3)
            .any(|p| p[0] == "generated" && p[2] == "as" && p.len() == 3)
            && !rest.iter().any(|t| t == "identity")
        {
            table.order.push(name.clone());
            table.generated.push(name);
            return Ok(());
        }
        let not_null = rest.windows(2).any(|p| p[0] == "not" && p[1] == "null");
        if rest.windows(2).any(|p| p[0] == "primary" && p[1] == "key") {
            table.primary_key = vec![name.clone()];
        }
        table.order.push(name.clone());
        table.columns.push(SourceColumn {
            name,
            pg_type: PgType::new(display_name(&display), kind),
            nullable: !not_null,
            generated: false,
        });
        Ok(())
    }

    /// Classifies a type as pg_dump spells it (`public.vector(3)`, `character varying(20)[]`).
    fn kind_of(&self, display: &str) -> PgKind {
        let mut base = display.trim();
        let mut ndims = 0;
        while let Some(b) = base.strip_suffix("[]") {
            base = b.trim_end();
            ndims += 1;
        }
        if ndims > 0 {
            return PgKind::Array {
                element: Box::new(self.kind_of(base)),
                ndims,
            };
        }
        // Typmods may sit inside the name: `timestamp(3) without time zone`.
        let (name, mods) = match (base.find('('), base.find(')')) {
            (Some(a), Some(b)) if a < b => {
                let mods: Vec<u32> = base[a + 1..b]
                    .split(',')
                    .filter_map(|m| m.trim().parse().ok())
                    .collect();
                (format!("{}{}", base[..a].trim_end(), &base[b + 1..]), mods)
            }
            _ => (base.to_string(), Vec::new()),
        };
        let name = name.trim().to_lowercase();
        let m0 = mods.first().copied();
        let unqualified = name.strip_prefix("pg_catalog.").unwrap_or(&name);
        match unqualified {
            "boolean" | "bool" => PgKind::Bool,
            "smallint" | "int2" => PgKind::Int2,
            "integer" | "int" | "int4" => PgKind::Int4,
            "bigint" | "int8" => PgKind::Int8,
            "real" | "float4" => PgKind::Float4,
            "double precision" | "float8" => PgKind::Float8,
            "numeric" | "decimal" => PgKind::Numeric {
                precision: m0,
                scale: m0.map(|_| mods.get(1).copied().unwrap_or(0)),
            },
            "text" | "name" => PgKind::Text,
            "character varying" | "varchar" => PgKind::Varchar { max_length: m0 },
            "character" | "char" | "bpchar" => PgKind::Char {
                length: Some(m0.unwrap_or(1)),
            },
            "uuid" => PgKind::Uuid,
            "date" => PgKind::Date,
            "time without time zone" | "time" => PgKind::Time,
            "time with time zone" | "timetz" => PgKind::TimeTz,
            "timestamp without time zone" | "timestamp" => PgKind::Timestamp,
            "timestamp with time zone" | "timestamptz" => PgKind::TimestampTz,
            "inet" => PgKind::Inet,
            "cidr" => PgKind::Cidr,
            "json" => PgKind::Json,
            "jsonb" => PgKind::Jsonb,
            "bytea" => PgKind::Bytea,
            "bit" => PgKind::Bit {
                length: Some(m0.unwrap_or(1)),
            },
            "bit varying" | "varbit" => PgKind::VarBit { max_length: m0 },
            n if n.starts_with("interval") => PgKind::Interval,
            n => {
                let key = if n.contains('.') {
                    n.to_string()
                } else {
                    format!("public.{n}")
                };
                let short = key.rsplit('.').next().unwrap_or(n);
                // Quoted type names keep their case: look the name up as written, too.
                let exact = base.trim().replace('"', "");
                let exact = if exact.contains('.') {
                    exact
                } else {
                    format!("public.{exact}")
                };
                if let Some(b) = self.domains.get(&key).or_else(|| self.domains.get(&exact)) {
                    return self.kind_of(b);
                }
                if self.enums.contains_key(&key) || self.enums.contains_key(&exact) {
                    return PgKind::Enum {
                        type_name: short.to_string(),
                    };
                }
                match short {
                    "vector" => PgKind::Vector { dim: m0 },
                    "halfvec" => PgKind::HalfVec { dim: m0 },
                    "sparsevec" => PgKind::SparseVec { dim: m0 },
                    _ => PgKind::Other {
                        type_name: display_name(display),
                    },
                }
            }
        }
    }

    fn alter_table(&mut self, toks: &[String]) -> Result<Outcome, DdlError> {
        let mut i = 2;
        if toks.get(i).map(String::as_str) == Some("only") {
            i += 1;
        }
        if is(toks, i, &["if", "exists"]) {
            i += 2;
        }
        let Some(name) = qname(toks, &mut i) else {
            return Ok(Outcome::Skipped("ALTER TABLE".into()));
        };
        if is(toks, i, &["attach", "partition"]) {
            i += 2;
            let child = qname(toks, &mut i).ok_or("ATTACH PARTITION without a partition")?;
            if let Some(t) = self.tables.get_mut(&child) {
                t.parent = Some(name);
            }
            return Ok(Outcome::Used);
        }
        if is(toks, i, &["add", "constraint"]) {
            let at = i + 3;
            if is(toks, at, &["primary", "key", "("]) {
                let end = closing(toks, at + 2).ok_or("unclosed PRIMARY KEY column list")?;
                let cols = ident_list(&toks[at + 3..end]);
                if let Some(t) = self.tables.get_mut(&name) {
                    for c in &mut t.columns {
                        if cols.contains(&c.name) {
                            c.nullable = false;
                        }
                    }
                    t.primary_key = cols;
                }
                return Ok(Outcome::Used);
            }
            return Ok(Outcome::Skipped(
                "constraint (foreign key, unique, check)".into(),
            ));
        }
        if toks.iter().any(|t| t == "owner") {
            return Ok(Outcome::Skipped("OWNER".into()));
        }
        Ok(Outcome::Skipped("ALTER TABLE".into()))
    }

    fn create_index(&mut self, toks: &[String], mut i: usize) -> Result<Outcome, DdlError> {
        if is(toks, i, &["if", "not", "exists"]) {
            i += 3;
        }
        let index_name = if toks.get(i).map(String::as_str) == Some("on") {
            String::new()
        } else {
            let n = ident(toks.get(i).ok_or("CREATE INDEX without a name")?);
            i += 1;
            n
        };
        if toks.get(i).map(String::as_str) != Some("on") {
            return Ok(Outcome::Skipped("CREATE INDEX".into()));
        }
        i += 1;
        if toks.get(i).map(String::as_str) == Some("only") {
            i += 1;
        }
        let table = qname(toks, &mut i).ok_or("CREATE INDEX without a table")?;
        let method = if toks.get(i).map(String::as_str) == Some("using") {
            i += 2;
            toks[i - 1].clone()
        } else {
            "btree".into()
        };
        let method = match method.as_str() {
            "hnsw" => VectorIndexMethod::Hnsw,
            "ivfflat" => VectorIndexMethod::Ivfflat,
            _ => return Ok(Outcome::Skipped("CREATE INDEX (not a vector index)".into())),
        };
        if toks.get(i).map(String::as_str) != Some("(") {
            return Ok(Outcome::Skipped("CREATE INDEX".into()));
        }
        let end = closing(toks, i).ok_or("unclosed CREATE INDEX column list")?;
        let parts = split_commas(&toks[i + 1..end]);
        if parts.len() != 1 {
            return Ok(Outcome::Skipped("CREATE INDEX (several columns)".into()));
        }
        let part = parts[0];
        let column = ident(part.first().ok_or("an index without a column")?);
        let opclass = part
            .iter()
            .skip(1)
            .rfind(|t| *t != ".")
            .map(|t| ident(t))
            .unwrap_or_else(|| "vector_l2_ops".into());
        let mut options = BTreeMap::new();
        let mut j = end + 1;
        if is(toks, j, &["with", "("]) {
            j += 1;
            let close = closing(toks, j).unwrap_or(toks.len());
            for opt in split_commas(&toks[j + 1..close]) {
                if let [k, eq, v] = opt
                    && eq == "="
                {
                    options.insert(ident(k), v.trim_matches('\'').to_string());
                }
            }
        }
        if let Some(t) = self.tables.get_mut(&table) {
            t.indexes.push(SourceVectorIndex {
                name: index_name,
                column,
                method,
                metric: metric_of_opclass(&opclass),
                opclass,
                options,
            });
            t.indexes.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Ok(Outcome::Used)
    }

    /// `table` and its partitions, recursively: the tables whose data make it up (a partition's
    /// data may also be written under the root, with `--load-via-partition-root`).
    pub fn tree(&self, table: &QualifiedName) -> Vec<QualifiedName> {
        let mut out = Vec::new();
        let mut stack = vec![table.clone()];
        while let Some(t) = stack.pop() {
            if !self.tables.contains_key(&t) || out.contains(&t) {
                continue;
            }
            for (name, child) in &self.tables {
                if child.parent.as_ref() == Some(&t) {
                    stack.push(name.clone());
                }
            }
            out.push(t);
        }
        out.sort();
        out
    }

    /// Generated columns of the tables (partitions excluded: they repeat their parent's), which a
    /// dump holds no values for.
    pub fn generated_columns(&self) -> Vec<(QualifiedName, String)> {
        self.tables
            .iter()
            .filter(|(_, t)| t.parent.is_none())
            .flat_map(|(name, t)| t.generated.iter().map(move |c| (name.clone(), c.clone())))
            .collect()
    }

    /// The column names of `table` in order.
    pub fn column_names(&self, table: &QualifiedName) -> Option<Vec<String>> {
        self.columns_of(table).ok()
    }

    /// The user tables, partitions folded into their parents, with row and byte counts from
    /// `sizes` (per leaf).
    pub fn catalog(&self, sizes: &HashMap<QualifiedName, (Option<u64>, u64)>) -> Vec<SourceTable> {
        self.tables
            .iter()
            .filter(|(_, t)| t.parent.is_none())
            .map(|(name, t)| {
                let (mut rows, mut bytes) = (Some(0), 0);
                for leaf in self.tree(name) {
                    if let Some((r, b)) = sizes.get(&leaf) {
                        rows = rows.zip(*r).map(|(a, b)| a + b);
                        bytes += b;
                    }
                }
                SourceTable {
                    name: name.clone(),
                    columns: t.columns.clone(),
                    primary_key: t.primary_key.clone(),
                    partitioned: t.partitioned,
                    estimated_rows: rows,
                    estimated_bytes: Some(bytes),
                    vector_indexes: t.indexes.clone(),
                }
            })
            .collect()
    }
}

/// Where a column's type ends: at the first constraint keyword outside parentheses.
fn type_end(toks: &[String], start: usize) -> usize {
    let mut depth = 0;
    for (j, t) in toks.iter().enumerate().skip(start) {
        match t.as_str() {
            "(" | "[" => depth += 1,
            ")" | "]" => depth -= 1,
            w if depth == 0 && TYPE_END_WORDS.contains(&w) => return j,
            _ => {}
        }
    }
    toks.len()
}

/// A type's display name as the live catalog shows it (`vector(3)`, not `public.vector(3)`).
fn display_name(s: &str) -> String {
    s.strip_prefix("public.")
        .or_else(|| s.strip_prefix("pg_catalog."))
        .unwrap_or(s)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pg_dump_ddl() {
        let mut d = Ddl::default();
        for s in [
            "CREATE TYPE public.mood AS ENUM ('sad', 'ok')",
            "CREATE DOMAIN public.pos AS integer CONSTRAINT p CHECK ((VALUE > 0))",
            "CREATE TABLE public.items (\n    id bigint NOT NULL,\n    title character varying(50) DEFAULT 'x'::character varying,\n    price numeric(10,2),\n    emb public.vector(3),\n    tags text[],\n    at timestamp(3) without time zone,\n    m public.mood,\n    p public.pos,\n    CONSTRAINT c CHECK ((price > 0))\n)",
            "ALTER TABLE ONLY public.items\n    ADD CONSTRAINT items_pkey PRIMARY KEY (id)",
            "CREATE INDEX items_emb_idx ON public.items USING hnsw (emb public.vector_cosine_ops) WITH (m='8', ef_construction='32')",
            "CREATE TABLE public.ev (id integer NOT NULL, day date NOT NULL) PARTITION BY RANGE (day)",
            "CREATE TABLE public.ev_1 (id integer NOT NULL, day date NOT NULL)",
            "ALTER TABLE ONLY public.ev ATTACH PARTITION public.ev_1 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
        ] {
            assert_eq!(d.statement(s).unwrap(), Outcome::Used, "{s}");
        }
        assert_eq!(
            d.statement("SET statement_timeout = 0").unwrap(),
            Outcome::Skipped("SET".into())
        );
        let cat = d.catalog(&HashMap::new());
        assert_eq!(cat.len(), 2);
        let items = cat.iter().find(|t| t.name.name == "items").unwrap();
        assert_eq!(items.primary_key, vec!["id"]);
        let kinds: Vec<&PgKind> = items.columns.iter().map(|c| &c.pg_type.kind).collect();
        assert_eq!(
            kinds[1],
            &PgKind::Varchar {
                max_length: Some(50)
            }
        );
        assert_eq!(
            kinds[2],
            &PgKind::Numeric {
                precision: Some(10),
                scale: Some(2)
            }
        );
        assert_eq!(kinds[3], &PgKind::Vector { dim: Some(3) });
        assert!(matches!(kinds[4], PgKind::Array { ndims: 1, .. }));
        assert_eq!(kinds[5], &PgKind::Timestamp);
        assert_eq!(
            kinds[6],
            &PgKind::Enum {
                type_name: "mood".into()
            }
        );
        assert_eq!(kinds[7], &PgKind::Int4);
        assert_eq!(items.columns[3].pg_type.display, "vector(3)");
        assert_eq!(items.vector_indexes[0].options["m"], "8");
        assert!(!items.columns[0].nullable);
        let ev = cat.iter().find(|t| t.name.name == "ev").unwrap();
        assert!(ev.partitioned);
        assert_eq!(
            d.tree(&ev.name),
            vec![
                QualifiedName::new("public", "ev"),
                QualifiedName::new("public", "ev_1")
            ]
        );
        match d
            .statement("COPY public.items (id, title) FROM stdin")
            .unwrap()
        {
            Outcome::Copy { columns, .. } => assert_eq!(columns, vec!["id", "title"]),
            o => panic!("{o:?}"),
        }
    }
}
