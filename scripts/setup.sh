#!/usr/bin/env bash
# Set up fsearch on a fresh machine: the Fashion-MNIST Debian package (where apt exists),
# a virtual environment in .venv and the package with its dev tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then
  echo "setup: installing the Debian package dataset-fashion-mnist"
  if ! { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; } >/dev/null; then
    echo "setup: could not install dataset-fashion-mnist; fsearch will download the data set on first use"
  fi
fi

# Headless Chromium for the dashboard test (tests/test_dashboard.py loads the dashboard in it).
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then
  echo "setup: installing the Debian packages chromium and chromium-driver"
  if ! { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } >/dev/null; then
    echo "setup: could not install chromium; the dashboard test will be skipped (it fails in CI)"
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
echo "setup: installing fsearch and its dependencies into .venv (first time: a few minutes)"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
echo "setup: done. Run: .venv/bin/fsearch --help"
