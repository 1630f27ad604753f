//! Collection tests: recall against brute force, key replacement, filters in searches,
//! persistence without rebuilds, and interrupted writes.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeBinaryArray, FixedSizeListArray, Float16Array, Float32Array, Int64Array,
    ListArray, RecordBatch, StringArray, StructArray,
};
use arrow::datatypes::{DataType, Field as ArrowField, Int32Type};
use serde_json::json;

use crate::index::{HnswParams, IndexSpec, IndexType};
use crate::schema::{CollectionSchema, Field, FieldType, sparse_fields};
use crate::vector::{Metric, QueryVector, binary_distance, dense_distance, sparse_distance};
use crate::{Database, SearchRequest};

/// xorshift: deterministic data without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f32(&mut self) -> f32 {
        (self.next() % 20_000) as f32 / 10_000.0 - 1.0
    }
}

fn schema(vector: FieldType, dim: u32) -> CollectionSchema {
    CollectionSchema {
        fields: vec![
            Field {
                primary_key: true,
                ..Field::new("id", FieldType::Int64)
            },
            Field {
                max_length: Some(16),
                nullable: true,
                ..Field::new("cat", FieldType::Varchar)
            },
            Field {
                dim: (vector != FieldType::SparseFloatVector).then_some(dim),
                ..Field::new("v", vector)
            },
        ],
        auto_id: false,
        dynamic_field: false,
        shards: 1,
        description: String::new(),
    }
}

fn dense_batch(
    ids: std::ops::Range<i64>,
    dim: usize,
    half: bool,
    rng: &mut Rng,
) -> (RecordBatch, Vec<Vec<f32>>) {
    let n = ids.end - ids.start;
    let vecs: Vec<Vec<f32>> = (0..n)
        .map(|_| (0..dim).map(|_| rng.f32()).collect())
        .collect();
    let flat: Vec<f32> = vecs.iter().flatten().copied().collect();
    let (values, item): (ArrayRef, DataType) = if half {
        (
            Arc::new(Float16Array::from_iter_values(
                flat.iter().map(|x| half::f16::from_f32(*x)),
            )),
            DataType::Float16,
        )
    } else {
        (Arc::new(Float32Array::from(flat)), DataType::Float32)
    };
    let v = FixedSizeListArray::new(
        Arc::new(ArrowField::new("item", item, false)),
        dim as i32,
        values,
        None,
    );
    let cats: Vec<String> = ids.clone().map(|i| format!("c{}", i % 10)).collect();
    let batch = RecordBatch::try_from_iter(vec![
        (
            "id",
            Arc::new(Int64Array::from_iter_values(ids)) as ArrayRef,
        ),
        ("cat", Arc::new(StringArray::from(cats)) as ArrayRef),
        ("v", Arc::new(v) as ArrayRef),
    ])
    .unwrap();
    // What the engine stores: FLOAT16 rounds.
    let stored = if half {
        vecs.iter()
            .map(|v| v.iter().map(|x| half::f16::from_f32(*x).to_f32()).collect())
            .collect()
    } else {
        vecs
    };
    (batch, stored)
}

fn load(
    db: &Database,
    name: &str,
    schema: CollectionSchema,
    batches: &[RecordBatch],
    segment_rows: u64,
) -> crate::Collection {
    let c = db.ensure_collection(name, schema).unwrap();
    let mut w = c.writer().unwrap().with_segment_rows(segment_rows);
    for b in batches {
        w.write(b).unwrap();
    }
    w.commit(BTreeMap::new()).unwrap();
    c
}

fn brute(vecs: &[Vec<f32>], q: &[f32], metric: Metric, k: usize) -> Vec<(i64, f32)> {
    let mut all: Vec<(i64, f32)> = vecs
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64, dense_distance(metric, q, v)))
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1));
    all.truncate(k);
    all
}

const ROWS: i64 = 3_000;
const DIM: usize = 24;
const QUERIES: usize = 40;
const K: usize = 10;

