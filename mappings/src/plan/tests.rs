//! Planning against a hand-built catalog.

use std::collections::BTreeMap;

use super::*;
use crate::catalog::SourceVectorIndex;
use crate::parse::parse_mapping;
use crate::render::{InitOptions, render_mapping};
use crate::types::PgKind as K;

fn col(name: &str, display: &str, kind: K, nullable: bool) -> SourceColumn {
    SourceColumn {
        name: name.into(),
        pg_type: PgType::new(display, kind),
        nullable,
        generated: false,
    }
}

fn catalog() -> Vec<SourceTable> {
    vec![
        SourceTable {
            name: QualifiedName::new("public", "items"),
            columns: vec![
                col("id", "integer", K::Int4, false),
                col("title", "text", K::Text, true),
                col("embedding", "vector(3)", K::Vector { dim: Some(3) }, true),
                col("qty", "integer", K::Int4, true),
                col("blob", "bytea", K::Bytea, true),
            ],
            primary_key: vec!["id".into()],
            partitioned: false,
            estimated_rows: Some(10),
            estimated_bytes: None,
            vector_indexes: vec![SourceVectorIndex {
                name: "items_embedding_idx".into(),
                column: "embedding".into(),
                method: VectorIndexMethod::Hnsw,
                metric: Some(Metric::L2),
                opclass: "vector_l2_ops".into(),
                options: BTreeMap::from([("m".into(), "24".into())]),
            }],
        },
        SourceTable {
            name: QualifiedName::new("kb", "Doc Chunks"),
            columns: vec![
                col("doc", "integer", K::Int4, false),
                col("chunk", "integer", K::Int4, false),
                col("id", "text", K::Text, true),
                col("h", "halfvec(2)", K::HalfVec { dim: Some(2) }, true),
            ],
            primary_key: vec!["doc".into(), "chunk".into()],
            partitioned: false,
            estimated_rows: None,
            estimated_bytes: None,
            vector_indexes: vec![],
        },
    ]
}

fn plan_of(tables_yaml: &str) -> Result<Plan, MappingError> {
    let text = format!(
        "version: 1\nsource:\n  postgres: postgres://x@h/db\ntarget:\n  engine: ./data\ntables:\n{tables_yaml}"
    );
    let parsed = parse_mapping(&text, "m.yaml", &|_| None)?;
    build_plan(&parsed, &catalog())
}

#[test]
fn defaults_follow_the_rules_and_copy_the_source_index() {
    let plan = plan_of("  - source: public.items\n    exclude: [blob]\n").unwrap();
    let t = &plan.tables[0];
    assert_eq!(t.collection, "items");
    assert_eq!(
        t.primary_key,
        PrimaryKey::Column {
            field: "id".into(),
            column: "id".into()
        }
    );
    assert_eq!(t.fields[0].data_type, Some(DataType::Int64));
    assert!(t.fields[0].primary_key && !t.fields[0].nullable);
    let emb = t.fields.iter().find(|f| f.name == "embedding").unwrap();
    let ix = emb.index.as_ref().unwrap();
    assert_eq!(
        (ix.index_type, ix.metric),
        (IndexType::Hnsw, Some(Metric::L2))
    );
    assert_eq!(ix.hnsw.unwrap().m, 24);
    assert_eq!(ix.hnsw.unwrap().ef_construction, 64);
    assert!(t.required_fixes.is_empty());
}

#[test]
fn bytea_is_listed_as_a_required_fix() {
    let plan = plan_of("  - source: public.items\n").unwrap();
    assert!(plan.has_required_fixes());
    assert_eq!(
        plan.tables[0].required_fixes[0].column.as_deref(),
        Some("blob")
    );
}

#[test]
fn composite_key_gets_an_auto_id_with_a_fresh_name() {
    let plan = plan_of("  - source: kb.\"Doc Chunks\"\n").unwrap();
    let t = &plan.tables[0];
    assert_eq!(t.collection, "Doc_Chunks");
    // `id` is a column already, so the auto ID is `_id`.
    assert_eq!(
        t.primary_key,
        PrimaryKey::Auto {
            field: "_id".into()
        }
    );
    assert!(t.fields[0].auto_id);
    assert_eq!(t.source_key, vec!["doc".to_string(), "chunk".to_string()]);
    assert!(t.fields.iter().any(|f| f.name == "doc" && !f.primary_key));
    let h = t.fields.iter().find(|f| f.name == "h").unwrap();
    assert_eq!(h.index.as_ref().unwrap().metric, Some(Metric::Cosine));
}

#[test]
fn unknown_table_and_column_are_located_with_suggestions() {
    let err = plan_of("  - source: public.itemz\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "m.yaml:7:5: table `public.itemz` does not exist in the source; did you mean `public.items`?"
    );
    let err =
        plan_of("  - source: public.items\n    fields:\n      - source: titel\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "m.yaml:9:9: column `titel` does not exist in table `public.items`; did you mean `title`?"
    );
    let err = plan_of("  - source: public.items\n    exclude: [blobb]\n").unwrap_err();
    assert!(err.to_string().contains("column `blobb`"), "{err}");
}

