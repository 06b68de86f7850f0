"""benchmarks/tables.py's bookkeeping (issue #22), without its venv: the sets it declares, the
win/loss count and the median gap it reports, the metric, the TOML edit of its ablation."""

from __future__ import annotations

import dataclasses
import re

import pytest
import tomllib

from benchmarks import tables
from benchmarks.tables import FSEARCH, Result


def test_at_least_six_sets_with_unique_names_and_both_tasks():
    names = [s.name for s in tables.SETS]
    assert len(names) >= 6
    assert len(set(names)) == len(names)
    assert {s.task for s in tables.SETS} == {"classification", "regression"}
    for s in tables.SETS:  # each becomes part of a study name
        assert re.fullmatch(r"[A-Za-z0-9._-]+", s.name)


def test_sets_declare_blanks_in_number_and_text_columns_of_one_table():
    assert any(s.blank_numbers and s.blank_text for s in tables.SETS)


def test_sets_declare_a_category_of_50_values_50000_rows_and_50_columns():
    assert max(s.max_categories for s in tables.SETS) >= 50
    assert max(s.rows for s in tables.SETS) >= 50_000
    assert max(s.columns for s in tables.SETS) >= 50


def test_each_set_names_its_target_outside_the_dropped_columns():
    for s in tables.SETS:
        assert s.target and s.target not in s.drop
        assert s.package and s.item and s.why


def test_check_declared_names_each_difference_and_nothing_when_equal():
    s = tables.BY_NAME["credit"]
    same = {
        "rows": s.rows,
        "columns": s.columns,
        "max_categories": s.max_categories,
        "blank_numbers": s.blank_numbers,
        "blank_text": s.blank_text,
    }
    assert tables.check_declared(s, same) == []
    diff = tables.check_declared(s, {**same, "rows": s.rows + 1, "blank_text": ()})
    assert len(diff) == 2
    assert any("rows" in d for d in diff) and any("blank_text" in d for d in diff)


def _set(task, fsearch, lgbm, hgb, realmlp, linear):
    scores = {FSEARCH: fsearch, "LightGBM": lgbm, "HistGradientBoosting": hgb}
    scores.update({"RealMLP-TD": realmlp, "linear": linear})
    return task, [Result(tool, v, 1.0) for tool, v in scores.items()]


MADE_UP = [
    # accuracy: higher wins. fsearch beats LightGBM, ties HGB, loses to RealMLP, linear failed
    _set("classification", 0.80, 0.78, 0.80, 0.85, None),
    # accuracy: fsearch loses to LightGBM and HGB, beats RealMLP and linear
    _set("classification", 0.70, 0.74, 0.71, 0.60, 0.65),
    # RMSE: lower wins. fsearch 90 beats LightGBM's 100 and HGB's 95; loses to RealMLP's 80
    _set("regression", 90.0, 100.0, 95.0, 80.0, 120.0),
    # RMSE: fsearch could not run: nothing compared
    _set("regression", None, 10.0, 11.0, 12.0, 13.0),
]


def test_win_loss_counts_per_peer_with_each_tasks_direction():
    wl = tables.win_loss(MADE_UP)
    assert wl["LightGBM"] == {"wins": 2, "losses": 1, "ties": 0, "not compared": 1}
    assert wl["HistGradientBoosting"] == {"wins": 1, "losses": 1, "ties": 1, "not compared": 1}
    assert wl["RealMLP-TD"] == {"wins": 1, "losses": 2, "ties": 0, "not compared": 1}
    assert wl["linear"] == {"wins": 2, "losses": 0, "ties": 0, "not compared": 2}


def test_median_gap_to_lightgbm_is_points_for_accuracy_and_percent_for_rmse():
    med = tables.median_gaps(MADE_UP)
    points, n_cls = med["classification"]
    percent, n_reg = med["regression"]
    assert n_cls == 2 and points == pytest.approx(((0.80 - 0.78) + (0.70 - 0.74)) / 2 * 100)
    assert n_reg == 1 and percent == pytest.approx(-10.0)
    assert tables.median_gaps([])["regression"] == (None, 0)


