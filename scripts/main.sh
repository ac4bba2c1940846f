#!/usr/bin/env bash
# The main job: the firmware, running inside the simulated STM32L496, trains the paper's model for 100 SGD
# steps of batch 32; TensorFlow trains the same weights on the same batches; every weight is compared.
# Exits non-zero on any mismatch.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/pyodl golden-check --input 40 --mode full --steps 100 --batch 32 --backend unicorn "$@"
