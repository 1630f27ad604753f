#!/usr/bin/env python3
"""Build the vector stores that real client libraries create, so the ETL is tested on their tables.

Hand-written test tables only show what we think these libraries do; this script lets the
libraries themselves create and fill their tables (through their public APIs, no SQL of ours
for the stores' tables) in a given PostgreSQL database with pgvector:

  1. langchain-postgres, legacy `langchain_postgres.PGVector` (psycopg 3): collection "lc_docs"
     in public.langchain_pg_embedding, plus its public.langchain_pg_collection. No
     embedding_length is given, so the embedding column is the untyped `vector`.
  2. langchain-postgres `PGVectorStore` + `PGEngine` (sync API; psycopg 3 async under the hood):
     `init_vectorstore_table(table_name="lc_store", vector_size=DIM)` -> public.lc_store.
  3. llama-index `PGVectorStore.from_params(table_name="li_docs", embed_dim=DIM,
     hybrid_search=True)` (psycopg2) -> public.data_li_docs, with its generated
     `text_search_tsv` tsvector column. Nodes are TextNodes with explicit embeddings.
  4. Supabase `vecs` (psycopg2): collection "docs" -> vecs.docs.

Worth knowing (seen with the pinned versions): the metadata columns differ in type (langchain
legacy jsonb, PGVectorStore json, llama-index json, vecs jsonb); llama-index's primary key is a
bigserial `id`, the node id (ours) is in varchar `node_id`, and its metadata_ also holds
_node_content, _node_type, document_id, doc_id and ref_doc_id (here the document, "doc-07");
vecs has no content column, so the text goes into its metadata as "text"; vecs' GIN index on
metadata is never committed (created in a session that is closed without commit), so vecs.docs
has only its primary key; llama-index logs and swallows errors while creating its table (they
only surface at the first insert).

Every store gets the same rows (so a test can compare them): row i has the id
uuid5(NAMESPACE_URL, "client-stores/row/<i>"), the same vector and the same metadata. The
vectors are made here with numpy (seed 20240611, nothing downloaded, no model) and look like
chunked documents: 40 documents, each a random unit centre; a document's chunks are
consecutive rows, each its centre plus gaussian noise (sigma 0.05 per component), L2-normalised
and rounded to float32. Metadata: {"doc": "doc-07", "chunk": <int, 0-based within the doc>,
"page": <chunk // 4 + 1>, "lang": "en" for even documents, "de" for odd ones}, so the filter
lang = de selects about half the rows. Content is "chunk <c> of doc <d>", and every 5th row
adds a non-ASCII word (Größe, 日本語, Ελληνικά, naïve café, 🚀).

Each run first drops the tables it makes (and nothing else), so a rerun recreates them. Once
done it reads back information_schema / pg_catalog and prints ONE JSON object to stdout: per
store the table, the column names in each role, every column's type as `\\d` shows it, the
row count, the vector dimension, the metric, a metadata filter with its row count, and other
tables the client made. Progress goes to stderr. Nothing here should touch the network other
than the database (llama-index gets a MockEmbedding and a MockLLM, never used).

    python datasets/client_stores.py --url postgres://user:pw@host:port/db [--rows 2000] [--dim 64]

Needs the pinned packages in datasets/client-stores.txt (pip install -r datasets/client-stores.txt).
"""

import argparse
import asyncio
import contextlib
import json
import sys
import time
import uuid

import numpy as np
import psycopg
from sqlalchemy.engine import make_url

SEED = 20240611
N_DOCS = 40
SIGMA = 0.05
CHUNKS_PER_PAGE = 4
BATCH = 500
UNICODE_WORDS = ["Größe", "日本語", "Ελληνικά", "naïve café", "🚀"]

LC_COLLECTION = "lc_docs"
LC_STORE_TABLE = "lc_store"
LI_TABLE = "li_docs"  # llama-index prefixes it: data_li_docs
VECS_COLLECTION = "docs"

# What each run drops first: the tables the four clients make here (schema, table).
OWN_TABLES = [
    ("public", "langchain_pg_embedding"),
    ("public", "langchain_pg_collection"),
    ("public", LC_STORE_TABLE),
    ("public", "data_" + LI_TABLE),
    ("vecs", VECS_COLLECTION),
]


