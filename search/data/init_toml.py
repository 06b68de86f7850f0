"""A study config to start from: the TOML `fsearch init` writes for a data file (and
`fsearch run --data` uses without a config), the default study's search sized to the data."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from search.config import (
    DEFAULT_ENSEMBLE,
    FOLDS_MAX_ROWS,
    TABLE_FOLDS,
    Config,
    DataSettings,
    parse_config,
    validate_study_name,
)
from search.data.loading import load_split
from search.data.task import target_of
from search.errors import DataError, UnusableColumn


def study_document(
    source: str, target: str = "", *, name: str | None = None
) -> tuple[dict[str, Any], list[str], str]:
    """The study for a data file as a TOML document (a dict, as tomllib would read it): the
    default study's search, sized to the data. Returns (document, notes, the task's note)."""
    return _document(source, target, name=name)[:3]  # type: ignore[return-value]


def _document(
    source: str, target: str = "", *, name: str | None = None
) -> tuple[dict[str, Any], list[str], str, int, list[str]]:
    dropped: dict[str, str] = {}
    # A column that cannot be a feature (an identifier, free text, a timestamp) is dropped
    # here, said in the notes and written as `drop = [...]`: the config made for a file must
    # not stop at what a user would only drop. The target itself stays an error.
    while True:
        settings = DataSettings(
            source=source, target=target, validation_fraction=0.2, drop=tuple(dropped)
        )
        try:
            tgt = target_of(settings, read_whole=True)
            split = load_split(settings)
            break
        except UnusableColumn as e:
            if e.column in dropped or e.column == target:
                raise
            dropped[e.column] = e.why
    n = len(split.y_train)
    rows = n + len(split.y_val)
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", Path(source).name.split(".")[0]).strip("-.") or "data"
    name = validate_study_name(name or f"{stem}-mlp"[:100], where="--study")
    # Small data: smaller batches (enough steps per epoch) and more epochs, which are cheap.
    if n < 2000:
        batches, epochs, widths = [32, 64], 40, 512
    elif n < 20000:
        batches, epochs, widths = [64, 128, 256], 20, 1024
    else:
        batches, epochs, widths = [256, 512], 12, 1024
    document = {
        "study": {
            "name": name,
            "seed": 42,
            "sampler": "tpe",
            "pruner": "hyperband",
            "reduction_factor": 4,
            # Optuna's Hyperband default: the best so far at a rung goes on. With the default
            # study's bootstrap_count = 3 (the first 3 at each rung stop there), a 30-trial
            # study made by `benchmarks.own_data compare` ended with no completed trial.
            "bootstrap_count": 0,
            "keep_models": 3,
            **({"folds": TABLE_FOLDS} if split.kind == "table" and rows <= FOLDS_MAX_ROWS else {}),
        },
        "data": {
            "source": source,
            **({"target": target} if target else {}),
            **({"drop": list(dropped)} if dropped else {}),
            "task": tgt.task,
            "metric": tgt.metric.key,
            "validation_fraction": 0.2,
            "test_fraction": 0.2,
            "seed": 0,
        },
        "model": {"width_per_layer": False},
        "space": table_space(split, batches=batches, epochs=epochs, widths=widths)
        if split.kind == "table"
        else {
            "layers": {"low": 1, "high": 4},
            "width": {"low": 16, "high": widths, "log": True},
            "activation": "relu",
            "optimizer": ["sgd", "adam", "rmsprop"],
            "learning_rate": {"low": 1e-4, "high": 0.3, "log": True},
            "momentum": {"low": 0.0, "high": 0.95},
            "regularizer": ["none", "l1", "l2"],
            "reg_strength": {"low": 1e-6, "high": 1e-3, "log": True},
            "dropout": {"low": 0.0, "high": 0.5},
            "batch_size": batches,
            "epochs": epochs,
            "lr_schedule": "cosine",
        },
    }
    notes = [f"column {c!r} left out (drop = [...] in [data]): {why}" for c, why in dropped.items()]
    skew = _positive_skew(split)
    if skew is not None:
        notes.append(
            f"the target is >= 0 and right-skewed (skewness {skew:.1f}): target_transform = "
            '"log" in [data] fits log(1 + y) instead; a study of each compares them on '
            "validation"
        )
    return document, [*notes, *split.notes], tgt.note or "arrays", rows, notes


# A target's skewness above this earns init's hint about target_transform = "log" (a hint
# only: the transform is never chosen for the user). 1 is the usual "highly skewed" line.
SKEW_HINT = 1.0


def _positive_skew(split) -> float | None:
    """The target's skewness over the training and validation rows (never the test part),
    for a regression target >= 0 skewed more than SKEW_HINT; else None."""
    if split.task != "regression" or split.y_log:
        return None
    y = np.concatenate([split.y_train, split.y_val]).astype(np.float64) * split.y_std
    y += split.y_mean
    sd = y.std()
    if y.min() < 0 or sd == 0:
        return None
    skew = float(np.mean(((y - y.mean()) / sd) ** 3))
    return skew if skew > SKEW_HINT else None


def table_space(split, *, batches: list[int], epochs: int, widths: int) -> dict[str, Any]:
    """The search space of a table, from the tabular networks' published spaces and defaults
    (not tuned here): AdamW with weight decay and a learning rate in the Adam range (TabM,
    "Revisiting Deep Learning Models for Tabular Data"), ReLU / SELU / Mish (RealMLP-TD uses
    SELU and Mish), dropout up to 0.5, label smoothing up to 0.2 for classes (RealMLP-TD: 0.1),
    and the choices the search makes per study on validation: numbers standardized, robust
    scaled with smooth clipping (RealMLP) or quantile transformed (TabM, RTDL); periodic or
    piecewise-linear embeddings of numbers or none (MLP-PLR and MLP-Q-LR, with the periodic
    frequencies' scale searched over the paper's range, cut at 10); wide categories one-hot
    or embedded. L1/L2 stay out: weight decay does their work. Arrays keep the default
    study's space (the other branch of study_document)."""
    space: dict[str, Any] = {
        "layers": {"low": 1, "high": 4},
        "width": {"low": 32, "high": widths, "log": True},
        "activation": ["relu", "selu", "mish"],
        "optimizer": "adamw",
        "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
        "weight_decay": {"low": 1e-5, "high": 0.1, "log": True},
        "momentum": 0.0,  # sgd only: not used by adamw
        "regularizer": "none",
        "reg_strength": 0.0,
        "dropout": {"low": 0.0, "high": 0.5},
    }
    if split.task == "classification":
        space["label_smoothing"] = {"low": 0.0, "high": 0.2}
    table = split.preprocessing.table
    if table and table.columns:
        space["numeric"] = ["standardize", "robust", "quantile"]
        space["embedding"] = ["none", "periodic", "piecewise"]
        space["embedding_scale"] = {"low": 0.01, "high": 10.0, "log": True}
    if table and table.categories:
        space["categories"] = ["onehot", "embed"]
    space.update({"batch_size": batches, "epochs": epochs, "lr_schedule": "cosine"})
    return space


