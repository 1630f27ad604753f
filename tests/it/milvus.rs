//! The Milvus client against a real Milvus 2.3.5 (the `milvus` PyPI package, started once for
//! the test run): version, schema, column inserts of every scalar kind and float vectors,
//! an HNSW index, load, search and query; a server that is not there is one clear error.

use etl_connectors::ConnectorError;
use etl_connectors::milvus::MilvusClient;
use etl_connectors::milvus::proto::{
    ArrayArray, BytesArray, CollectionSchema, Field, FieldData, FieldSchema, FloatArray, IdField,
    KeyValuePair, LongArray, ScalarField, Scalars, StringArray, VectorField, Vectors, data_type,
};

use crate::support::milvus_url;

fn kv(k: &str, v: &str) -> KeyValuePair {
    KeyValuePair {
        key: k.into(),
        value: v.into(),
    }
}

fn field(name: &str, t: i32) -> FieldSchema {
    FieldSchema {
        name: name.into(),
        data_type: t,
        ..Default::default()
    }
}

fn scalars(name: &str, t: i32, data: Scalars) -> FieldData {
    FieldData {
        r#type: t,
        field_name: name.into(),
        field: Some(Field::Scalars(ScalarField { data: Some(data) })),
        is_dynamic: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_milvus_takes_inserts_builds_an_index_and_searches() {
    let (client, version) = crate::support::milvus_client().await;
    assert!(version.starts_with("v2.3"), "{version}");
    let name = format!("it_client_{}", std::process::id());
    if client.has_collection(&name).await.unwrap() {
        client.drop_collection(&name).await.unwrap();
    }
    let schema = CollectionSchema {
        name: name.clone(),
        description: "etl test".into(),
        auto_id: false,
        enable_dynamic_field: false,
        fields: vec![
            FieldSchema {
                is_primary_key: true,
                ..field("id", data_type::INT64)
            },
            FieldSchema {
                type_params: vec![kv("dim", "4")],
                ..field("v", data_type::FLOAT_VECTOR)
            },
            FieldSchema {
                type_params: vec![kv("max_length", "32")],
                ..field("title", data_type::VARCHAR)
            },
            field("meta", data_type::JSON),
            FieldSchema {
                element_type: data_type::INT64,
                type_params: vec![kv("max_capacity", "4")],
                ..field("tags", data_type::ARRAY)
            },
        ],
    };
    client.create_collection(&schema, 1).await.unwrap();
    let got = client.describe_collection(&name).await.unwrap();
    assert_eq!(got.fields.len(), 5);
    assert!(client.list_collections().await.unwrap().contains(&name));

    let n = 200i64;
    let vectors: Vec<f32> = (0..n)
        .flat_map(|i| [i as f32, 1.0, (i % 7) as f32, -(i as f32)])
        .collect();
    let fields = vec![
        scalars(
            "id",
            data_type::INT64,
            Scalars::Long(LongArray {
                data: (0..n).collect(),
            }),
        ),
        FieldData {
            r#type: data_type::FLOAT_VECTOR,
            field_name: "v".into(),
            field: Some(Field::Vectors(VectorField {
                dim: 4,
                data: Some(Vectors::Float(FloatArray { data: vectors })),
            })),
            is_dynamic: false,
        },
        scalars(
            "title",
            data_type::VARCHAR,
            Scalars::String(StringArray {
                data: (0..n).map(|i| format!("t{i}")).collect(),
            }),
        ),
        scalars(
            "meta",
            data_type::JSON,
            Scalars::Json(BytesArray {
                data: (0..n)
                    .map(|i| format!("{{\"odd\": {}}}", i % 2 == 1).into_bytes())
                    .collect(),
            }),
        ),
        scalars(
            "tags",
            data_type::ARRAY,
            Scalars::Array(ArrayArray {
                data: (0..n)
                    .map(|i| ScalarField {
                        data: Some(Scalars::Long(LongArray {
                            data: vec![i, i + 1],
                        })),
                    })
                    .collect(),
                element_type: data_type::INT64,
            }),
        ),
    ];
    assert_eq!(client.insert(&name, fields, n as u32).await.unwrap(), n);
    client.flush(&name).await.unwrap();
    client
        .create_index(
            &name,
            "v",
            vec![
                ("index_type".into(), "HNSW".into()),
                ("metric_type".into(), "L2".into()),
                ("params".into(), "{\"M\": 8, \"efConstruction\": 64}".into()),
            ],
        )
        .await
        .unwrap();
    client.load(&name).await.unwrap();

    let counted = client
        .query(&name, "", &["count(*)".to_string()], None)
        .await
        .unwrap();
    let count = match counted[0].field.as_ref() {
        Some(Field::Scalars(ScalarField {
            data: Some(Scalars::Long(l)),
        })) => l.data[0],
        other => panic!("{other:?}"),
    };
    assert_eq!(count, n);
    let rows = client
        .query(
            &name,
            "id in [3, 4] and meta[\"odd\"] == true",
            &["title".to_string()],
            None,
        )
        .await
        .unwrap();
    let titles = rows.iter().find(|f| f.field_name == "title").unwrap();
    match titles.field.as_ref() {
        Some(Field::Scalars(ScalarField {
            data: Some(Scalars::String(s)),
        })) => assert_eq!(s.data, vec!["t3"]),
        other => panic!("{other:?}"),
    }
    let hit = client
        .search(
            &name,
            "v",
            &[vec![42.0, 1.0, 0.0, -42.0]],
            3,
            "L2",
            "{\"ef\": 32}",
            "",
            &[],
        )
        .await
        .unwrap();
    match hit.ids.and_then(|i| i.id_field) {
        Some(IdField::Int(l)) => assert_eq!(l.data[0], 42, "{:?}", l.data),
        other => panic!("{other:?}"),
    }
    client.drop_collection(&name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_one_clear_error() {
    let e = MilvusClient::connect("http://127.0.0.1:9")
        .await
        .unwrap_err();
    assert!(matches!(e, ConnectorError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains("127.0.0.1:9"), "{e}");
}

/// A mapping for `url`'s tables into the test Milvus.
fn milvus_mapping(dir: &std::path::Path, url: &str, tables: &[&str]) -> std::path::PathBuf {
    let mut m = format!(
        "version: 1\nsource:\n  postgres: '{url}'\ntarget:\n  milvus: '{}'\ntables:\n",
        milvus_url()
    );
    for t in tables {
        m.push_str(&format!(
            "  - source: {t}\n    collection: {}_{}\n",
            t.replace("public.", ""),
            std::process::id()
        ));
    }
    crate::support::write(dir, "milvus.yaml", &m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etl_run_loads_milvus_and_refuses_what_its_version_cannot_hold() {
    use crate::run::{etl_pw, password};
    use crate::support::{fresh_db, query_rows, sql, stderr, stdout};
    let url = fresh_db("milvus_run");
    sql(
        &url,
        "CREATE TABLE docs (id bigint PRIMARY KEY, cat text, n int, price numeric(10,2), day date, tags text[], attrs jsonb, emb vector(8));
         INSERT INTO docs SELECT i, CASE WHEN i % 5 = 0 THEN NULL ELSE 'c' || (i % 3) END, i, i * 1.5, DATE '2024-01-01' + i,
           ARRAY['t' || (i % 4), 'all'], jsonb_build_object('k', i % 2), ARRAY(SELECT sin(i * k + k) FROM generate_series(1, 8) k)::real[]::vector
         FROM generate_series(1, 2000) i;
         CREATE TABLE chunks (doc int, seq int, body text, emb vector(4), PRIMARY KEY (doc, seq));
         INSERT INTO chunks SELECT d, s, 'b', ARRAY[d, s, 1, 0]::real[]::vector FROM generate_series(1, 50) d, generate_series(1, 3) s;
         CREATE TABLE sigs (id int PRIMARY KEY, sig bit(16) NOT NULL);
         INSERT INTO sigs SELECT i, (i * 37)::bit(16) FROM generate_series(1, 100) i;
         CREATE TABLE halves (id int PRIMARY KEY, h halfvec(4));
         INSERT INTO halves VALUES (1, '[1,2,3,4]');",
    );
    let dir = tempfile::tempdir().unwrap();
    let m = milvus_mapping(
        dir.path(),
        &url,
        &["public.docs", "public.chunks", "public.sigs"],
    );
    let o = etl_pw(
        &url,
        &[
            "run",
            m.to_str().unwrap(),
            "--quiet",
            "--format",
            "json",
            "--recreate",
        ],
    );
    assert!(o.status.success(), "{}\n{}", stderr(&o), stdout(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    for (t, n) in [
        ("public.docs", 2000),
        ("public.chunks", 150),
        ("public.sigs", 100),
    ] {
        let r = report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["table"] == t)
            .unwrap();
        assert_eq!(r["collection_rows"], n, "{t}: {r}");
    }
    // Search through the server's HNSW index against pgvector's exact neighbours.
    let (client, _) = crate::support::milvus_client().await;
    let coll = format!("docs_{}", std::process::id());
    let mut hits = 0;
    let queries = [7i64, 300, 1234, 1999];
    for q in queries {
        let want = query_rows(
            &url,
            &format!(
                "SELECT id, (emb <=> (SELECT emb FROM docs WHERE id = {q}))::float8 FROM docs ORDER BY 2, id LIMIT 10"
            ),
        );
        let qv: Vec<f32> = (1..=8).map(|k| ((q * k + k) as f64).sin() as f32).collect();
        let got = client
            .search(&coll, "emb", &[qv], 10, "COSINE", "{\"ef\": 64}", "", &[])
            .await
            .unwrap();
        let ids = match got.ids.and_then(|i| i.id_field) {
            Some(IdField::Int(l)) => l.data,
            other => panic!("{other:?}"),
        };
        hits += want.iter().filter(|(id, _)| ids.contains(id)).count();
    }
    let recall = hits as f64 / (10 * queries.len()) as f64;
    assert!(recall >= 0.95, "recall@10 {recall}");
    // The schema as created: the composite key became an auto ID, the key columns stay fields.
    let chunks = client
        .describe_collection(&format!("chunks_{}", std::process::id()))
        .await
        .unwrap();
    assert!(
        chunks.fields.iter().any(|f| f.is_primary_key && f.auto_id),
        "{chunks:?}"
    );
    assert!(chunks.fields.iter().any(|f| f.name == "doc"));

    // `etl collections` against the Milvus target.
    let target = milvus_url().replacen("http://", "milvus://", 1);
    let o = etl_pw(
        &url,
        &[
            "collections",
            "list",
            "--target",
            &target,
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("docs_{}", std::process::id())),
        "{}",
        stdout(&o)
    );
    let o = etl_pw(
        &url,
        &[
            "collections",
            "describe",
            "--target",
            &target,
            &format!("sigs_{}", std::process::id()),
        ],
    );
    assert!(
        o.status.success() && stdout(&o).contains("\"sig\""),
        "{}\n{}",
        stdout(&o),
        stderr(&o)
    );

    // Release and load again through the CLI.
    for verb in ["release", "load"] {
        let o = etl_pw(
            &url,
            &[
                "collections",
                verb,
                "--target",
                &target,
                &format!("sigs_{}", std::process::id()),
            ],
        );
        assert!(o.status.success(), "{verb}: {}", stderr(&o));
    }

    // Again without --recreate: refused, nothing changed.
    let o = etl_pw(&url, &["run", m.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("already exists") && stderr(&o).contains("--recreate"),
        "{}",
        stderr(&o)
    );

    // FLOAT16 on a 2.3 server: `etl plan` shows it as a required fix, and `etl run` refuses
    // it before anything is written.
    let m2 = milvus_mapping(dir.path(), &url, &["public.halves"]);
    let o = etl_pw(&url, &["plan", m2.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("FLOAT16_VECTOR") && stdout(&o).contains("v2.3"),
        "{}",
        stdout(&o)
    );
    let o = etl_pw(
        &url,
        &["run", m2.to_str().unwrap(), "--quiet", "--recreate"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("FLOAT16_VECTOR") && err.contains("v2.3"),
        "{err}"
    );
    assert!(
        !client
            .has_collection(&format!("halves_{}", std::process::id()))
            .await
            .unwrap()
    );
    let _ = password(&url);
    for t in ["docs", "chunks", "sigs"] {
        client
            .drop_collection(&format!("{t}_{}", std::process::id()))
            .await
            .unwrap();
    }
}