#[test]
fn hnsw_recall_for_every_metric_and_float_type() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    for half in [false, true] {
        for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ metric as u64);
            let t = if half {
                FieldType::Float16Vector
            } else {
                FieldType::FloatVector
            };
            let name = format!(
                "r_{}_{}",
                if half { "h" } else { "f" },
                metric.name().to_lowercase()
            );
            // Two segments, so hits merge across them.
            let (batch, vecs) = dense_batch(0..ROWS, DIM, half, &mut rng);
            let c = load(
                &db,
                &name,
                schema(t, DIM as u32),
                &[batch],
                (ROWS / 2) as u64,
            );
            let spec = IndexSpec {
                ivf: None,
                index_type: IndexType::Hnsw,
                metric: Some(metric),
                hnsw: Some(HnswParams {
                    m: 16,
                    ef_construction: 100,
                }),
            };
            c.create_index("v", spec, &|_| {}).unwrap();
            let mut misses = 0;
            for _ in 0..QUERIES {
                let q: Vec<f32> = (0..DIM).map(|_| rng.f32()).collect();
                let truth = brute(&vecs, &q, metric, K);
                let req = SearchRequest {
                    vectors: vec![json!(q)],
                    limit: K,
                    ef: Some(64),
                    ..Default::default()
                };
                let hits = &c.search(&req).unwrap()[0];
                assert_eq!(hits.len(), K);
                let want: HashSet<i64> = truth.iter().map(|t| t.0).collect();
                for h in hits {
                    let id = h.id.as_i64().unwrap();
                    // Distances are pgvector's, computed exactly.
                    let exact = dense_distance(metric, &q, &vecs[id as usize]);
                    assert!(
                        (h.distance - exact).abs() < 1e-3,
                        "{name}: distance {} vs {exact}",
                        h.distance
                    );
                    if !want.contains(&id) {
                        misses += 1;
                    }
                }
            }
            // Recall@10 ≥ 0.95: at most 20 misses out of 400.
            assert!(
                misses <= QUERIES * K / 20,
                "{name}: {misses} misses of {}",
                QUERIES * K
            );
        }
    }
}

