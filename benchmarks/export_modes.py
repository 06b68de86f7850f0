"""Which export should `fsearch run` make? Selected, refit, ensemble or both, over several
studies of the default space.

    python -m benchmarks.export_modes --seeds 3 --trials 100 --jobs 2 [--work DIR]
    python -m benchmarks.export_modes --seeds 0 --existing fashion-mnist-mlp \\
        --existing-storage sqlite:///studies/fsearch.db \\
        --existing-export studies/fashion-mnist-mlp/best

Runs the default study (studies/fashion-mnist-mlp.toml) once per seed (`--seed`, its own study
name, `--trials` each, `--jobs` workers, no export), then exports each study four ways:
the selected model, `--refit`, `--ensemble K` and `--ensemble K --refit`. `--existing NAME`
adds a study that is already there (the default `fsearch run --trials 200`'s), exported the
same four ways; `--existing-export DIR` is the export its run made at the end (its card
stands for its mode instead of a second, identical export).

Every export reads the test set once, for its own card; nothing here picks a mode per study
by test accuracy: the table and the medians over studies are what the default is chosen
from. The studies stay in --work (default /tmp/fsearch-export-modes), so running the command
again resumes them; an export already in --work is reused (delete it to measure it again).
Rows of studies this run does not touch are kept from the section as it stands, each with
the time it was measured.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import BENCHMARKS_MD, markdown_table, write_section

ROOT = Path(__file__).resolve().parent.parent
FSEARCH = Path(sys.executable).parent / "fsearch"
SECTION = "export-modes"
HEADER = ["study", "export", "trials", "validation", "test accuracy", "export s", "parameters",
          "MiB", "measured"]  # fmt: skip


def _run(args: list[str], log) -> str:
    print("$ fsearch " + " ".join(args), file=log, flush=True)
    r = subprocess.run([str(FSEARCH), *args], capture_output=True, text=True, cwd=ROOT)
    print(r.stdout[-3000:] + r.stderr[-3000:], file=log, flush=True)
    if r.returncode != 0:
        raise SystemExit(f"fsearch {' '.join(args)} failed (exit {r.returncode}); see the log")
    return r.stdout


def mode_of(card: dict, k: int) -> str | None:
    """Which of the compared modes an export card is (None: another one)."""
    info = card["export"]
    n, refit = len(info["members"]), "refit" in info
    if n == 1:
        return "refit" if refit else "selected"
    if n == k:
        return f"ensemble {k}" + (" + refit" if refit else "")
    return None


def _row(label: str, mode: str, card: dict, measured: str) -> list[str]:
    info = card["export"]
    val = info.get("ensemble_validation_value", card["validation_value"])
    return [
        label,
        mode,
        ", ".join(f"#{n}" for n in info["members"]),
        f"{val:.4f}" + (" (selection)" if "refit" in info else ""),
        f"{card['test_accuracy']:.4f}",
        f"{card['export_seconds']:.0f}",
        f"{card['parameter_count']:,}",
        f"{card['model_bytes'] / 2**20:.1f}",
        measured,
    ]


def study_of(label: str) -> str:
    """The study a row's label names: "fashion-mnist-mlp (200 trials)" -> "fashion-mnist-mlp"."""
    return label.split(" (")[0]


def kept_rows(labels_redone: set[str]) -> list[list[str]]:
    """The section's table rows of studies not measured again by this run (an existing study
    measured again, at a later trial count, replaces its earlier rows)."""
    redone = {study_of(label) for label in labels_redone}
    if not BENCHMARKS_MD.exists():
        return []
    m = re.search(
        rf"<!-- {SECTION}:start -->(.*?)<!-- {SECTION}:end -->", BENCHMARKS_MD.read_text(), re.S
    )
    if not m:
        return []
    text = m.group(1)
    stamp = re.search(r"Measured (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", text)
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| ") or len(cells) < 8 or cells[0] in ("study", "export"):
            continue
        if study_of(cells[0]) in redone or "---" in cells[0]:
            continue
        if len(cells) == 8:  # written before the "measured" column
            cells.append(stamp.group(1) if stamp else "?")
        rows.append(cells[: len(HEADER)])
    return rows


def study_options(p: argparse.ArgumentParser, *, seeds: int, trials: int, work: str) -> None:
    """The options of a benchmark that runs seeded default studies and exports them."""
    p.add_argument("--seeds", type=int, default=seeds)
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--trials", type=int, default=trials)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--ensemble", type=int, default=3)
    p.add_argument("--work", type=Path, default=Path(work))


