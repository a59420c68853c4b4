#!/usr/bin/env bash
# One entry point for a fresh machine: finds Python >= 3.12, builds .venv, then runs a job.
#   scripts/dev.sh main [args]   train + sample + evaluate the 2-D checkerboard (experiments/checkerboard)
#   scripts/dev.sh test [args]   the test suite on FLOWJAX_TEST_WORKERS (default 2) pytest-xdist
#                                workers (args go to pytest, e.g. -m slow; -n 0 runs in one process)
#   scripts/dev.sh bench [args]  CPU benchmark against Meta's flow_matching and TorchCFM
#   scripts/dev.sh lint          ruff check and ruff format --check
#   scripts/dev.sh setup         only build .venv
# FLOWJAX_EXTRAS=tpu-compile adds the TPU compiler (libtpu) for `flowjax compile` and its tests.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv

is_py312() { "$@" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }

find_python() {
  local c v root
  if [[ -n "${PYTHON:-}" ]] && is_py312 "$PYTHON"; then echo "$PYTHON"; return; fi
  for c in python3.14 python3.13 python3.12 python3 python; do
    if command -v "$c" >/dev/null && is_py312 "$c"; then command -v "$c"; return; fi
  done
  # pyenv keeps other versions beside the default one; their binaries work without shims.
  root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
  for v in $(ls -d "$root"/versions/3.* 2>/dev/null | sort -Vr); do
    if is_py312 "$v/bin/python3"; then echo "$v/bin/python3"; return; fi
  done
  for c in /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9] /opt/*/bin/python3.1[2-9]; do
    if [[ -x "$c" ]] && is_py312 "$c"; then echo "$c"; return; fi
  done
  echo "error: no Python >= 3.12 found (set PYTHON=/path/to/python3.12)" >&2
  exit 1
}

setup() {
  if [[ ! -x "$VENV/bin/python" ]] || ! is_py312 "$VENV/bin/python"; then
    rm -rf "$VENV"
    "$(find_python)" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed" want extras="test${FLOWJAX_EXTRAS:+,$FLOWJAX_EXTRAS}"
  want="$( (cat pyproject.toml; echo "$extras") | sha256sum | cut -d' ' -f1)"
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[$extras]"
    echo "$want" >"$stamp"
  fi
}

# The PyTorch references live in their own venv: torch 2.13.0 (CPU build) and, pinned to it,
# flow-matching, torchcfm and POT. TORCH_PYTHON picks the interpreter (default: python3).
setup_torch() {
  local venv=.venv-torch
  if [[ ! -x "$venv/bin/python" ]]; then
    "${TORCH_PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/python" -m pip install -q torch==2.13.0
    echo "torch==2.13.0" >"$venv/constraints.txt"
    "$venv/bin/python" -m pip install -q -c "$venv/constraints.txt" flow-matching torchcfm pot
  fi
}

cmd="${1:-}"; shift || true
case "$cmd" in
  setup) setup ;;
  main) setup; exec "$VENV/bin/python" -m experiments.checkerboard.main "$@" ;;
  test)
    setup
    set +e; "$VENV/bin/python" -m pytest -n "${FLOWJAX_TEST_WORKERS:-2}" --dist worksteal "$@"; rc=$?; set -e
    # pytest exits 5 when a selection holds no tests: that is not a failure.
    [[ $rc -eq 5 ]] && { echo "no tests selected"; rc=0; }
    exit $rc ;;
  bench) setup; setup_torch
    exec "$VENV/bin/python" -m experiments.bench_cpu.run --torch-python .venv-torch/bin/python "$@" ;;
  lint) setup; "$VENV/bin/python" -m ruff check . && exec "$VENV/bin/python" -m ruff format --check . ;;
  *) sed -n '2,9p' "$0"; exit 2 ;;
esac
