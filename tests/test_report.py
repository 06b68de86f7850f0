"""fsearch report: PNGs, an offline HTML page and the lab's tables, from a real tiny study;
the table logic itself on hand-made runs (no training)."""

from __future__ import annotations

import dataclasses
import json
import re
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest

from search.reporting import (
    LAB_STUDIES,
    PLOTS,
    Run,
    architecture_table,
    draw_plots,
    factor_table,
    lab_tables,
    study_tables,
)
from tests.helpers import LAB_BASELINE, ROOT, invoke
from tests.tiny_study import N_TRIALS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


class Links(HTMLParser):
    """Every URL the page would load or link to."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data") and value:
                self.urls.append((tag, value))


@pytest.mark.slow
def test_report_of_a_real_study(tiny_study, tmp_path):
    out = tmp_path / "report"
    r = invoke("report", "--study", tiny_study.name, "--storage", tiny_study.storage, "--out", out)
    assert r.exit_code == 0, r.output
    assert f"wrote {out / 'index.html'}" in r.output.replace("\n", "")

    for filename, _ in PLOTS:
        w, h = png_size(out / filename)
        assert w >= 300 and h >= 150, filename
        assert (out / filename).stat().st_size > 5000, filename  # a drawing, not a blank

    page = (out / "index.html").read_text()
    links = Links()
    links.feed(page)
    assert links.urls
    for tag, url in links.urls:
        if url.startswith("data:image/png;base64,"):
            continue
        # Anything else must be a file beside the page: no scheme, no absolute path, no "..".
        assert not re.match(r"^[a-z][a-z0-9+.-]*:|^/|^\\\\", url, re.I), (tag, url)
        assert ".." not in url and (out / url).is_file(), (tag, url)
    assert "http://" not in page and "https://" not in page  # nothing fetched, not even a font
    assert page.count("data:image/png;base64,") == len(PLOTS)

    meta = json.loads((out / "report.json").read_text())
    counts = meta["counts"]
    assert sum(counts.values()) == N_TRIALS
    assert counts["diverged"] >= 1 and counts["complete"] + counts["diverged"] == N_TRIALS
    assert all(v == "ok" for v in meta["plots"].values()), meta["plots"]

    tables = {t["title"]: t for t in meta["tables"]}
    arch = tables["Best validation accuracy by architecture (depth x width)"]
    assert arch["columns"] == ["16"]
    assert [row["label"] for row in arch["rows"]] == ["1 hidden layer", "2 hidden layers"]
    cells = [row["cells"][0] for row in arch["rows"]]
    assert sum(c["runs"] for c in cells) == N_TRIALS  # every trial in exactly one cell
    assert sum(c.get("diverged", 0) for c in cells) == counts["diverged"]

    lr = tables["Best validation accuracy by learning rate"]
    assert [row["label"] for row in lr["rows"]] == ["0.05", "1e+06"]
    assert lr["columns"] == ["784x16x10", "784x16x16x10"]
    huge = lr["rows"][1]["cells"]
    # The 2-layer net's loss became NaN: "diverged", never a number such as 0.1.
    assert huge[1]["text"] == "diverged" and huge[1]["best"] is None
    assert all(c["runs"] == 1 for row in lr["rows"] for c in row["cells"])
    assert ">diverged</td>" in page
    md = (out / "tables.md").read_text()
    assert "| 1e+06 |" in md and "diverged" in md


def test_report_bad_input(tiny_config, tmp_path):
    r = invoke("report", "--study", "tiny")
    assert r.exit_code == 2 and "no study database" in r.output
    assert r.output.strip().count("\n") == 0
    r = invoke("report", "--lab", "--study", "x")
    assert r.exit_code == 2 and "either --lab or --study" in r.output


@pytest.mark.slow
def test_report_refuses_a_file_as_out_and_unknown_studies(tiny_study, tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    r = invoke("report", "-s", tiny_study.name, "--storage", tiny_study.storage, "--out", f)
    assert r.exit_code == 2 and "is a file; give a directory" in r.output
    r = invoke("report", "-s", "nope", "--storage", tiny_study.storage, "--out", tmp_path / "r")
    assert r.exit_code == 2 and "no study named 'nope'" in r.output
    assert not (tmp_path / "r").exists()
    r = invoke("report", "--lab", "--storage", tiny_study.storage, "--out", tmp_path / "r")
    assert r.exit_code == 2 and "scripts/seed-lab.sh" in r.output


# ---------------------------------------------------------------------------- tables alone


def run(study: str, n: int, widths, value, *, state="complete", **hp) -> Run:
    return Run(
        study=study,
        trial=n,
        state=state,
        value=value if state == "complete" else None,
        hp={**LAB_BASELINE, "epochs": 10, **hp, "widths": list(widths)},
        architecture="x".join(map(str, (784, *widths, 10))),
        curve=(),
    )


SIX = [(16,), (32,), (64,), (16, 16), (32, 32), (64, 64)]


def test_lab_tables_one_factor_at_a_time():
    by_study = {
        "seed-lab-architecture": [run("a", i, w, 0.85 + i / 1000) for i, w in enumerate(SIX)],
        "seed-lab-regularization": [
            run("r", i, w, 0.80 + i / 1000, regularizer=reg, reg_strength=s)
            for i, (w, reg, s) in enumerate(
                (w, reg, s) for w in SIX for reg in ("l1", "l2") for s in (1e-3, 1e-4, 1e-5)
            )
        ],
        "seed-lab-dropout": [
            run("d", i, w, 0.83, dropout=d, state="diverged" if d == 0.5 else "complete")
            for i, (w, d) in enumerate((w, d) for w in SIX for d in (0.2, 0.26, 0.3, 0.4, 0.5))
        ],
    }
    tables = lab_tables(by_study)
    assert [t.title.split(":")[0] for t in tables] == [f"Table {n}" for n in range(1, 9)]
    t1 = tables[0]
    assert t1.columns == ["16", "32", "64"]
    measured = [(label, cells) for label, cells in t1.rows if "(lab)" not in label]
    assert [c.text for c in measured[1][1]] == ["0.8530", "0.8540", "0.8550"]
    # The lab's own numbers sit under the measured ones.
    assert [c.text for c in dict(t1.rows)["2 hidden layers (lab)"]] == ["0.8566", "0.8568", "0.875"]

    t2, t3 = tables[1], tables[2]  # studies not run: their notes say how to run them
    assert "seed-lab-learning-rate.toml" in t2.note and "seed-lab-momentum.toml" in t3.note
    assert all("(lab)" in label for label, _ in t3.rows)  # the lab's numbers still shown

    t4, t6 = tables[3], tables[5]
    assert [label for label, _ in t4.rows if "(lab)" not in label] == ["1e-05", "0.0001", "0.001"]
    assert all(len(c.runs) == 1 for label, cells in t4.rows if "(lab)" not in label for c in cells)
    assert [label for label, _ in t6.rows if "(lab)" not in label] == ["L1 @ 1e-04", "L2 @ 1e-04"]

    t7, t8 = tables[6], tables[7]
    assert [label for label, _ in t7.rows if "(lab)" not in label] == ["0.2", "0.3", "0.4", "0.5"]
    assert [c.text for c in dict(t7.rows)["0.5"]] == ["diverged"] * 6
    assert [label for label, _ in t8.rows] == ["0.26", "0.26 (lab)"]
    assert t8.columns == [
        "784x16x10", "784x32x10", "784x64x10", "784x16x16x10", "784x32x32x10", "784x64x64x10"
    ]  # fmt: skip


def test_cells_mix_diverged_and_complete_runs():
    runs = [
        run("s", 0, (32,), 0.86),
        run("s", 1, (32,), None, state="diverged"),
        run("s", 2, (64, 64), None, state="diverged"),
        run("s", 3, (64, 32), 0.84),
    ]
    t = architecture_table(runs, title="t")
    assert t.columns == ["32", "64", "mixed"]
    rows = dict(t.rows)
    assert [c.text for c in rows["1 hidden layer"]] == ["0.8600 (1 diverged)", "-", "-"]
    assert [c.text for c in rows["2 hidden layers"]] == ["-", "diverged", "0.8400"]


def test_sampled_values_are_binned():
    # A TPE study: learning rates drawn from a log range fall into decades, many
    # architectures into depth columns.
    runs = [
        run("s", i, (16 + 7 * i,) * (1 + i % 2), 0.8 + i / 1000, learning_rate=10 ** (-3 + i / 7))
        for i in range(21)
    ]
    t = factor_table(runs, "learning_rate", title="t", row_header="lr")
    assert [label for label, _ in t.rows] == ["0.001 - 0.01", "0.01 - 0.1", "0.1 - 1"]
    assert t.columns == ["1 hidden layer", "2 hidden layers"]
    assert sum(len(c.runs) for _, cells in t.rows for c in cells) == 21
    tables = study_tables(runs)
    assert [x.title for x in tables] == [
        "Best validation accuracy by architecture (depth x width)",
        "Best validation accuracy by learning rate",
    ]
    assert tables[0].columns == ["16-31", "32-63", "64-127", "128-255"]


def test_lab_studies_match_the_configs():
    names = sorted(p.stem for p in (ROOT / "studies").glob("seed-lab-*.toml"))
    assert sorted(LAB_STUDIES) == names


def test_every_plot_is_drawn_with_a_running_trial(tmp_path):
    # A running trial has only its suggested params (hyperparams are stored at its end).
    runs = [
        dataclasses.replace(
            run("s", i, (16 * (1 + i % 3),), 0.8 + i / 100, learning_rate=0.1 * (1 + i % 2),
                momentum=0.1 * (i % 4)),
            curve=(0.7, 0.75 + i / 100, 0.8 + i / 100),
        )
        for i in range(8)
    ]  # fmt: skip
    runs.append(Run("s", 8, "running", None, {"layers": 1}, "784x64x10", (0.5,)))
    runs.append(run("s", 9, (32,), None, state="diverged", learning_rate=0.3, momentum=0.9))
    counts = {"complete": 8, "running": 1, "diverged": 1}
    notes = draw_plots(runs, tmp_path, counts=counts, multi=False)
    assert notes == {}
    for filename, _ in PLOTS:
        assert png_size(tmp_path / filename)[0] > 300


def test_pareto_front_keeps_each_run_no_smaller_run_beats_in_either_direction():
    from search.reporting.plots import pareto_front

    runs = [
        run("s", 0, (16,), 0.80),  # 12,730 parameters
        run("s", 1, (32,), 0.78),  # bigger and worse: off the front
        run("s", 2, (64,), 0.85),
        run("s", 3, (64, 64), 0.84),  # bigger and worse
        run("s", 4, (16, 16), 0.90, state="pruned"),  # not complete: never on it
    ]
    assert [r.trial for r in pareto_front(runs)] == [0, 2]
    assert runs[0].n_params == 784 * 16 + 16 + 16 * 10 + 10
    lower = [dataclasses.replace(r, maximize=False) for r in runs]  # RMSE: lower is better
    assert [r.trial for r in pareto_front(lower)] == [0, 1]


def test_a_cell_of_pruned_runs_shows_the_best_score_and_where_it_stopped():
    from search.reporting.tables import Cell

    pruned = [
        dataclasses.replace(run("s", 0, (16,), None, state="pruned"), value=0.81, curve=(0.81,)),
        dataclasses.replace(
            run("s", 1, (16,), None, state="pruned"), value=0.86, curve=(0.8, 0.86, 0.85, 0.84)
        ),
    ]
    assert Cell(pruned).text == "pruned: 0.8600 by epoch 4"


def test_view_study_plots_a_few_numeric_values_as_choices():
    from optuna.distributions import CategoricalDistribution

    from search.reporting.plots import view_study

    runs = [
        run("s", i, (16 * (i + 1),), 0.8, batch_size=bs) for i, bs in enumerate([256, 512, 256])
    ]
    view = view_study(runs)
    dist = view.trials[0].distributions["batch_size"]
    assert isinstance(dist, CategoricalDistribution) and dist.choices == (256, 512)


def _spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rho of two lists without ties, from its textbook formula."""
    n = len(a)
    rank_a = {v: i for i, v in enumerate(sorted(a))}
    rank_b = {v: i for i, v in enumerate(sorted(b))}
    d2 = sum((rank_a[x] - rank_b[y]) ** 2 for x, y in zip(a, b, strict=True))
    return 1 - 6 * d2 / (n * (n * n - 1))


