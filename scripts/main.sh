#!/usr/bin/env bash
# The main job: train the paper's model with the C library and with TensorFlow on the same batches
# (100 SGD steps of batch 32) and compare every weight. Exits non-zero on any mismatch.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/pyodl golden-check --input 40 --mode full --steps 100 --batch 32 --backend host "$@"
