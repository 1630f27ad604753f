//! `etl plan`: per table, what each column becomes, then the required fixes and suggestions,
//! in the manner of a schema conversion report.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Args;
use etl_mappings::{Plan, TablePlan};
use etl_pipeline::{load_mapping, plan};

use super::{Format, MappingPath};

/// Arguments of `etl plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The mapping file.
    pub file: MappingPath,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Plan for `etl run --recreate`: collections already on a Milvus target are dropped and
    /// recreated rather than refused.
    #[arg(long)]
    pub recreate: bool,
}

pub async fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let mapping = load_mapping(&args.file)?;
    let (source, plan) = plan(&mapping, args.recreate).await?;
    let text = match args.format {
        Format::Json => {
            let v = serde_json::json!({
                "source": source,
                "runnable": !plan.has_required_fixes(),
                "tables": plan.tables,
            });
            format!("{}\n", serde_json::to_string_pretty(&v)?)
        }
        Format::Table => render(&source, &plan),
    };
    super::out(&text)?;
    Ok(if plan.has_required_fixes() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn render(source: &str, plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Source: {source}\n");
    for t in &plan.tables {
        render_table(&mut out, t);
    }
    let fixes: usize = plan.tables.iter().map(|t| t.required_fixes.len()).sum();
    let suggestions: usize = plan.tables.iter().map(|t| t.suggestions.len()).sum();
    let _ = writeln!(
        out,
        "{} table(s), {} required fix(es), {} suggestion(s): {}",
        plan.tables.len(),
        fixes,
        suggestions,
        if fixes == 0 {
            "runnable"
        } else {
            "NOT runnable until the required fixes are made"
        }
    );
    out
}

fn render_table(out: &mut String, t: &TablePlan) {
    let rows = t
        .estimated_rows
        .map_or_else(|| "rows unknown".to_string(), |r| format!("~{r} rows"));
    let _ = writeln!(
        out,
        "Table {} → {}{} ({rows}{}{})",
        t.source,
        if t.keeps_postgres_types {
            ""
        } else {
            "collection "
        },
        t.collection,
        if t.partitioned { ", partitioned" } else { "" },
        t.filter
            .as_ref()
            .map(|f| format!(", where {f}"))
            .unwrap_or_default()
    );
    if t.keeps_postgres_types {
        render_kept_columns(out, t);
    } else {
        render_fields(out, t);
    }
    render_findings(out, t);
}

/// Into a Postgres target: each column with the type it keeps.
fn render_kept_columns(out: &mut String, t: &TablePlan) {
    let rows: Vec<[String; 3]> = t
        .fields
        .iter()
        .filter_map(|f| {
            Some([
                f.source.clone()?,
                f.pg_type.as_ref()?.display.clone(),
                if f.nullable { "yes" } else { "no" }.to_string(),
            ])
        })
        .collect();
    write_columns(out, ["COLUMN", "POSTGRES TYPE (kept)", "NULLABLE"], &rows);
}

/// Into a collection: each field with its source column and rule.
fn render_fields(out: &mut String, t: &TablePlan) {
    let header = [
        "SOURCE COLUMN",
        "POSTGRES TYPE",
        "TARGET FIELD",
        "TARGET TYPE",
        "NULLABLE",
        "INDEX",
        "NOTES",
    ];
    let mut rows: Vec<[String; 7]> = Vec::new();
    for f in &t.fields {
        let mut notes: Vec<String> = Vec::new();
        if f.primary_key {
            notes.push(if f.auto_id {
                "primary key, auto ID".into()
            } else {
                "primary key".into()
            });
        }
        if f.partition_key {
            notes.push("partition key".into());
        }
        if f.dynamic {
            notes.push("in $meta".into());
        }
        if let Some(d) = &f.default {
            notes.push(format!("default {d}"));
        }
        notes.extend(
            f.notes
                .iter()
                .filter(|n| !(f.auto_id && n.text.contains("auto-ID")))
                .map(|n| n.text.clone()),
        );
        if t.required_fixes
            .iter()
            .any(|x| x.column.is_some() && x.column == f.source)
        {
            notes.push("REQUIRED FIX".into());
        }
        rows.push([
            f.source.clone().unwrap_or_else(|| "-".into()),
            f.pg_type
                .as_ref()
                .map_or_else(|| "-".into(), |p| p.display.clone()),
            f.name.clone(),
            f.type_display(),
            if f.nullable {
                "yes".into()
            } else {
                "no".into()
            },
            f.index
                .as_ref()
                .map_or_else(|| "-".into(), |i| i.to_string()),
            notes.join("; "),
        ]);
    }
    write_columns(out, header, &rows);
}

/// A header and rows as aligned columns, indented two spaces (the last column unpadded).
fn write_columns<const N: usize>(out: &mut String, header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::from(" ");
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(&format!(" {c}"));
            } else {
                s.push_str(&format!(" {c:<w$}", w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for r in rows {
        let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()));
    }
}

/// The excluded columns, required fixes and suggestions of a table.
fn render_findings(out: &mut String, t: &TablePlan) {
    if !t.excluded.is_empty() {
        let _ = writeln!(out, "  excluded: {}", t.excluded.join(", "));
    }
    if !t.required_fixes.is_empty() {
        let _ = writeln!(out, "  Required fixes:");
        for f in &t.required_fixes {
            let col = f
                .column
                .as_ref()
                .map(|c| format!("{c}: "))
                .unwrap_or_default();
            let fix = f
                .fix
                .as_ref()
                .map(|x| format!(" → {x}"))
                .unwrap_or_default();
            let _ = writeln!(out, "    - {col}{}{fix}", f.message);
        }
    }
    if !t.suggestions.is_empty() {
        let _ = writeln!(out, "  Suggestions:");
        for f in &t.suggestions {
            let col = f
                .column
                .as_ref()
                .map(|c| format!("{c}: "))
                .unwrap_or_default();
            let _ = writeln!(out, "    - {col}{}", f.message);
        }
    }
    let _ = writeln!(out);
}