#[test]
fn incompatible_override_is_refused_with_the_reason() {
    let err = plan_of("  - source: public.items\n    exclude: [blob]\n    fields:\n      - source: title\n        type: FLOAT_VECTOR\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("m.yaml:11:9:"), "{msg}");
    assert!(
        msg.contains("`text` and cannot become FLOAT_VECTOR"),
        "{msg}"
    );
}

#[test]
fn allowed_override_and_field_settings_apply() {
    let plan = plan_of(
        "  - source: public.items\n    exclude: [blob]\n    fields:\n      - source: qty\n        type: INT64\n      - source: title\n        name: headline\n        max_length: 512\n        nullable: true\n        default: \"\"\n",
    )
    .unwrap();
    let t = &plan.tables[0];
    let qty = t.fields.iter().find(|f| f.name == "qty").unwrap();
    assert_eq!(qty.data_type, Some(DataType::Int64));
    let h = t.fields.iter().find(|f| f.name == "headline").unwrap();
    assert_eq!(
        (h.max_length, h.default.clone()),
        (Some(512), Some(serde_json::json!("")))
    );
}

#[test]
fn bad_index_settings_are_refused() {
    let base = "  - source: public.items\n    exclude: [blob]\n    fields:\n      - source: embedding\n        index: ";
    let err = plan_of(&format!("{base}{{ type: HNSW, metric: HAMMING }}\n")).unwrap_err();
    assert!(
        err.to_string()
            .contains("FLOAT_VECTOR fields take L2, IP, COSINE"),
        "{err}"
    );
    let err = plan_of(&format!("{base}{{ type: HNSW, metric: COSIN }}\n")).unwrap_err();
    assert!(err.to_string().contains("did you mean `COSINE`"), "{err}");
    let err = plan_of(&format!(
        "{base}{{ type: HNSW, params: {{ efconstruction: 100 }} }}\n"
    ))
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown key `efconstruction`"),
        "{err}"
    );
    let err = plan_of(&format!("{base}{{ type: HNSW, params: {{ M: 1000 }} }}\n")).unwrap_err();
    assert!(err.to_string().contains("from 4 to 64"), "{err}");
    let err = plan_of(&format!("{base}{{ type: BIN_FLAT }}\n")).unwrap_err();
    assert!(err.to_string().contains("does not apply"), "{err}");
}

#[test]
fn auto_id_false_without_a_key_is_a_required_fix() {
    let plan = plan_of("  - source: kb.\"Doc Chunks\"\n    auto_id: false\n").unwrap();
    assert!(plan.has_required_fixes());
}

#[test]
fn init_output_parses_back_into_the_same_plan() {
    let text = "version: 1\nsource:\n  postgres: postgres://x@h/db\ntarget:\n  engine: ./data\n";
    let parsed = parse_mapping(text, "m.yaml", &|_| None).unwrap();
    let plan = build_plan(&parsed, &catalog()).unwrap();
    let opts = InitOptions {
        source_key: "postgres".into(),
        source_value: "postgres://x@h/db".into(),
        target: "./data".into(),
        column_notes: Default::default(),
    };
    let rendered = render_mapping(&plan, &opts);
    let reparsed = parse_mapping(&rendered, "init.yaml", &|_| None)
        .unwrap_or_else(|e| panic!("{e}\n{rendered}"));
    let again = build_plan(&reparsed, &catalog()).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
    assert_eq!(again.tables.len(), plan.tables.len());
    for (a, b) in again.tables.iter().zip(&plan.tables) {
        assert_eq!(a.collection, b.collection);
        assert_eq!(a.primary_key, b.primary_key);
        assert_eq!(a.required_fixes.len(), b.required_fixes.len());
        let fa: Vec<_> = a
            .fields
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    f.type_display(),
                    f.nullable,
                    f.index.as_ref().map(|i| (i.index_type, i.metric, i.hnsw)),
                )
            })
            .collect();
        let fb: Vec<_> = b
            .fields
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    f.type_display(),
                    f.nullable,
                    f.index.as_ref().map(|i| (i.index_type, i.metric, i.hnsw)),
                )
            })
            .collect();
        assert_eq!(fa, fb, "\n{rendered}");
    }
}

