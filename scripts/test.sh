#!/usr/bin/env bash
# Every test: lint (Python, Robot, the GitHub workflow), the C library's ctest suite, the STM32L496
# firmware build, pytest (golden equivalence with TensorFlow, the board backends), then the Robot suites
# on the simulated board (Unicorn backend). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

echo "== lint: ruff, robocop, actionlint"
.venv/bin/ruff check pyodl tests benchmarks
.venv-lint/bin/robocop check robot
.venv/bin/actionlint .github/workflows/*.yml

echo "== ctest (host build)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
ctest --test-dir build --output-on-failure

echo "== firmware (arm-none-eabi, STM32L496)"
cmake -S . -B build-arm -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi.cmake >/dev/null
cmake --build build-arm

echo "== pytest"
workers=$(( $(nproc) > 1 ? $(nproc) : 1 ))
.venv/bin/python -m pytest -n "$workers" --durations=20 "$@"

echo "== robot (Unicorn backend)"
.venv/bin/robot --outputdir build/robot --variable BACKEND:unicorn robot
