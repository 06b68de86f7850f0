#!/usr/bin/env bash
# Screenshots of `fsearch report` for one study, made by two versions of fsearch: the code at
# BEFORE (a commit) and the code of this checkout, so a change to the report is seen as a
# user sees it (issue #14 item 6).
#
#   scripts/report-screenshots.sh STORAGE_URL STUDY OUT_DIR [BEFORE=54da093^, before issue #14]
#
# Writes OUT_DIR/{before,after}/ (the reports) and OUT_DIR/{before,after}.png (full pages,
# 1400 px wide, headless Chromium). Run from the repository root after ./scripts/setup.sh.
set -euo pipefail
storage=$1 study=$2 out=$3 before=${4:-54da093^}
root=$(pwd)
py="$root/.venv/bin/python"
mkdir -p "$out"
out=$(cd "$out" && pwd)
tree=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"' EXIT
git worktree add --detach "$tree" "$before" >/dev/null
(cd "$tree" && "$py" -m search.cli report --study "$study" --storage "$storage" --out "$out/before")
"$py" -m search.cli report --study "$study" --storage "$storage" --out "$out/after"
for side in before after; do
  page=$(ls "$out/$side"/*.html | head -1)
  # Tall enough for the whole page; Chromium cannot size a screenshot to its content.
  chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$(mktemp -d)" --window-size=1400,9000 \
    --screenshot="$out/$side.png" "file://$page" >/dev/null 2>&1
  "$py" - "$out/$side.png" <<'PY'  # crop the blank space below the page
import sys

import numpy as np
from PIL import Image

im = Image.open(sys.argv[1])
rows = np.where(np.asarray(im.convert("L")).min(axis=1) < 250)[0]
im.crop((0, 0, im.width, int(rows.max()) + 40 if rows.size else im.height)).save(sys.argv[1])
PY
  echo "$out/$side.png"
done
