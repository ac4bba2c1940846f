#!/usr/bin/env bash
# The main job: leave-one-subject-out personalization on the bundled real smartwatch dataset. The general
# model is pretrained in Keras; TL, Full and No Pretrain are trained by the firmware inside the simulated
# STM32L496. Writes the Table II-style results to results/personalize/. Extra arguments go to the command.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/pyodl personalize "$@"