def log(*a):
    print("client_stores:", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Data


def make_rows(rows: int, dim: int):
    """Ids, float32 unit vectors (rows x dim), metadata dicts and texts; deterministic."""
    rng = np.random.default_rng(SEED)
    centres = rng.standard_normal((N_DOCS, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    doc_of = np.arange(rows) * N_DOCS // rows  # consecutive chunks per document
    vecs = centres[doc_of] + SIGMA * rng.standard_normal((rows, dim))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    vecs = vecs.astype(np.float32)

    ids, metas, texts = [], [], []
    first = {}
    for i, d in enumerate(doc_of.tolist()):
        first.setdefault(d, i)
        chunk = i - first[d]
        ids.append(str(uuid.uuid5(uuid.NAMESPACE_URL, f"client-stores/row/{i}")))
        metas.append({"doc": f"doc-{d:02d}", "chunk": chunk, "page": chunk // CHUNKS_PER_PAGE + 1,
                      "lang": "en" if d % 2 == 0 else "de"})
        text = f"chunk {chunk} of doc {d}"
        if i % 5 == 0:
            text += " " + UNICODE_WORDS[(i // 5) % len(UNICODE_WORDS)]
        texts.append(text)
    return ids, vecs, metas, texts


def batches(n: int):
    for s in range(0, n, BATCH):
        yield s, min(n, s + BATCH)


# ---------------------------------------------------------------------------------------------
# The four clients


def build_langchain_pgvector(url, ids, vecs, metas, texts):
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_postgres import PGVector

    store = PGVector(
        embeddings=DeterministicFakeEmbedding(size=vecs.shape[1]),  # never called
        connection=url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False),
        collection_name=LC_COLLECTION,
        use_jsonb=True,
    )
    for s, e in batches(len(ids)):
        store.add_embeddings(texts=texts[s:e], embeddings=vecs[s:e].tolist(),
                             metadatas=metas[s:e], ids=ids[s:e])
    store._engine.dispose()


def build_langchain_pgvectorstore(url, ids, vecs, metas, texts):
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_postgres import PGEngine, PGVectorStore

    engine = PGEngine.from_connection_string(
        url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    engine.init_vectorstore_table(table_name=LC_STORE_TABLE, vector_size=vecs.shape[1])
    store = PGVectorStore.create_sync(
        engine=engine,
        embedding_service=DeterministicFakeEmbedding(size=vecs.shape[1]),  # never called
        table_name=LC_STORE_TABLE,
    )
    for s, e in batches(len(ids)):
        store.add_embeddings(texts=texts[s:e], embeddings=vecs[s:e].tolist(),
                             metadatas=metas[s:e], ids=ids[s:e])
    engine._run_as_sync(engine._pool.dispose())


def build_llama_index(url, ids, vecs, metas, texts):
    from llama_index.core import Settings
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.vector_stores.postgres import PGVectorStore

    # Never used (embeddings are given), but keeps llama-index from ever reaching for OpenAI.
    Settings.embed_model = MockEmbedding(embed_dim=vecs.shape[1])
    Settings.llm = MockLLM()

    store = PGVectorStore.from_params(
        # As strings: llama-index str()s URL objects, which masks the password.
        connection_string=url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False),
        async_connection_string=url.set(drivername="postgresql+asyncpg").render_as_string(
            hide_password=False),
        table_name=LI_TABLE,
        embed_dim=vecs.shape[1],
        hybrid_search=True,
    )
    for s, e in batches(len(ids)):
        nodes = [
            TextNode(id_=ids[i], text=texts[i], metadata=metas[i], embedding=vecs[i].tolist(),
                     relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=metas[i]["doc"])})
            for i in range(s, e)
        ]
        store.add(nodes)
    asyncio.run(store.close())  # its close() is a coroutine (disposes both engines)


def build_vecs(url, ids, vecs, metas, texts):
    import vecs as vecs_lib

    client = vecs_lib.create_client(url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        docs = client.get_or_create_collection(name=VECS_COLLECTION, dimension=vecs.shape[1])
        for s, e in batches(len(ids)):
            # vecs has no content column: the text goes into the metadata, as its docs suggest.
            docs.upsert(records=[(ids[i], vecs[i].tolist(), {**metas[i], "text": texts[i]})
                                 for i in range(s, e)])
    finally:
        client.disconnect()


# ---------------------------------------------------------------------------------------------
# Looking at what they made


def columns(cur, schema, table):
    """({column: type as \\d shows it, + ' generated' if generated}, {generated column: expression})."""
    cur.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attgenerated,
                  pg_get_expr(d.adbin, d.adrelid)
             FROM pg_attribute a
             JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum""", (schema, table))
    rows = cur.fetchall()
    return ({name: typ + (" generated" if gen == "s" else "") for name, typ, gen, _ in rows},
            {name: expr for name, _, gen, expr in rows if gen == "s"})


def primary_key(cur, schema, table):
    cur.execute(
        """SELECT kcu.column_name FROM information_schema.table_constraints tc
             JOIN information_schema.key_column_usage kcu
               ON kcu.constraint_schema = tc.constraint_schema AND kcu.constraint_name = tc.constraint_name
            WHERE tc.table_schema = %s AND tc.table_name = %s AND tc.constraint_type = 'PRIMARY KEY'
            ORDER BY kcu.ordinal_position""", (schema, table))
    return [r[0] for r in cur.fetchall()]


def describe(cur, client, schema, table, roles, filter_key, filter_value, other_tables=(), **extra):
    """One store's JSON entry, checked against the catalog."""
    cols, generated = columns(cur, schema, table)
    if not cols:
        raise SystemExit(f"client_stores: {client}: table {schema}.{table} was not created")
    for role, col in roles.items():
        if col not in cols:
            raise SystemExit(f"client_stores: {client}: expected {role} column {col!r} in "
                             f"{schema}.{table}, found {list(cols)}")
    q = f'"{schema}"."{table}"'
    cur.execute(f'SELECT count(*), min(vector_dims("{roles["embedding"]}")), '
                f'max(vector_dims("{roles["embedding"]}")) FROM {q}')
    n, dmin, dmax = cur.fetchone()
    cur.execute(f'SELECT count(*) FROM {q} WHERE "{roles["metadata"]}" ->> %s = %s',
                (filter_key, filter_value))
    nf = cur.fetchone()[0]
    entry = {"client": client, "table": f"{schema}.{table}", **roles,
             "primary_key": primary_key(cur, schema, table), "rows": n,
             "dim": dmin if dmin == dmax else None, "metric": "cosine",
             "filter": {"key": filter_key, "value": filter_value, "rows": nf},
             "columns": cols, "generated": generated, **extra}
    entry["other_tables"] = [
        {"table": f"{s}.{t}", "columns": columns(cur, s, t)[0]} for s, t in other_tables]
    return entry


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="postgres://user:pw@host:port/db")
    ap.add_argument("--rows", type=int, default=2000, help="rows per store (default 2000)")
    ap.add_argument("--dim", type=int, default=64, help="vector dimension (default 64)")
    args = ap.parse_args()

    url = make_url(args.url)
    libpq_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
    out = sys.stdout
    t_all = time.monotonic()
    ids, vecs, metas, texts = make_rows(args.rows, args.dim)

    with psycopg.connect(libpq_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        for schema, table in OWN_TABLES:
            conn.execute(f'DROP TABLE IF EXISTS "{schema}"."{table}" CASCADE')

    # The libraries may print; keep stdout for the one JSON object.
    with contextlib.redirect_stdout(sys.stderr):
        for name, build in [("langchain PGVector", build_langchain_pgvector),
                            ("langchain PGVectorStore", build_langchain_pgvectorstore),
                            ("llama-index PGVectorStore", build_llama_index),
                            ("vecs", build_vecs)]:
            t = time.monotonic()
            build(url, ids, vecs, metas, texts)
            log(f"{name}: {args.rows} rows in {time.monotonic() - t:.1f}s")

    with psycopg.connect(libpq_url, autocommit=True) as conn, conn.cursor() as cur:
        stores = [
            describe(cur, "langchain PGVector", "public", "langchain_pg_embedding",
                     {"id": "id", "embedding": "embedding", "metadata": "cmetadata",
                      "content": "document"}, "lang", "de",
                     other_tables=[("public", "langchain_pg_collection")],
                     collection={"table": "public.langchain_pg_collection", "name": LC_COLLECTION,
                                 "fk": "collection_id", "key": "uuid"}),
            describe(cur, "langchain PGVectorStore", "public", LC_STORE_TABLE,
                     {"id": "langchain_id", "embedding": "embedding",
                      "metadata": "langchain_metadata", "content": "content"}, "lang", "de"),
            describe(cur, "llama-index PGVectorStore", "public", "data_" + LI_TABLE,
                     {"id": "id", "node_id": "node_id", "embedding": "embedding",
                      "metadata": "metadata_", "content": "text", "tsvector": "text_search_tsv"},
                     "lang", "de"),
            describe(cur, "vecs", "vecs", VECS_COLLECTION,
                     {"id": "id", "embedding": "vec", "metadata": "metadata"}, "lang", "de"),
        ]
    for s in stores:
        if s["rows"] != args.rows or s["dim"] != args.dim:
            raise SystemExit(f"client_stores: {s['client']}: {s['rows']} rows of dim {s['dim']}, "
                             f"expected {args.rows} of {args.dim}")
    log(f"done in {time.monotonic() - t_all:.1f}s")
    print(json.dumps({"rows": args.rows, "dim": args.dim, "seed": SEED, "stores": stores},
                     ensure_ascii=False), file=out)


if __name__ == "__main__":
    main()
