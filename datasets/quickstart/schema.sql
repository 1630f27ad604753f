-- A small pgvector database for the quickstart: documents with 8-d embeddings, chunks with a
-- composite key, and sparse and binary signatures. Deterministic: no random().
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE documents (
  id bigint PRIMARY KEY,
  title text NOT NULL,
  category text,
  published date,
  embedding vector(8)
);
INSERT INTO documents
SELECT i, 'document ' || i, (ARRAY['news', 'blog', 'paper'])[1 + i % 3], date '2024-01-01' + i,
       ('[' || array_to_string(ARRAY(SELECT round(sin(i * k)::numeric, 4) FROM generate_series(1, 8) k), ',') || ']')::vector
FROM generate_series(1, 1000) i;
CREATE INDEX ON documents USING hnsw (embedding vector_cosine_ops);
CREATE TABLE chunks (
  doc_id bigint REFERENCES documents, seq int, body text, h halfvec(4), sig bit(16), terms sparsevec(100),
  PRIMARY KEY (doc_id, seq)
);
INSERT INTO chunks
SELECT d, s, 'chunk ' || s || ' of ' || d,
       ('[' || d % 7 || ',' || s || ',1,0]')::halfvec,
       (d * 31 + s)::bit(16),
       ('{' || (1 + d % 100) || ':1.5,' || (1 + (d + 50) % 100) || ':0.5}/100')::sparsevec
FROM generate_series(1, 200) d, generate_series(1, 3) s
WHERE 1 + d % 100 < 1 + (d + 50) % 100;
ANALYZE;