def mode_flags(k: int) -> dict[str, list[str]]:
    """The four compared exports and their `fsearch export` flags, every flag spelled out:
    none depends on what the default is."""
    return {
        "selected": ["--no-refit", "--ensemble", "1"],
        "refit": ["--refit", "--ensemble", "1"],
        f"ensemble {k}": ["--no-refit", "--ensemble", str(k)],
        f"ensemble {k} + refit": ["--refit", "--ensemble", str(k)],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    study_options(p, seeds=3, trials=100, work="/tmp/fsearch-export-modes")
    p.add_argument("--existing", metavar="NAME", help="also export this existing study")
    p.add_argument("--existing-storage", default="sqlite:///studies/fsearch.db")
    p.add_argument("--existing-artifacts", default=None)
    p.add_argument("--existing-export", type=Path, help="the export its `fsearch run` made")
    p.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{args.work / 'modes.db'}"
    common = ["--storage", storage, "--artifacts", str(args.work / "artifacts")]
    k = args.ensemble
    modes = mode_flags(k)
    studies = []  # (label, study name, storage args, the run's own export or None)
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        studies.append((f"seed {seed}", f"fm-export-seed{seed}", common, None, seed))
    if args.existing:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        found = optuna.load_study(study_name=args.existing, storage=args.existing_storage)
        n = sum(t.state.name in ("COMPLETE", "PRUNED") for t in found.trials)  # --trials' count
        where = ["--storage", args.existing_storage]
        if args.existing_artifacts:
            where += ["--artifacts", args.existing_artifacts]
        label = f"{args.existing} ({n} trials)"  # the row says what the study was
        studies.append((label, args.existing, where, args.existing_export, None))
    rows = kept_rows({s[0] for s in studies})
    with open(args.work / "log.txt", "a") as log:
        for label, name, where, run_export, seed in studies:
            if seed is not None:
                t0 = time.perf_counter()
                _run(
                    ["run", "--study", name, "--seed", str(seed), "--trials", str(args.trials),
                     "--jobs", str(args.jobs), "--no-export", *where],
                    log,
                )  # fmt: skip
                print(f"{label}: search {(time.perf_counter() - t0) / 60:.1f} min (this run)")
            reuse = {}
            if run_export is not None:
                card = json.loads((run_export / "model-card.json").read_text())
                if mode_of(card, k):
                    reuse[mode_of(card, k)] = run_export
            for mode, flags in modes.items():
                out = reuse.get(mode) or args.work / name / mode.replace(" ", "-").replace(
                    "+", "and"
                )
                if not (out / "model-card.json").exists():
                    _run(["export", "--study", name, "--out", str(out), *flags, *where], log)
                card = json.loads((out / "model-card.json").read_text())
                assert mode_of(card, k) == mode, (out, card["export"])
                measured = _dt.datetime.fromtimestamp(
                    (out / "model-card.json").stat().st_mtime, _dt.timezone.utc
                ).strftime("%Y-%m-%d %H:%M")
                rows.append(_row(label, mode, card, measured))
                print(" | ".join(rows[-1]), flush=True)
            # Written after every study, so a run cut short still leaves what it measured.
            _write(args, rows)


def _write(args, rows: list[list[str]]) -> None:
    k = args.ensemble
    by_mode: dict[str, list[float]] = {}
    for r in rows:
        by_mode.setdefault(r[1], []).append(float(r[4]))
    summary = [
        [mode, f"{statistics.median(v):.4f}", f"{min(v):.4f}", f"{max(v):.4f}", str(len(v))]
        for mode, v in by_mode.items()
    ]
    studies = list(dict.fromkeys(r[0] for r in rows))
    body = (
        f"Studies `seed N`: the default study with `--seed N`, {args.trials} trials, "
        f"`--jobs {args.jobs}`. A study named by its name is one that was already there "
        "(`--existing`; `fashion-mnist-mlp`: the default study, run by `fsearch run` with "
        "one worker), with its finished trials. Each study exported four ways; each export "
        "reads the test set once, for its own card. "
        f"{len(studies)} studies: {', '.join(studies)}.\n\n"
        + markdown_table(HEADER, rows)
        + "\n\nTest accuracy over the studies:\n\n"
        + markdown_table(["export", "median", "min", "max", "studies"], summary)
        + "\n\nmeasured: when that export was made (UTC); rows measured before this run are "
        "kept from the section. Some exports measured before the fixes carried optimizer "
        "state that exports no longer hold (single models until commit dc05350, ensemble "
        "members until commit 993d33c): their MiB overstate the file an export makes now, "
        "which is about parameters x 4 bytes."
    )
    command = (
        f"python -m benchmarks.export_modes --seeds {args.seeds} --first-seed {args.first_seed} "
        f"--trials {args.trials} --jobs {args.jobs} --ensemble {k}"
    )
    if args.existing:
        command += f" --existing {args.existing} --existing-storage {args.existing_storage}"
        if args.existing_export:
            command += f" --existing-export {args.existing_export}"
    if not args.no_write:
        write_section(SECTION, body, command)
    print(body)


if __name__ == "__main__":
    main()