#[test]
fn flat_is_exact_and_filters_return_limit_hits() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut rng = Rng(7);
    let (batch, vecs) = dense_batch(0..2_000, 16, false, &mut rng);
    let c = load(&db, "f", schema(FieldType::FloatVector, 16), &[batch], 700);
    let q: Vec<f32> = (0..16).map(|_| rng.f32()).collect();
    // No index: exact, every metric.
    for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
        let req = SearchRequest {
            vectors: vec![json!(q)],
            limit: 5,
            metric: Some(metric),
            ..Default::default()
        };
        let got: Vec<i64> = c.search(&req).unwrap()[0]
            .iter()
            .map(|h| h.id.as_i64().unwrap())
            .collect();
        let want: Vec<i64> = brute(&vecs, &q, metric, 5).iter().map(|t| t.0).collect();
        assert_eq!(got, want, "{metric}");
    }
    c.create_index(
        "v",
        IndexSpec {
            ivf: None,
            index_type: IndexType::Hnsw,
            metric: Some(Metric::L2),
            hnsw: None,
        },
        &|_| {},
    )
    .unwrap();
    // A selective filter (1 row in 100 passes) still yields `limit` hits, all passing, exact.
    let req = SearchRequest {
        vectors: vec![json!(q)],
        limit: 10,
        filter: Some("cat == \"c3\" and id < 1000".into()),
        ..Default::default()
    };
    let hits = &c.search(&req).unwrap()[0];
    assert_eq!(hits.len(), 10);
    let mut want: Vec<(i64, f32)> = vecs
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 == 3 && *i < 1000)
        .map(|(i, v)| (i as i64, dense_distance(Metric::L2, &q, v)))
        .collect();
    want.sort_by(|a, b| a.1.total_cmp(&b.1));
    assert_eq!(
        hits.iter()
            .map(|h| h.id.as_i64().unwrap())
            .collect::<Vec<_>>(),
        want.iter().take(10).map(|w| w.0).collect::<Vec<_>>()
    );
    // A broad filter goes through the graph and still fills the page.
    let req = SearchRequest {
        vectors: vec![json!(q)],
        limit: 10,
        filter: Some("cat != \"c3\"".into()),
        output_fields: vec!["cat".into()],
        ..Default::default()
    };
    let hits = &c.search(&req).unwrap()[0];
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| h.fields["cat"] != json!("c3")));
    // Offset pages through the same order; radius cuts by distance.
    let all = &c
        .search(&SearchRequest {
            vectors: vec![json!(q)],
            limit: 20,
            metric: None,
            ..Default::default()
        })
        .unwrap()[0];
    let page2 = &c
        .search(&SearchRequest {
            vectors: vec![json!(q)],
            limit: 10,
            offset: 10,
            ..Default::default()
        })
        .unwrap()[0];
    assert_eq!(
        all[10..].iter().map(|h| &h.id).collect::<Vec<_>>(),
        page2.iter().map(|h| &h.id).collect::<Vec<_>>()
    );
    let radius = all[4].distance;
    let within = &c
        .search(&SearchRequest {
            vectors: vec![json!(q)],
            limit: 20,
            radius: Some(radius),
            ..Default::default()
        })
        .unwrap()[0];
    assert!(within.len() <= 4 && within.iter().all(|h| h.distance < radius));
    // The index's metric is the only one a search may use.
    let err = c
        .search(&SearchRequest {
            vectors: vec![json!(q)],
            metric: Some(Metric::Ip),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("indexed with L2"), "{err}");
    let err = c
        .search(&SearchRequest {
            vectors: vec![json!([1.0, 2.0])],
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("2 dimensions"), "{err}");
}

#[test]
fn binary_and_sparse_match_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut rng = Rng(11);
    let n = 500usize;
    // Binary, 64 bits.
    let bits: Vec<[u8; 8]> = (0..n).map(|_| rng.next().to_be_bytes()).collect();
    let b = FixedSizeBinaryArray::try_from_iter(bits.iter()).unwrap();
    let batch = RecordBatch::try_from_iter(vec![
        (
            "id",
            Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
        ),
        ("v", Arc::new(b) as ArrayRef),
    ])
    .unwrap();
    let c = load(&db, "b", schema(FieldType::BinaryVector, 64), &[batch], 200);
    let q = rng.next().to_be_bytes();
    let qbits: String = q.iter().map(|b| format!("{b:08b}")).collect();
    for metric in [Metric::Hamming, Metric::Jaccard] {
        c.create_index(
            "v",
            IndexSpec {
                ivf: None,
                index_type: IndexType::BinFlat,
                metric: Some(metric),
                hnsw: None,
            },
            &|_| {},
        )
        .unwrap();
        let hits = &c
            .search(&SearchRequest {
                vectors: vec![json!(qbits)],
                limit: 7,
                ..Default::default()
            })
            .unwrap()[0];
        let mut want: Vec<f32> = bits
            .iter()
            .map(|v| binary_distance(metric, &q, v))
            .collect();
        want.sort_by(f32::total_cmp);
        assert_eq!(
            hits.iter().map(|h| h.distance).collect::<Vec<_>>(),
            want[..7].to_vec(),
            "{metric}"
        );
    }
    // Sparse, up to 6 of 40 dimensions per row.
    let rows: Vec<Vec<(i32, f32)>> = (0..n)
        .map(|_| {
            let mut d: Vec<i32> = (0..(rng.next() % 6 + 1))
                .map(|_| (rng.next() % 40) as i32)
                .collect();
            d.sort();
            d.dedup();
            d.into_iter().map(|i| (i, rng.f32())).collect()
        })
        .collect();
    let idx = ListArray::from_iter_primitive::<Int32Type, _, _>(
        rows.iter()
            .map(|r| Some(r.iter().map(|p| Some(p.0)).collect::<Vec<_>>())),
    );
    let val = ListArray::from_iter_primitive::<arrow::datatypes::Float32Type, _, _>(
        rows.iter()
            .map(|r| Some(r.iter().map(|p| Some(p.1)).collect::<Vec<_>>())),
    );
    let s = StructArray::try_new(
        sparse_fields(),
        vec![
            Arc::new(conform_list(idx, DataType::Int32)),
            Arc::new(conform_list(val, DataType::Float32)),
        ],
        None,
    )
    .unwrap();
    let batch = RecordBatch::try_from_iter(vec![
        (
            "id",
            Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
        ),
        ("v", Arc::new(s) as ArrayRef),
    ])
    .unwrap();
    let c = load(
        &db,
        "s",
        schema(FieldType::SparseFloatVector, 0),
        &[batch],
        200,
    );
    let qv = json!({"3": 0.5, "17": -1.0, "30": 2.0});
    let QueryVector::Sparse {
        indices: qi,
        values: qvals,
    } = QueryVector::from_json(&Field::new("v", FieldType::SparseFloatVector), &qv).unwrap()
    else {
        panic!()
    };
    let exact = &c
        .search(&SearchRequest {
            vectors: vec![qv.clone()],
            limit: 5,
            ..Default::default()
        })
        .unwrap()[0];
    c.create_index(
        "v",
        IndexSpec {
            ivf: None,
            index_type: IndexType::SparseInvertedIndex,
            metric: None,
            hnsw: None,
        },
        &|_| {},
    )
    .unwrap();
    let indexed = &c
        .search(&SearchRequest {
            vectors: vec![qv],
            limit: 5,
            ..Default::default()
        })
        .unwrap()[0];
    let mut want: Vec<f32> = rows
        .iter()
        .map(|r| {
            sparse_distance(
                &qi,
                &qvals,
                &r.iter().map(|p| p.0).collect::<Vec<_>>(),
                &r.iter().map(|p| p.1).collect::<Vec<_>>(),
            )
        })
        .collect();
    want.sort_by(f32::total_cmp);
    assert_eq!(
        exact.iter().map(|h| h.distance).collect::<Vec<_>>(),
        want[..5].to_vec()
    );
    assert_eq!(
        indexed.iter().map(|h| h.distance).collect::<Vec<_>>(),
        want[..5].to_vec()
    );
}

