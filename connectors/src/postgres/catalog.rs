//! Reads a live database's catalog into the planner's [`SourceTable`]s: columns with their
//! typmods (vector dimensions, varchar lengths, numeric precision), domains resolved to their
//! base types, primary keys, partitioning, row estimates from statistics (never `COUNT(*)`),
//! and pgvector indexes with their operator classes and options.

use std::collections::{BTreeMap, HashMap};

use etl_mappings::{
    PgKind, PgType, QualifiedName, SourceColumn, SourceTable, SourceVectorIndex, VectorIndexMethod,
    metric_of_opclass, quote_ident,
};
use tokio_postgres::Client;

use crate::error::ConnectorError;

/// A row of `pg_type`, enough to classify any column type.
#[derive(Debug, Clone)]
pub struct TypeInfo {
    /// `typname`
    pub name: String,
    /// `typtype`: b base, d domain, e enum, c composite, r range, m multirange, p pseudo.
    pub typtype: u8,
    /// `typbasetype` for domains.
    pub base: u32,
    /// `typtypmod` for domains.
    pub typmod: i32,
    /// `typelem` for arrays.
    pub elem: u32,
    /// `typcategory`
    pub category: u8,
}

/// Every type of the database, by OID.
#[derive(Debug, Clone, Default)]
pub struct TypeCatalog {
    types: HashMap<u32, TypeInfo>,
}

impl TypeCatalog {
    /// Loads `pg_type`.
    pub async fn load(client: &Client) -> Result<Self, ConnectorError> {
        let rows = client
            .query(
                "SELECT t.oid, t.typname::text, t.typtype::text, t.typbasetype, t.typtypmod, \
                 t.typelem, t.typcategory::text FROM pg_type t",
                &[],
            )
            .await
            .map_err(|e| ConnectorError::from_pg("reading pg_type", e))?;
        let mut types = HashMap::with_capacity(rows.len());
        for r in rows {
            let first = |s: String| s.bytes().next().unwrap_or(b'b');
            types.insert(
                r.get::<_, u32>(0),
                TypeInfo {
                    name: r.get(1),
                    typtype: first(r.get(2)),
                    base: r.get(3),
                    typmod: r.get(4),
                    elem: r.get(5),
                    category: first(r.get(6)),
                },
            );
        }
        Ok(TypeCatalog { types })
    }

    /// Resolves domains down to their base type and its typmod.
    pub fn resolve(&self, mut oid: u32, mut typmod: i32) -> (u32, i32) {
        for _ in 0..32 {
            match self.types.get(&oid) {
                Some(t) if t.typtype == b'd' => {
                    if typmod < 0 {
                        typmod = t.typmod;
                    }
                    oid = t.base;
                }
                _ => break,
            }
        }
        (oid, typmod)
    }

    /// Classifies a column type for the mapping rules.
    pub fn kind(&self, oid: u32, typmod: i32, ndims: i32) -> PgKind {
        let (oid, typmod) = self.resolve(oid, typmod);
        let tm = (typmod >= 0).then_some(typmod as u32);
        let Some(t) = self.types.get(&oid) else {
            return PgKind::Other {
                type_name: format!("oid {oid}"),
            };
        };
        match oid {
            16 => PgKind::Bool,
            21 => PgKind::Int2,
            23 => PgKind::Int4,
            20 => PgKind::Int8,
            700 => PgKind::Float4,
            701 => PgKind::Float8,
            1700 => {
                let (precision, scale) = match tm {
                    Some(m) if m >= 4 => {
                        let m = m - 4;
                        (Some((m >> 16) & 0xffff), Some(m & 0x7ff))
                    }
                    _ => (None, None),
                };
                PgKind::Numeric { precision, scale }
            }
            25 | 19 => PgKind::Text,
            1043 => PgKind::Varchar {
                max_length: tm.filter(|m| *m >= 4).map(|m| m - 4),
            },
            1042 => PgKind::Char {
                length: tm.filter(|m| *m >= 4).map(|m| m - 4),
            },
            2950 => PgKind::Uuid,
            1082 => PgKind::Date,
            1083 => PgKind::Time,
            1266 => PgKind::TimeTz,
            1114 => PgKind::Timestamp,
            1184 => PgKind::TimestampTz,
            1186 => PgKind::Interval,
            869 => PgKind::Inet,
            650 => PgKind::Cidr,
            114 => PgKind::Json,
            3802 => PgKind::Jsonb,
            17 => PgKind::Bytea,
            1560 => PgKind::Bit { length: tm },
            1562 => PgKind::VarBit { max_length: tm },
            _ if t.category == b'A' && t.elem != 0 => PgKind::Array {
                element: Box::new(self.kind(t.elem, typmod, 0)),
                ndims: ndims.max(1) as u32,
            },
            _ if t.typtype == b'e' => PgKind::Enum {
                type_name: t.name.clone(),
            },
            _ => match t.name.as_str() {
                "vector" => PgKind::Vector { dim: tm },
                "halfvec" => PgKind::HalfVec { dim: tm },
                "sparsevec" => PgKind::SparseVec { dim: tm },
                _ => PgKind::Other {
                    type_name: t.name.clone(),
                },
            },
        }
    }
}