#[test]
fn an_ivfflat_source_index_keeps_its_kind_lists_and_probes() {
    let mut cat = catalog();
    cat[0].vector_indexes = vec![SourceVectorIndex {
        name: "items_ivf".into(),
        column: "embedding".into(),
        method: VectorIndexMethod::Ivfflat,
        metric: Some(Metric::Cosine),
        opclass: "vector_cosine_ops".into(),
        options: BTreeMap::from([
            ("lists".into(), "250".into()),
            ("probes".into(), "12".into()),
        ]),
    }];
    let text = "version: 1\nsource:\n  postgres: postgres://x@h/db\ntarget:\n  engine: ./data\ntables:\n  - source: public.items\n    exclude: [blob]\n";
    let parsed = parse_mapping(text, "m.yaml", &|_| None).unwrap();
    let plan = build_plan(&parsed, &cat).unwrap();
    let emb = plan.tables[0]
        .fields
        .iter()
        .find(|f| f.name == "embedding")
        .unwrap();
    let ix = emb.index.as_ref().unwrap();
    assert_eq!(ix.index_type, IndexType::IvfFlat);
    assert_eq!(ix.metric, Some(Metric::Cosine));
    assert_eq!(
        ix.ivf,
        Some(crate::plan::IvfParams {
            nlist: 250,
            nprobe: 12
        })
    );
    assert_eq!(ix.to_string(), "IVF_FLAT(COSINE, nlist=250, nprobe=12)");
    // The mapping may set them too, and nprobe may not exceed nlist.
    let ok = plan_of("  - source: public.items\n    exclude: [blob]\n    fields:\n      - source: embedding\n        index: { type: IVF_FLAT, metric: L2, params: { nlist: 64, nprobe: 8 } }\n").unwrap();
    let f = ok.tables[0]
        .fields
        .iter()
        .find(|f| f.name == "embedding")
        .unwrap();
    assert_eq!(f.index.as_ref().unwrap().ivf.unwrap().nlist, 64);
    let bad = plan_of(
        "  - source: public.items\n    exclude: [blob]\n    fields:\n      - source: embedding\n        index: { type: IVF_FLAT, params: { nlist: 4, nprobe: 8 } }\n",
    );
    assert!(bad.unwrap_err().to_string().contains("nlist"));
}

#[test]
fn tables_of_one_name_in_two_schemas_are_a_required_fix_naming_both() {
    let mut cat = catalog();
    let mut other = cat[0].clone();
    other.name = QualifiedName::new("vecs", "items");
    cat.push(other);
    let text = "version: 1\nsource:\n  postgres: postgres://x@h/db\ntarget:\n  engine: ./data\ntables:\n  - source: public.items\n    exclude: [blob]\n  - source: vecs.items\n    exclude: [blob]\n";
    let parsed = parse_mapping(text, "m.yaml", &|_| None).unwrap();
    let plan = build_plan(&parsed, &cat).unwrap();
    assert!(plan.has_required_fixes());
    let fix = &plan.tables[1].required_fixes[0];
    assert!(
        fix.message.contains("public.items") && fix.message.contains("vecs.items"),
        "{}",
        fix.message
    );
    assert!(
        fix.fix
            .as_deref()
            .unwrap_or("")
            .contains("collection: vecs_items"),
        "{:?}",
        fix.fix
    );
    assert!(plan.tables[0].required_fixes.is_empty());
}

#[test]
fn a_generated_column_is_named_in_the_plan_with_a_way_out() {
    let mut cat = catalog();
    cat[0].columns.push(SourceColumn {
        generated: true,
        ..col(
            "text_search_tsv",
            "tsvector",
            K::Other {
                type_name: "tsvector".into(),
            },
            true,
        )
    });
    let text = "version: 1\nsource:\n  postgres: postgres://x@h/db\ntarget:\n  engine: ./data\ntables:\n  - source: public.items\n    exclude: [blob]\n";
    let parsed = parse_mapping(text, "m.yaml", &|_| None).unwrap();
    let plan = build_plan(&parsed, &cat).unwrap();
    let s = plan.tables[0]
        .suggestions
        .iter()
        .find(|f| f.column.as_deref() == Some("text_search_tsv"))
        .unwrap();
    assert!(
        s.message.contains("generated column") && s.message.contains("tsvector"),
        "{}",
        s.message
    );
    assert!(
        s.fix
            .as_deref()
            .unwrap_or("")
            .contains("exclude: [text_search_tsv]")
    );
}

#[test]
fn on_null_and_vector_defaults_are_checked_against_the_field() {
    let plan = plan_of(
        "  - source: public.items\n    exclude: [blob]\n    fields:\n      - { source: embedding, on_null: skip }\n",
    )
    .unwrap();
    let field = |p: &Plan| {
        p.tables[0]
            .fields
            .iter()
            .find(|f| f.name == "embedding")
            .cloned()
            .unwrap()
    };
    let e = field(&plan);
    assert_eq!(e.on_null, OnNull::Skip);
    // A default vector of the column's dimension is accepted; a wrong length names the key.
    let plan = plan_of(
        "  - source: public.items\n    exclude: [blob]\n    fields:\n      - { source: embedding, default: [0, 0, 1] }\n",
    )
    .unwrap();
    assert_eq!(field(&plan).default, Some(serde_json::json!([0, 0, 1])));
    let err = plan_of(
        "  - source: public.items\n    exclude: [blob]\n    fields:\n      - { source: embedding, default: [0, 1] }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("m.yaml:10") && err.contains("list of 3"),
        "{err}"
    );
    // Skip and a default exclude each other; an unknown choice is a parse error naming it.
    let err = plan_of(
        "  - source: public.items\n    exclude: [blob]\n    fields:\n      - { source: embedding, on_null: skip, default: [0, 0, 1] }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("on_null"), "{err}");
    let err = plan_of(
        "  - source: public.items\n    fields:\n      - { source: embedding, on_null: drop }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("drop") && err.contains("skip"), "{err}");
}