fn conform_list(l: ListArray, item: DataType) -> ListArray {
    let (_, offsets, values, nulls) = l.into_parts();
    ListArray::new(
        Arc::new(ArrowField::new("item", item, false)),
        offsets,
        values,
        nulls,
    )
}

#[test]
fn loading_a_key_again_replaces_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut rng = Rng(3);
    let (first, _) = dense_batch(0..100, 4, false, &mut rng);
    let c = load(
        &db,
        "k",
        schema(FieldType::FloatVector, 4),
        std::slice::from_ref(&first),
        1_000,
    );
    load(&db, "k", schema(FieldType::FloatVector, 4), &[first], 1_000);
    assert_eq!(c.count_rows(), 100);
    // Rows 50..150: 50 replaced, 50 new; a duplicate key inside one load keeps the last.
    let (second, vecs) = dense_batch(50..150, 4, false, &mut rng);
    let (dup, dup_vecs) = dense_batch(149..150, 4, false, &mut rng);
    let mut w = c.writer().unwrap();
    w.write(&second).unwrap();
    w.write(&dup).unwrap();
    let stats = w.commit(BTreeMap::new()).unwrap();
    assert_eq!((stats.rows, stats.replaced), (101, 50));
    assert_eq!(c.count_rows(), 150);
    let got = c.get(&[json!(60), json!(149)], &["v".into()]).unwrap();
    assert_eq!(got.len(), 2);
    let v60: Vec<f32> = serde_json::from_value(got[0]["v"].clone()).unwrap();
    assert_eq!(v60, vecs[10]);
    let v149: Vec<f32> = serde_json::from_value(got[1]["v"].clone()).unwrap();
    assert_eq!(v149, dup_vecs[0]);
    assert_eq!(c.count(Some("id >= 100")).unwrap(), 50);
}