@pytest.mark.slow
def test_reseed_trains_the_top_trials_again_once_and_reports_scores_and_rank_agreement(
    tiny_study, tmp_path, real_data_dir
):
    import math

    s = tiny_study.copy_to(tmp_path / "copy")
    args = ["report", "--study", s.name, "--storage", s.storage, "--data-dir", real_data_dir]
    # All three completed trials: rank agreement needs three rows with both scores.
    r = invoke(*args, "--reseed", "3", "--out", tmp_path / "r1")
    assert r.exit_code == 0, r.output
    assert r.output.count("reseed: trial #") == 3
    noise = json.loads((tmp_path / "r1" / "report.json").read_text())["selection_noise"]
    rows = noise["rows"]
    assert [row["rank"] for row in rows] == [1, 2, 3]
    # Real accuracies, not merely truthy values (NaN is truthy).
    for row in rows:
        assert isinstance(row["reseeded"], float) and math.isfinite(row["reseeded"]), row
        assert 0.0 <= row["reseeded"] <= 1.0 and row["seed"] is not None, row
    assert rows[0]["selection"] >= rows[1]["selection"] >= rows[2]["selection"]
    selection, reseeded = [r["selection"] for r in rows], [r["reseeded"] for r in rows]
    assert len(set(selection)) == len(set(reseeded)) == 3, rows  # no ties: one rho to check
    assert noise["rank_agreement"] == pytest.approx(_spearman(selection, reseeded))
    assert "How much of the ranking is noise" in (tmp_path / "r1" / "index.html").read_text()
    again = invoke(*args, "--reseed", "3", "--out", tmp_path / "r2")
    assert again.exit_code == 0 and "reseed: trial #" not in again.output  # stored, reused
    noise2 = json.loads((tmp_path / "r2" / "report.json").read_text())["selection_noise"]
    assert noise2 == noise


