#!/usr/bin/env bash
# Every test: lint, the C library's ctest suite, then pytest (golden equivalence with TensorFlow).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

echo "== ruff"
.venv/bin/ruff check pyodl tests

echo "== ctest (host build)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
ctest --test-dir build --output-on-failure

echo "== pytest"
workers=$(( $(nproc) > 1 ? $(nproc) : 1 ))
.venv/bin/python -m pytest -n "$workers" "$@"