/// A load promised unique keys keeps none into an empty collection (its parts commit without
/// pairing); into one with rows the promise is ignored and a key loaded again still replaces.
#[test]
fn a_promise_of_unique_keys_keeps_no_keys_only_into_an_empty_collection() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut rng = Rng(5);
    let c = db
        .ensure_collection("u", schema(FieldType::FloatVector, 4))
        .unwrap();
    let mut w = c.writer().unwrap().assume_unique_keys();
    for (part, range) in [("a", 0..100), ("b", 100..250)] {
        let (b, _) = dense_batch(range, 4, false, &mut rng);
        w.write_part(part, &b).unwrap();
        w.commit_part(part, BTreeMap::new()).unwrap();
        assert_eq!(w.keys_kept(), 0);
    }
    drop(w);
    assert_eq!(c.count_rows(), 250);
    // Now the collection has rows: the same promise pairs keys as usual.
    let (again, vecs) = dense_batch(200..300, 4, false, &mut rng);
    let mut w = c.writer().unwrap().assume_unique_keys();
    w.write(&again).unwrap();
    assert_eq!(w.keys_kept(), 100);
    let stats = w.commit(BTreeMap::new()).unwrap();
    assert_eq!((stats.rows, stats.replaced), (100, 50));
    assert_eq!(c.count_rows(), 300);
    let got = c.get(&[json!(220)], &["v".into()]).unwrap();
    let v: Vec<f32> = serde_json::from_value(got[0]["v"].clone()).unwrap();
    assert_eq!(v, vecs[20]);
}

