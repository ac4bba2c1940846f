#!/usr/bin/env bash
# Installs what pyodl needs on a Debian machine, idempotently: build tools from apt, then a virtualenv
# in .venv with pyodl, its test dependencies and the fleet extra (Flower, Ray), and Robocop in .venv-lint.
# Safe to run again; it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v cc >/dev/null || need_apt+=(gcc)
command -v make >/dev/null || need_apt+=(make)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# The STM32L496 firmware: the cross compiler and its C library (newlib, for libm's expf/logf).
command -v arm-none-eabi-gcc >/dev/null || need_apt+=(gcc-arm-none-eabi)
[ -f /usr/lib/arm-none-eabi/newlib/thumb/v7e-m+fp/hard/libc_nano.a ] || need_apt+=(libnewlib-arm-none-eabi)
if ((${#need_apt[@]})); then
  echo "setup: installing ${need_apt[*]} with apt-get"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_apt[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# Reinstall only when pyproject.toml or setup.py changed since the last successful install.
stamp=.venv/.pyodl-installed
want=$(cat pyproject.toml setup.py | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing pyodl and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev,fleet]'
  echo "$want" > "$stamp"
fi

# Robocop, the Robot Framework linter, in a venv of its own: its typer and Flower's cannot share one.
robocop_spec='robotframework-robocop>=9,<10'
[ -x .venv-lint/bin/python ] || python3 -m venv .venv-lint
if [ ! -f .venv-lint/.installed ] || [ "$(cat .venv-lint/.installed)" != "$robocop_spec" ]; then
  echo "setup: installing $robocop_spec into .venv-lint"
  .venv-lint/bin/python -m pip install -q "$robocop_spec"
  echo "$robocop_spec" > .venv-lint/.installed
fi