# `fsearch run --data F` with neither --trials nor --timeout searches for this long, sized to
# the rows (an epoch's time grows with them): 0.05 s per training row, between 5 minutes and
# an hour. A table user expects minutes, not 200 trials of unknown length.
DATA_BUDGET_S_PER_ROW = 0.05
DATA_BUDGET_S = (300.0, 3600.0)


def data_time_budget(rows: int) -> float:
    """The default time budget, in seconds, of a --data run on `rows` training rows."""
    low, high = DATA_BUDGET_S
    return float(min(high, max(low, rows * DATA_BUDGET_S_PER_ROW)))


def study_config(
    source: str, target: str = "", *, name: str | None = None
) -> tuple[Config, list[str], int]:
    """The Config `fsearch run --data` uses without a config file: the document `fsearch
    init` prints, made directly (no TOML text in between). Returns (config, what it decided
    about the data that loading it will not say again: the columns left out, the training
    part's rows: train + validation)."""
    document, _, _, rows, notes = _document(source, target, name=name)
    return parse_config(document, source=f"<made for --data {source}>"), notes, rows


# Comments written after a key's value in `fsearch init`'s TOML; commented-out keys after a
# table's keys.
_COMMENTS = {
    ("study", "folds"): f"export: the {DEFAULT_ENSEMBLE} best cross-validated on "
    f"{TABLE_FOLDS} folds (0: refit)",
    ("data", "validation_fraction"): "of the training rows, held out to select on",
    ("data", "test_fraction"): "of all rows, when the file has no test part",
    ("data", "seed"): "the split is the same for every trial and run",
}
_HINTS = {
    "data": [
        "# categorical = []          # number columns to one-hot encode as categories",
        "# drop = []                 # columns that are not features (ids, free text)",
        '# missing = "error"         # stop at a blank value instead of filling it in the model',
    ],
}


def study_toml(source: str, target: str = "", *, name: str | None = None) -> tuple[str, list[str]]:
    """A study TOML for a data file (`fsearch init`): study_document, written out with
    comments. Returns (text, notes)."""
    document, notes, task_note = study_document(source, target, name=name)
    lines = [
        f"# A study of {_comment(Path(source).name)} made by `fsearch init`; edit freely.",
        "# Every [space] entry is a fixed value, a range {low, high, log?, step?} or a list of",
        '# choices. See README.md, "Your own data" and "Study config reference".',
    ]
    comments = {**_COMMENTS, ("data", "task"): f"inferred: {_comment(task_note)}"}
    for table, entries in document.items():
        lines += ["", f"[{table}]"]
        for key, value in entries.items():
            line = f"{key} = {_toml_value(value)}"
            note = comments.get((table, key))
            lines.append(f"{line:<28}# {note}" if note else line)
        lines += _HINTS.get(table, [])
        if table == "study" and "weight_decay" in document.get("space", {}):  # a table's space
            lines.append(
                '# first_trials = false      # default "auto": the tabular MLPs\' defaults go first'
            )
        if table == "data" and entries.get("task") == "regression":
            lines.append(
                '# target_transform = "log"  # fit log(1 + y): for a skewed target >= 0 (prices)'
            )
    return "\n".join([*lines, ""]), notes


def _toml_value(v: Any) -> str:
    """A value as TOML writes it: strings escaped, lists, inline tables."""
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"


def _toml_str(s: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped, everything else
    (an emoji, accents) written as itself in the UTF-8 file. (json.dumps was used before: it
    writes an emoji as a UTF-16 surrogate pair, "\\ud83d\\ude00", which TOML refuses.)"""
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n"}
    short.update({"\f": "\\f", "\r": "\\r"})
    out = []
    for ch in s:
        if 0xD800 <= ord(ch) <= 0xDFFF:  # a byte that is not UTF-8, kept by surrogateescape
            raise DataError(f"{s!r} is not valid UTF-8; rename it (the config is UTF-8 text)")
        if ch in short:
            out.append(short[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _comment(s: str) -> str:
    """Text for a TOML comment: no control characters (a newline would end the comment)."""
    return re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", " ", s)