def test_importance_counts_momentum_only_in_the_sgd_trials():
    import matplotlib

    matplotlib.use("Agg")
    from search.reporting.plots import _importances_with_counts

    runs = []
    for i in range(12):
        sgd = i < 3
        hp = {
            "optimizer": "sgd" if sgd else "adam",
            "momentum": 0.1 * (i + 1) if sgd else 0.0,  # what an Adam trial stores
            "learning_rate": 0.001 * (i + 1),
            "dropout": 0.02 * i,
            "regularizer": "none",
            "reg_strength": 0.0,
            "widths": [32 + 8 * i],
        }
        arch = f"784x{32 + 8 * i}x10"
        runs.append(Run("s", i, "complete", 0.8 + 0.01 * (i % 5), hp, arch, (0.7, 0.8)))
    fig = _importances_with_counts(runs)
    said = [t.get_text() for t in fig.axes[0].get_yticklabels()] + [t.get_text() for t in fig.texts]
    about_momentum = [s for s in said if "momentum" in s]
    assert about_momentum and all("3 of 12" in s for s in about_momentum), said
    assert not any("reg_strength" in s for s in said)  # no trial had a regularizer


def test_best_trial_line_leaves_out_parameters_that_do_not_act(tmp_path):
    from search.reporting.html import page
    from search.reporting.plots import PLOTS

    for filename, _ in PLOTS:
        (tmp_path / filename).write_bytes(b"png")
    hp = {
        "optimizer": "adam",
        "learning_rate": 0.0008992551746562823,
        "momentum": 0.0,
        "regularizer": "none",
        "reg_strength": 0.0,
        "dropout": 0.05,
        "batch_size": 256,
    }
    meta = {
        "counts": {
            "complete": 1,
            "pruned": 0,
            "diverged": 0,
            "failed": 0,
            "running": 0,
            "waiting": 0,
        },
        "studies": ["s"],
        "storage": "sqlite:///x.db",
        "generated": "now",
        "metric": "validation accuracy",
        "best": {
            "value": 0.9,
            "study": "s",
            "trial": 3,
            "architecture": "784x64x10",
            "hyperparams": hp,
        },  # fmt: skip
    }
    html_text = page(meta, [], tmp_path, {})
    line = html_text[html_text.index("Best trial") :].split("</p>")[0]
    assert "momentum" not in line and "reg_strength" not in line  # Adam, no regularizer
    assert "learning_rate 0.0008993" in line and "regularizer none" in line


def test_parallel_coordinates_draw_only_the_best_completed_trials():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.collections import LineCollection

    from search.reporting.plots import _plot_parallel

    runs = [
        run("s", i, (16 + i,), 0.5 + i / 100, optimizer="sgd" if i % 2 else "adam",
            momentum=0.5 if i % 2 else 0.0, learning_rate=0.001 * (1 + i))
        for i in range(30)
    ]  # fmt: skip
    runs.append(run("s", 30, (8,), None, state="pruned"))
    ax = _plot_parallel(runs, label="validation accuracy", top=5).axes[0]
    assert ax.get_title() == "Parallel coordinates of the best 5 of 30 completed trials"
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert sum(len(c.get_segments()) for c in lines) == 5
    ax = _plot_parallel(runs[:3], label="validation accuracy", top=5).axes[0]
    assert ax.get_title() == "Parallel coordinates of all 3 completed trials"