/// The user tables of the database (ordinary and partitioned; partitions are not listed on
/// their own), as `(oid, name)`.
pub async fn list_tables(client: &Client) -> Result<Vec<(u32, QualifiedName)>, ConnectorError> {
    let rows = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
             ORDER BY 2, 3",
            &[],
        )
        .await
        .map_err(|e| ConnectorError::from_pg("listing tables", e))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.get(0),
                QualifiedName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
            )
        })
        .collect())
}

/// The dimensions of the rows of a pgvector column (`vector` or `halfvec`) and how many rows
/// have each, most rows first: what `etl init` writes for a column declared without one.
pub async fn vector_dims(
    client: &Client,
    table: &QualifiedName,
    column: &str,
    filter: Option<&str>,
) -> Result<Vec<(u32, i64)>, ConnectorError> {
    let col = quote_ident(column);
    let filter = filter.map(|f| format!(" AND ({f})")).unwrap_or_default();
    let q = format!(
        "SELECT vector_dims({col})::int4, count(*) FROM {} WHERE {col} IS NOT NULL{filter} GROUP BY 1 ORDER BY 2 DESC, 1",
        table.quoted()
    );
    let rows = client.query(&q, &[]).await.map_err(|e| {
        ConnectorError::from_pg(format!("reading the dimensions of {table}.{column}"), e)
    })?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, i32>(0).max(0) as u32, r.get::<_, i64>(1)))
        .collect())
}