def test_summary_markdown_shows_the_counts_and_the_median_gaps():
    text = tables.summary_markdown(MADE_UP)
    assert "| fsearch vs LightGBM | 2 | 1 | 0 | 1 |" in text
    assert "-1.00 accuracy points over 2 classification sets" in text
    assert "RMSE -10.0% over 1 regression sets" in text


def test_score_is_accuracy_of_labels_as_text_or_rmse():
    assert tables.score("classification", ["a", "b", "a", "1"], ["a", "a", "a", 1]) == 0.75
    assert tables.score("regression", [1.0, 3.0], [1.0, 1.0]) == pytest.approx(2**0.5)


INIT_TOML = """\
# A study of train.csv made by `fsearch init`; edit freely.

[data]
source = "train.csv"
numeric = "not the space"

[space]
layers = { low = 1, high = 4 }
numeric = ["standardize", "robust"]    # searched
embedding = ["none", "periodic"]
embedding_scale = { low = 0.01, high = 10.0, log = true }
epochs = 12
"""


def test_space_with_fixes_only_the_space_tables_key():
    out = tables.space_with(INIT_TOML, "numeric", "standardize")
    doc = tomllib.loads(out)
    assert doc["space"]["numeric"] == "standardize"
    assert doc["data"]["numeric"] == "not the space"
    assert doc["space"]["embedding"] == ["none", "periodic"]
    out = tables.space_with(INIT_TOML, "embedding", "none")
    doc = tomllib.loads(out)
    assert doc["space"]["embedding"] == "none"
    assert doc["space"]["embedding_scale"]["high"] == 10.0


def test_space_with_refuses_a_key_the_space_table_lacks():
    with pytest.raises(ValueError):
        tables.space_with(INIT_TOML, "dropout", "0.1")


def test_arm_summary_scores_the_no_first_trials_arm_in_the_default_runs_place():
    def done(task, main, arm, lgbm):
        results = [Result(FSEARCH, main, 1.0), Result("LightGBM", lgbm, 1.0)]
        arm_run = tables.FsearchRun(Result("fsearch --no-first-trials", arm, 1.0), 0.5, 3)
        other = tables.FsearchRun(Result("fsearch --first-trials", 0.0, 1.0), 0.5, 3)
        return {
            "set": dataclasses.replace(tables.BY_NAME["credit"], task=task),
            "results": results,
            "ablations": [tables.FsearchRun(results[0]), other, arm_run],  # the label, exactly
        }

    # the default run loses to LightGBM on both sets; the arm wins one and ties none
    text = tables.arm_summaries(
        [done("classification", 0.70, 0.80, 0.75), done("classification", 0.60, 0.62, 0.65)]
    )
    assert "`fsearch run --no-first-trials` (no-first-trials arm, 2 sets)" in text
    assert "| fsearch vs LightGBM | 1 | 1 | 0 | 0 |" in text
    assert "+1.00 accuracy points over 2 classification sets" in text
    assert tables.arm_summaries([{**done("regression", 1.0, 1.0, 1.0), "ablations": []}]) == ""