#[test]
fn indexes_persist_and_are_not_rebuilt_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut rng = Rng(5);
    let (batch, _) = dense_batch(0..500, 8, false, &mut rng);
    let c = load(&db, "p", schema(FieldType::FloatVector, 8), &[batch], 1_000);
    c.create_index(
        "v",
        IndexSpec {
            ivf: None,
            index_type: IndexType::Hnsw,
            metric: Some(Metric::Cosine),
            hnsw: None,
        },
        &|_| {},
    )
    .unwrap();
    c.create_index(
        "cat",
        IndexSpec {
            ivf: None,
            index_type: IndexType::Inverted,
            metric: None,
            hnsw: None,
        },
        &|_| {},
    )
    .unwrap();
    let version = c.manifest().version;
    let q = json!((0..8).map(|_| rng.f32()).collect::<Vec<_>>());
    let before = c
        .search(&SearchRequest {
            vectors: vec![q.clone()],
            filter: Some("cat in [\"c1\", \"c2\"]".into()),
            ..Default::default()
        })
        .unwrap();
    drop(c);
    let c = Database::open(dir.path()).unwrap().collection("p").unwrap();
    let loaded = c.load().unwrap();
    assert!(loaded.memory_bytes() > 0);
    assert_eq!(c.load_state(), crate::LoadState::Loaded);
    assert!(c.pending_index_segments("v").is_empty());
    let after = c
        .search(&SearchRequest {
            vectors: vec![q],
            filter: Some("cat in [\"c1\", \"c2\"]".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(before, after);
    assert_eq!(
        c.manifest().version,
        version,
        "opening or searching committed nothing"
    );
    c.release().unwrap();
    assert_eq!(c.load_state(), crate::LoadState::Unloaded);
}

#[test]
fn an_uncommitted_load_leaves_the_last_commit_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut rng = Rng(9);
    let (batch, _) = dense_batch(0..100, 4, false, &mut rng);
    let c = load(&db, "u", schema(FieldType::FloatVector, 4), &[batch], 1_000);
    let files_before: HashSet<String> = std::fs::read_dir(c.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    // A load that dies before its manifest swap: files on disk, nothing committed.
    let (more, _) = dense_batch(100..200, 4, false, &mut rng);
    let mut w = c.writer().unwrap();
    w.write(&more).unwrap();
    w.simulate_crash();
    std::fs::write(c.dir().join("seg-999999-dead.arrow"), b"partial").unwrap();
    let c = Database::open(dir.path()).unwrap().collection("u").unwrap();
    assert_eq!(c.count_rows(), 100);
    assert_eq!(c.count(Some("id >= 0")).unwrap(), 100);
    // The next writer clears the leftovers and completes.
    let (more, _) = dense_batch(100..200, 4, false, &mut rng);
    let mut w = c.writer().unwrap();
    w.write(&more).unwrap();
    w.commit(BTreeMap::new()).unwrap();
    assert_eq!(c.count_rows(), 200);
    let files_after: HashSet<String> = std::fs::read_dir(c.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!files_after.contains("seg-999999-dead.arrow"));
    assert_eq!(
        files_after.difference(&files_before).count(),
        1,
        "one new segment, no leftovers: {files_after:?}"
    );
}

#[test]
fn clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut rng = Rng(1);
    let (batch, _) = dense_batch(0..10, 4, false, &mut rng);
    let c = load(
        &db,
        "items",
        schema(FieldType::FloatVector, 4),
        &[batch],
        1_000,
    );
    let e = db.collection("itemz").unwrap_err().to_string();
    assert!(
        e.contains("unknown collection `itemz`") && e.contains("did you mean `items`"),
        "{e}"
    );
    let e = c
        .search(&SearchRequest {
            field: Some("vv".into()),
            vectors: vec![json!([0, 0, 0, 1])],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no field `vv`") && e.contains("did you mean `v`"),
        "{e}"
    );
    let e = c
        .search(&SearchRequest {
            vectors: vec![json!([0, 0, 0, 1])],
            filter: Some("cat == ".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("position 7"), "{e}");
    // A batch that breaks a limit names the field and the row.
    let long = RecordBatch::try_from_iter(vec![
        ("id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        (
            "cat",
            Arc::new(StringArray::from(vec!["x".repeat(17)])) as ArrayRef,
        ),
        (
            "v",
            Arc::new(FixedSizeListArray::new(
                Arc::new(ArrowField::new("item", DataType::Float32, false)),
                4,
                Arc::new(Float32Array::from(vec![0.0; 4])),
                None,
            )) as ArrayRef,
        ),
    ])
    .unwrap();
    let e = c.writer().unwrap().write(&long).unwrap_err().to_string();
    assert!(
        e.contains("`cat`") && e.contains("17 bytes") && e.contains("max_length is 16"),
        "{e}"
    );
}

/// A table committed in many parts (one segment each) is merged into a few large segments,
/// each with one graph; rows replaced by a later part are dropped, nothing is doubled or lost,
/// searches agree with brute force, checkpoints survive, and a second merge changes nothing.
#[test]
fn many_small_segments_merge_into_a_few_indexed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut rng = Rng(42);
    let c = db
        .ensure_collection("m", schema(FieldType::FloatVector, 16))
        .unwrap();
    let mut all: Vec<Vec<f32>> = Vec::new();
    let mut w = c.writer().unwrap();
    for part in 0..12i64 {
        let (batch, vecs) = dense_batch(part * 500..(part + 1) * 500, 16, false, &mut rng);
        all.extend(vecs);
        w.write_part(&format!("r{part}"), &batch).unwrap();
        let cp = BTreeMap::from([(format!("r{part}"), json!({"range": part}))]);
        w.commit_part(&format!("r{part}"), cp).unwrap();
    }
    drop(w);
    // Rows 0..100 loaded again: the old copies become deleted rows.
    let (again, vecs) = dense_batch(0..100, 16, false, &mut rng);
    all[..100].clone_from_slice(&vecs);
    let mut w = c.writer().unwrap();
    w.write(&again).unwrap();
    w.commit(BTreeMap::new()).unwrap();
    assert_eq!(c.manifest().segments.len(), 13);
    let stats = c
        .merge_segments(
            crate::MergePolicy {
                max_rows: 2_500,
                max_bytes: 1 << 30,
            },
            &|_| {},
        )
        .unwrap();
    assert_eq!(stats.segments_before, 13);
    assert_eq!(stats.segments_after, 3, "{stats:?}");
    assert_eq!(stats.rows_rewritten, 6_000);
    let m = c.manifest();
    assert_eq!(m.live_rows(), 6_000);
    assert!(m.segments.iter().all(|s| s.deleted == 0));
    assert_eq!(
        m.checkpoints.len(),
        12,
        "per-range checkpoints survive the merge"
    );
    let files = std::fs::read_dir(c.dir()).unwrap().count();
    assert_eq!(
        files,
        3 + 1 + 1,
        "old segment files are removed (3 segments, manifest, lock)"
    );
    let again = c
        .merge_segments(crate::MergePolicy::default(), &|_| {})
        .unwrap();
    assert_eq!(again.segments_after, 1, "the default bound merges the rest");
    let noop = c
        .merge_segments(crate::MergePolicy::default(), &|_| {})
        .unwrap();
    assert_eq!(noop.rows_rewritten, 0);
    c.create_index(
        "v",
        IndexSpec {
            ivf: None,
            index_type: IndexType::Hnsw,
            metric: Some(Metric::L2),
            hnsw: None,
        },
        &|_| {},
    )
    .unwrap();
    assert_eq!(c.count_rows(), 6_000);
    let mut ids: Vec<i64> = c
        .query(&crate::QueryRequest::default())
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..6_000).collect::<Vec<_>>(), "every key once");
    let mut misses = 0;
    for _ in 0..30 {
        let q: Vec<f32> = (0..16).map(|_| rng.f32()).collect();
        let truth: HashSet<i64> = brute(&all, &q, Metric::L2, 10)
            .iter()
            .map(|t| t.0)
            .collect();
        let req = SearchRequest {
            vectors: vec![json!(q)],
            limit: 10,
            ..Default::default()
        };
        let hits = &c.search(&req).unwrap()[0];
        misses += hits
            .iter()
            .filter(|h| !truth.contains(&h.id.as_i64().unwrap()))
            .count();
    }
    assert!(misses <= 15, "{misses} misses of 300");
}

/// A table without a vector column (langchain's `langchain_pg_collection`) is a collection that
/// loads, filters and queries; only similarity search is refused, saying why.
#[test]
fn a_collection_without_vectors_is_queried_not_searched() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let schema = CollectionSchema {
        fields: vec![
            Field {
                primary_key: true,
                ..Field::new("id", FieldType::Int64)
            },
            Field {
                max_length: Some(16),
                nullable: true,
                ..Field::new("cat", FieldType::Varchar)
            },
        ],
        auto_id: false,
        dynamic_field: false,
        shards: 1,
        description: String::new(),
    };
    let c = db.ensure_collection("plain", schema).unwrap();
    let batch = RecordBatch::try_from_iter(vec![
        ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
        (
            "cat",
            Arc::new(StringArray::from(vec![Some("a"), None, Some("b")])) as ArrayRef,
        ),
    ])
    .unwrap();
    let mut w = c.writer().unwrap();
    w.write(&batch).unwrap();
    w.commit(BTreeMap::new()).unwrap();
    c.build_indexes(&|_| {}).unwrap();
    assert_eq!(c.count(Some("cat == \"b\"")).unwrap(), 1);
    let rows = c
        .query(&crate::QueryRequest {
            filter: Some("id >= 2".into()),
            output_fields: vec!["cat".into()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rows.len(), 2);
    let e = c
        .search(&SearchRequest {
            vectors: vec![json!([1.0])],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("no vector field"), "{e}");
}

/// Every approximate index kind (HNSW, HNSW_SQ, IVF_FLAT) against brute force through the
/// collection, for every metric and vector type it takes, with and without a filter, over three
/// segments: recall@10 ≥ 0.95, counted as misses with an explicit allowance.
#[test]
fn every_index_kind_metric_and_type_against_brute_force_with_and_without_filters() {
    use crate::index::IvfParams;
    use crate::index::testdata::{clustered, clustered_bits, halved};
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let n = 3_000usize;
    let dim = 24usize;
    let ids = || Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef;
    let cats = || {
        Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("c{}", i % 4)),
        )) as ArrayRef
    };
    let mut cases: Vec<(FieldType, IndexType, Metric)> = Vec::new();
    for t in [FieldType::FloatVector, FieldType::Float16Vector] {
        for ix in [IndexType::Hnsw, IndexType::HnswSq, IndexType::IvfFlat] {
            for m in [Metric::L2, Metric::Ip, Metric::Cosine] {
                cases.push((t, ix, m));
            }
        }
    }
    for ix in [IndexType::Hnsw, IndexType::IvfFlat] {
        for m in [Metric::Hamming, Metric::Jaccard] {
            cases.push((FieldType::BinaryVector, ix, m));
        }
    }
    for (ci, (t, ix, metric)) in cases.into_iter().enumerate() {
        let name = format!("k{ci}");
        let (column, dim_declared): (ArrayRef, u32) = match t {
            FieldType::BinaryVector => {
                let bits = clustered_bits(n, 8, 20, ci as u64 + 1);
                let a = FixedSizeBinaryArray::try_from_iter(bits.chunks_exact(8)).unwrap();
                (Arc::new(a), 64)
            }
            _ => {
                let mut v = clustered(n, dim, 20, 0.2, ci as u64 + 1);
                let (values, item): (ArrayRef, DataType) = if t == FieldType::Float16Vector {
                    v = halved(v);
                    (
                        Arc::new(Float16Array::from_iter_values(
                            v.iter().map(|x| half::f16::from_f32(*x)),
                        )),
                        DataType::Float16,
                    )
                } else {
                    (Arc::new(Float32Array::from(v)), DataType::Float32)
                };
                let a = FixedSizeListArray::new(
                    Arc::new(ArrowField::new("item", item, false)),
                    dim as i32,
                    values,
                    None,
                );
                (Arc::new(a), dim as u32)
            }
        };
        let batch =
            RecordBatch::try_from_iter(vec![("id", ids()), ("cat", cats()), ("v", column.clone())])
                .unwrap();
        let c = load(&db, &name, schema(t, dim_declared), &[batch], 1_000);
        assert_eq!(c.manifest().segments.len(), 3);
        let spec = IndexSpec {
            index_type: ix,
            metric: Some(metric),
            hnsw: None,
            ivf: (ix == IndexType::IvfFlat).then_some(IvfParams {
                nlist: 16,
                nprobe: 8,
            }),
        };
        c.create_index("v", spec, &|_| {}).unwrap();
        let data = crate::vector::VectorData::from_array(column.as_ref()).unwrap();
        for filter in [None, Some("cat == \"c1\"")] {
            let (mut misses, mut asked) = (0, 0);
            for qi in 0..20 {
                let row = qi * 149;
                let q = match &data.values {
                    crate::vector::VectorValues::Dense { values, .. } => {
                        QueryVector::Dense(values.row(row).iter().map(|x| x + 0.05).collect())
                    }
                    crate::vector::VectorValues::Binary { values, .. } => {
                        QueryVector::Binary(values.row(row).to_vec())
                    }
                    crate::vector::VectorValues::Sparse { .. } => unreachable!(),
                };
                let admit = |r: u32| filter.is_none() || r % 4 == 1;
                let truth = crate::index::exact_search(&data, metric, &q, 10, Some(&admit));
                let req = SearchRequest {
                    limit: 10,
                    filter: filter.map(str::to_string),
                    // A filter admitting a quarter of the rows needs more lists (IP the most:
                    // the largest products are not always in the lists whose centroids have
                    // the largest products, as with faiss' IVF under IP).
                    nprobe: (ix == IndexType::IvfFlat && filter.is_some())
                        .then_some(if metric == Metric::Ip { 14 } else { 12 }),
                    ..Default::default()
                };
                let hits = &c
                    .search_vectors("v", std::slice::from_ref(&q), &req)
                    .unwrap()[0];
                assert_eq!(hits.len(), 10, "{name} {t} {ix} {metric}");
                for h in hits {
                    let id = h.id.as_i64().unwrap();
                    assert!(admit(id as u32), "{name}: a filtered-out row came back");
                }
                let kth = truth[9].1;
                misses += hits.iter().filter(|h| h.distance > kth + 1e-4).count();
                asked += 10;
            }
            assert!(
                misses * 20 <= asked,
                "{t} {ix} {metric} filter {filter:?}: {misses} misses of {asked}"
            );
        }
    }
}