/// How many rows of `table` (those matching `filter`, a mapping's `where:`) have a NULL in each
/// of `columns`, in one scan: what `etl plan` counts where a target cannot hold NULL.
pub async fn null_counts(
    client: &Client,
    table: &QualifiedName,
    columns: &[String],
    filter: Option<&str>,
) -> Result<Vec<u64>, ConnectorError> {
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    let counts = columns
        .iter()
        .map(|c| format!("count(*) FILTER (WHERE {} IS NULL)", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let filter = filter.map(|f| format!(" WHERE ({f})")).unwrap_or_default();
    let q = format!("SELECT {counts} FROM {}{filter}", table.quoted());
    let row = client
        .query_one(&q, &[])
        .await
        .map_err(|e| ConnectorError::from_pg(format!("counting the NULLs of {table}"), e))?;
    Ok((0..columns.len())
        .map(|i| row.get::<_, i64>(i).max(0) as u64)
        .collect())
}

/// Describes the named tables (all user tables when `names` is `None`). A named table that does
/// not exist is simply absent from the result; the planner reports it with a suggestion.
pub async fn describe_tables(
    client: &Client,
    names: Option<&[QualifiedName]>,
) -> Result<Vec<SourceTable>, ConnectorError> {
    let all = list_tables(client).await?;
    let chosen: Vec<(u32, QualifiedName)> = match names {
        None => all,
        Some(names) => all.into_iter().filter(|(_, n)| names.contains(n)).collect(),
    };
    if chosen.is_empty() {
        return Ok(Vec::new());
    }
    let oids: Vec<u32> = chosen.iter().map(|(o, _)| *o).collect();
    let types = TypeCatalog::load(client).await?;

    let ctx = |what: &str| format!("reading the catalog ({what})");
    let stats = client
        .query(
            "SELECT c.oid, c.relkind = 'p', \
               CASE WHEN c.relkind = 'p' THEN \
                 (SELECT CASE WHEN bool_and(l.reltuples < 0) THEN -1 ELSE sum(greatest(l.reltuples, 0)) END::float8 \
                    FROM pg_partition_tree(c.oid) pt JOIN pg_class l ON l.oid = pt.relid WHERE pt.isleaf) \
               ELSE c.reltuples::float8 END, \
               CASE WHEN c.relkind = 'p' THEN \
                 (SELECT sum(pg_total_relation_size(pt.relid))::int8 FROM pg_partition_tree(c.oid) pt WHERE pt.isleaf) \
               ELSE pg_total_relation_size(c.oid) END \
             FROM pg_class c WHERE c.oid = ANY($1)",
            &[&oids],
        )
        .await
        .map_err(|e| ConnectorError::from_pg(ctx("statistics"), e))?;
    let mut stat_by: HashMap<u32, (bool, Option<u64>, Option<u64>)> = HashMap::new();
    for r in stats {
        let rows: Option<f64> = r.get(2);
        let bytes: Option<i64> = r.get(3);
        stat_by.insert(
            r.get(0),
            (
                r.get(1),
                rows.filter(|v| *v >= 0.0).map(|v| v.round() as u64),
                bytes.and_then(|b| u64::try_from(b).ok()),
            ),
        );
    }

    let cols = client
        .query(
            "SELECT a.attrelid, a.attname::text, a.atttypid, a.atttypmod, a.attndims::int4, a.attnotnull, \
                    format_type(a.atttypid, a.atttypmod), a.attgenerated <> '' \
             FROM pg_attribute a WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .await
        .map_err(|e| ConnectorError::from_pg(ctx("columns"), e))?;
    let mut cols_by: HashMap<u32, Vec<SourceColumn>> = HashMap::new();
    for r in cols {
        let kind = types.kind(r.get(2), r.get(3), r.get(4));
        cols_by.entry(r.get(0)).or_default().push(SourceColumn {
            name: r.get(1),
            pg_type: PgType::new(r.get::<_, String>(6), kind),
            nullable: !r.get::<_, bool>(5),
            generated: r.get::<_, bool>(7),
        });
    }

    let pks = client
        .query(
            "SELECT i.indrelid, array_agg(a.attname::text ORDER BY k.ord) \
             FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indisprimary AND i.indrelid = ANY($1) GROUP BY i.indrelid",
            &[&oids],
        )
        .await
        .map_err(|e| ConnectorError::from_pg(ctx("primary keys"), e))?;
    let pk_by: HashMap<u32, Vec<String>> = pks.into_iter().map(|r| (r.get(0), r.get(1))).collect();

    let idx = client
        .query(
            "SELECT i.indrelid, ic.relname::text, am.amname::text, a.attname::text, opc.opcname::text, \
                    coalesce(ic.reloptions, '{}'::text[]) \
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
             JOIN pg_am am ON am.oid = ic.relam \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             JOIN pg_opclass opc ON opc.oid = i.indclass[0] \
             WHERE am.amname IN ('hnsw', 'ivfflat') AND i.indnatts = 1 AND i.indrelid = ANY($1) \
             ORDER BY ic.relname",
            &[&oids],
        )
        .await
        .map_err(|e| ConnectorError::from_pg(ctx("indexes"), e))?;
    // ivfflat's search breadth is a setting, not an index option: the one this connection gets
    // (server, database or role default) is what the application's searches ran with.
    let probes: Option<String> = client
        .query_one("SELECT current_setting('ivfflat.probes', true)", &[])
        .await
        .ok()
        .and_then(|r| r.get::<_, Option<String>>(0));
    let mut idx_by: HashMap<u32, Vec<SourceVectorIndex>> = HashMap::new();
    for r in idx {
        let opclass: String = r.get(4);
        let mut options: Vec<String> = r.get(5);
        if r.get::<_, String>(2) == "ivfflat"
            && let Some(p) = &probes
        {
            options.push(format!("probes={p}"));
        }
        idx_by.entry(r.get(0)).or_default().push(SourceVectorIndex {
            name: r.get(1),
            method: if r.get::<_, String>(2) == "hnsw" {
                VectorIndexMethod::Hnsw
            } else {
                VectorIndexMethod::Ivfflat
            },
            column: r.get(3),
            metric: metric_of_opclass(&opclass),
            opclass,
            options: options
                .iter()
                .filter_map(|o| o.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        });
    }

    Ok(chosen
        .into_iter()
        .map(|(oid, name)| {
            let (partitioned, estimated_rows, estimated_bytes) =
                stat_by.remove(&oid).unwrap_or((false, None, None));
            let primary_key = pk_by.get(&oid).cloned().unwrap_or_default();
            let mut columns = cols_by.remove(&oid).unwrap_or_default();
            for c in &mut columns {
                if primary_key.contains(&c.name) {
                    c.nullable = false;
                }
            }
            SourceTable {
                name,
                columns,
                primary_key,
                partitioned,
                estimated_rows,
                estimated_bytes,
                vector_indexes: idx_by.remove(&oid).unwrap_or_default(),
            }
        })
        .collect())
}