def test_over_seeds_means_each_tools_metric_over_the_logged_split_seeds(tmp_path):
    import argparse

    credit = tables.BY_NAME["credit"]
    log = tmp_path / "tables.jsonl"

    def logged(seed: int, ours: float, lgbm: float, floor: float = 120.0) -> None:
        args = argparse.Namespace(split_seed=seed, budget_floor=floor, jobs=None, log=str(log))
        results = [Result(FSEARCH, ours, 130.0), Result("LightGBM", lgbm, 0.1)]
        results += [Result(p, 0.70, 1.0) for p in ("HistGradientBoosting", "RealMLP-TD", "linear")]
        main = tables.FsearchRun(results[0])
        r = {"set": credit, "results": results, "ablations": [main], "budget": 120}
        tables.log_set(r, args)

    logged(0, 0.80, 0.82)
    logged(1, 0.90, 0.83)
    logged(1, 0.84, 0.83)  # seed 1 again: the latest run counts
    logged(2, 0.10, 0.99, floor=60.0)  # other settings: left out
    text = tables.over_seeds(log, 120.0, None)
    # means: fsearch (0.80 + 0.84) / 2 = 0.82 against LightGBM 0.825 -> a loss; 0.82 > 0.70.
    assert "| fsearch vs LightGBM | 0 | 1 | 0 | 0 |" in text
    assert "| fsearch vs RealMLP-TD | 1 | 0 | 0 | 0 |" in text
    assert "| credit | fsearch | 0, 1 | 0.8000, 0.8400 | 0.8200 |" in text
    assert tables.over_seeds(log, 30.0, None) == "Nothing logged with these settings."
    assert tables.logged_seeds(log, 120.0, None) == [0, 1]


def test_over_seeds_gives_a_flag_arm_logged_on_every_seed_its_rows_and_own_summary(tmp_path):
    import argparse

    log = tmp_path / "tables.jsonl"
    label = tables.arm_label(("--folds", "5"))

    def logged(name: str, seed: int, ours: float, arm: float | None) -> None:
        args = argparse.Namespace(split_seed=seed, budget_floor=120.0, jobs=None, log=str(log))
        results = [Result(FSEARCH, ours, 130.0), Result("LightGBM", 0.80, 0.1)]
        results += [Result(p, 0.70, 1.0) for p in ("HistGradientBoosting", "RealMLP-TD", "linear")]
        runs = [tables.FsearchRun(results[0], card={"card": ours - 0.01})]
        if arm is not None:
            runs.append(tables.FsearchRun(Result(label, arm, 200.0), 0.9, 5, {"card": arm - 0.02}))
        r = {"set": tables.BY_NAME[name], "results": results, "ablations": runs, "budget": 120}
        tables.log_set(r, args)

    logged("credit", 0, 0.78, 0.82)
    logged("credit", 1, 0.78, 0.84)
    logged("hpc", 0, 0.79, 0.90)
    logged("hpc", 1, 0.79, None)  # the arm not run on every seed of hpc: no arm row there
    text = tables.over_seeds(log, 120.0, None)
    assert f"| credit | {label} | 0, 1 | 0.8200, 0.8400 | 0.8300 |" in text
    assert f"| hpc | {label} |" not in text
    main, arm = text.split(f"with `{label}` in fsearch's place (1 sets)")
    assert "| fsearch vs LightGBM | 0 | 2 | 0 | 0 |" in main  # the default run loses both
    assert "| fsearch vs LightGBM | 1 | 0 | 0 | 0 |" in arm  # the arm, on credit only, wins
    # the selection split: each run's card figure, for the sets where the arm ran every seed
    assert "| credit | fsearch | 0, 1 | 0.7700, 0.7700 | 0.7700 |" in arm
    assert f"| credit | {label} | 0, 1 | 0.8000, 0.8200 | 0.8100 |" in arm
    assert "| hpc | fsearch | 0, 1 | 0.7800" not in arm


def test_card_verdict_reproduced_only_on_equal_accuracy_or_rmse_within_1e6():
    assert "0.8053 reproduced" in tables.card_verdict("classification", 0.8053, 0.8053, 713, 40)
    assert "NOT reproduced" in tables.card_verdict("classification", 0.8053, 0.8039, 713, 40)
    assert " reproduced" in tables.card_verdict("regression", 1000.0, 1000.0005, 500, 0)
    assert "NOT reproduced" in tables.card_verdict("regression", 1000.0, 1000.01, 500, 0)
    assert "could not run" in tables.card_verdict("regression", 1000.0, None, 500, 0)
    assert "(40 with blanks)" in tables.card_verdict("classification", 0.8, 0.8, 713, 40)
