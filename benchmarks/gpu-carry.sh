#!/usr/bin/env bash
# Prepare what benchmarks/gpu.py needs on a GPU machine that has Python 3.12, JAX, PyTorch,
# numpy, rich and typer but no TensorFlow and no network (benchmarks/README-gpu.md):
#   .whl/   wheels of the packages fsearch needs that such an image lacks, at the versions
#           installed in this checkout's .venv (the ones the tests ran with)
#   .data/  the four Fashion-MNIST .gz files (30 MB)
# Both are git-ignored through .git/info/exclude and travel with the working tree when named
# as carried paths. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
TARGET_PYTHON=${TARGET_PYTHON:-3.12}
DATA=${FSEARCH_DATA_DIR:-/usr/share/datasets/fashion-mnist}
# Not in the image: keras (with namex, optree), optuna (with sqlalchemy, alembic, mako,
# colorlog; greenlet where this SQLAlchemy needs it). Everything else fsearch's run path
# imports is there.
PACKAGES=(keras namex optree optuna sqlalchemy greenlet alembic mako colorlog)

if exclude=$(git rev-parse --git-path info/exclude 2>/dev/null); then
  mkdir -p "$(dirname "$exclude")"
  for d in /.whl/ /.data/; do
    grep -qxF "$d" "$exclude" 2>/dev/null || echo "$d" >>"$exclude"
  done
fi

rm -rf .whl && mkdir -p .whl .data
pins=()
version() { "$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1" 2>/dev/null; }
for name in "${PACKAGES[@]}"; do
  if v=$(version "$name"); then pins+=("$name==$v"); else echo "gpu-carry: $name is not installed here: skipped"; fi
done
echo "gpu-carry: ${pins[*]}"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$TARGET_PYTHON" \
  --implementation cp "${platforms[@]}" -d .whl "${pins[@]}"
cp "$DATA"/*-ubyte.gz .data/
du -sh .whl .data
