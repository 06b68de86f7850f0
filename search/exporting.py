"""Best model + model card, with test metrics measured once, here and nowhere else.

The search selects on the validation split only; export is the single place that reads the
test set, so the reported test accuracy is an honest estimate (the lab report selected on it).
What the card says is written in card.py; this module picks the members, refits or loads
them, averages them, tests the result and swaps the export folder in whole.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from search import datasets
from search.artifacts import MODEL_FILE, kept_models
from search.card import (
    model_card,
    package_versions,  # noqa: F401  (benchmarks import it from here)
    render_card_md,
)
from search.config import DEFAULT_ENSEMBLE, DEFAULT_REFIT, Config, export_folds
from search.data import Split, file_sha256
from search.errors import ExportError, StudyError
from search.metrics import METRICS, of_study, score
from search.space import stored_best_epoch, stored_hyperparams
from search.studies import check_split, stored_config
from search.training import Rows, outputs, train, trial_seed, validation_score

if TYPE_CHECKING:
    import optuna


def prepare_out_dir(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise ExportError(f"output path {str(out)!r} is a file; give a directory (--out DIR)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create output directory {str(out)!r}: {e.strerror}") from None
    return out


def _download(store, artifact_id: str, dest: Path) -> None:
    from optuna.artifacts.exceptions import ArtifactNotFound

    try:
        with open(dest, "wb") as out, store.open_reader(artifact_id) as src:
            shutil.copyfileobj(src, out, 1 << 20)
    except ArtifactNotFound:
        raise ExportError(
            f"the kept model {artifact_id} is missing from the artifact store; "
            "pass the --artifacts directory the study was run with"
        ) from None


def verify_sha256(path: Path, entry: dict[str, Any]) -> None:
    """The downloaded model must be the file that was kept: its SHA-256 was recorded in the
    study when it was kept (artifacts.keep_if_top). A file swapped in the artifact store (a
    shared volume or bucket) is refused before Keras reads it. Entries of studies made before
    hashes were recorded have none; Keras' safe_mode still guards their loading."""
    want = entry.get("sha256")
    if want is None:
        return
    got = file_sha256(path)
    if got != want:
        raise ExportError(
            f"the kept model of trial {entry.get('trial')} in the artifact store is not the "
            f"file that was kept (SHA-256 {got[:12]}..., recorded {str(want)[:12]}...); it "
            "was changed after the trial saved it, so it is not loaded"
        )


def evaluate(model, x, y: np.ndarray, split: Split) -> dict[str, Any]:
    """Test metrics from one forward pass of the exported model on raw test inputs.
    Classification: accuracy, balanced accuracy, cross-entropy, per class, confusion matrix;
    regression: RMSE, MAE and R² in the target's own units."""
    out = outputs(model, x)
    if split.task == "regression":
        pred, err = out.reshape(-1), out.reshape(-1) - y
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        return {
            "test_metrics": ["test_rmse", "test_mae", "test_r2"],
            "test_rmse": score(METRICS["rmse"], y, out),
            "test_mae": float(np.mean(np.abs(err))),
            "test_r2": 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan"),
            "test_examples": int(len(y)),
            "test_prediction_mean": float(pred.mean()),
        }
    pred = out.argmax(axis=1)
    n_classes = out.shape[1]
    # A test label the training part lacked (datasets.UNSEEN_CLASS, -1) has no output: the
    # row counts as an error, with probability 0 for its class, and stays out of the matrix.
    known = y >= 0
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y[known], pred[known]), 1)
    support = confusion.sum(axis=1)
    per_class = np.divide(np.diag(confusion), support, out=np.zeros(n_classes), where=support > 0)
    p_true = np.where(known, out[np.arange(len(y)), np.maximum(y, 0)], 0.0)
    loss = float(-np.mean(np.log(np.clip(p_true, 1e-12, 1.0))))
    names = split.classes if len(split.classes) == n_classes else tuple(map(str, range(n_classes)))
    return {
        "test_metrics": ["test_accuracy", "test_balanced_accuracy", "test_loss"],
        "test_accuracy": score(METRICS["accuracy"], y, out),
        "test_balanced_accuracy": score(METRICS["balanced_accuracy"], y, out),
        "test_loss": loss,
        "test_examples": int(len(y)),
        "test_unseen_rows": int((~known).sum()),
        "classes": list(names),
        "per_class_accuracy": {names[i]: round(float(a), 4) for i, a in enumerate(per_class)},
        "confusion_matrix": confusion.tolist(),
    }


@dataclass(frozen=True)
class Member:
    """A trial whose model goes into the export."""

    trial: Any  # optuna FrozenTrial
    entry: dict[str, Any] | None  # its kept-model entry (None: refit needs none)


def select_members(
    study: optuna.Study,
    *,
    k: int = 1,
    refit: bool = False,
    max_params: int | None = None,
    up_to: bool = False,
) -> list[Member]:
    """The k best completed trials within the budgets (at most max_params parameters, none
    over the study's max_latency_ms): with a kept model each, unless they are refit from
    their hyperparameters (then any completed trial will do). up_to: fewer than k kept
    models is no error (k was the default, not asked for)."""
    from optuna.trial import TrialState

    from search.runner import OVER_LATENCY

    metric = of_study(study)
    completed = sorted(
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
        key=lambda t: metric.rank_key(t.value),
    )
    if not completed:
        raise StudyError(
            f"study {study.study_name!r} has no completed trial yet; "
            f"run `fsearch run --study {study.study_name}` first"
        )
    within = [t for t in completed if t.user_attrs.get(OVER_LATENCY, 0) <= 0]
    if not within:
        slowest = min(t.user_attrs.get("latency_ms", math.inf) for t in completed)
        raise ExportError(
            f"every completed trial of study {study.study_name!r} is slower than its "
            f"max_latency_ms (the fastest: {slowest:.3g} ms); run more trials, or a study "
            "with a larger [study] max_latency_ms"
        )
    completed = within
    if max_params is not None:
        completed = [t for t in completed if t.user_attrs.get("n_params", 0) <= max_params]
        if not completed:
            raise ExportError(
                f"no completed trial of study {study.study_name!r} has at most {max_params:,} "
                "parameters; raise --max-params, or run a study with [study] max_params"
            )
    kept = {e["trial"]: e for e in kept_models(study)}
    if refit:
        return [Member(t, kept.get(t.number)) for t in completed[:k]]
    members = [Member(t, kept[t.number]) for t in completed if t.number in kept][:k]
    if len(members) < k and not (up_to and members):
        if not members:
            raise ExportError(
                f"study {study.study_name!r} has completed trials but no kept model"
                + (" within the budget" if max_params is not None else "")
                + " (run with another --artifacts directory?); --refit trains the best "
                "configuration again instead"
            )
        raise ExportError(
            f"--ensemble {k} needs {k} kept models but the study keeps {len(members)}"
            + (" within the budget" if max_params is not None else "")
            + "; use --ensemble "
            f"{len(members)}, --refit (trains each again), or more [study] keep_models"
        )
    return members


def refit_model(trial, split: Split, config: Config, *, name: str):
    """The trial's configuration trained again on all training rows (its train and
    validation parts) for the epochs it was selected at, seeded. A cosine schedule keeps its
    length in epochs (`epochs` of the space) over the new, larger step count."""
    hp = stored_hyperparams(trial, config, **split.dims)
    epochs = stored_best_epoch(trial, hp)
    seed = trial_seed(config.study.seed, trial.number, "refit")
    rows = Rows.refit(split)
    model = _train_again(
        hp, rows, split, config, seed=seed, epochs=epochs, name=name,
        what=f"refitting trial {trial.number}", instead="export it without --refit",
    )  # fmt: skip
    return model, {"trial": trial.number, "epochs": epochs, "seed": seed, "rows": len(rows)}


def _train_again(
    hp, rows: Rows, split: Split, config: Config, *, seed, epochs, name, what, instead
):
    """A selected configuration trained again at export (a refit, a fold), seeded, for
    `epochs`; a fit whose loss ended non-finite is an ExportError: "WHAT diverged ...;
    INSTEAD". fresh_session False: the export's earlier models live in this Keras session."""
    model, history = train(
        hp,
        rows,
        task=split.task,
        settings=config.train,
        seed=seed,
        epochs=epochs,
        name=name,
        fresh_session=False,
        table=split.preprocessing.table,
    )
    loss = history.history["loss"][-1]
    if not np.isfinite(loss):
        raise ExportError(f"{what} diverged (loss {loss}) with seed {seed}; {instead}")
    return model


def fold_ids(y: np.ndarray, k: int, seed: int, *, stratify: bool) -> np.ndarray:
    """Each row's fold (0..k-1), seeded: shuffled, and for classification dealt out class by
    class so every fold holds each class in proportion (as scikit-learn's StratifiedKFold)."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=np.int64)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(len(y))]
    dealt = 0
    for rows in groups:
        rows = rng.permutation(rows)
        # Carried on from the last class, so the folds' sizes differ by one row at most.
        folds[rows] = (dealt + np.arange(len(rows))) % k
        dealt += len(rows)
    return folds


@dataclass
class CrossValidated:
    """One configuration's K fold models and its out-of-fold score."""

    trial: Any  # optuna FrozenTrial
    models: list
    value: float  # the study's metric on the out-of-fold predictions of all training rows
    info: dict[str, Any]


def cross_validate(
    trial, split: Split, config: Config, metric, folds: np.ndarray, *, tag: str
) -> CrossValidated:
    """The trial's configuration trained K times, each time on all training rows (train +
    validation) but one fold, for the epochs it was selected at, seeded per fold; scored on
    the predictions each row got from the model that did not train on it. The data's
    preprocessing (scaling, quantiles, embeddings' bins) stays the one fitted on the search's
    train part, as in a refit: unsupervised statistics, the same for every fold."""
    hp = stored_hyperparams(trial, config, **split.dims)
    epochs = stored_best_epoch(trial, hp)
    rows = Rows.refit(split)
    k = int(folds.max()) + 1
    models, seeds, oof = [], [], None
    for f in range(k):
        held = folds == f
        seed = trial_seed(config.study.seed, trial.number, "fold", part=f)
        model = _train_again(
            hp, rows.subset(~held), split, config, seed=seed, epochs=epochs,
            name=f"fold_{f + 1}_of_{tag}", what=f"fold {f + 1} of trial {trial.number}",
            instead="export without --folds",
        )  # fmt: skip
        out = outputs(model, rows.x[held])
        if oof is None:
            oof = np.zeros((len(rows), out.shape[1]), dtype=np.float64)
        oof[held] = out
        models.append(model)
        seeds.append(seed)
    value = score(metric, rows.y, oof, y_std=split.y_std, y_mean=split.y_mean, y_log=split.y_log)
    info = {
        "trial": trial.number,
        "epochs": epochs,
        "seeds": seeds,
        "validation_value": trial.value,
        "cv_value": value,
    }
    return CrossValidated(trial, models, value, info)


def bag_best(
    members: list[Member],
    split: Split,
    config: Config,
    metric,
    k: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[CrossValidated, dict[str, Any]]:
    """--folds K: each candidate configuration cross-validated on the same K folds of the
    training rows; the one with the best out-of-fold score wins, and its K fold models are
    the export (averaged). The search itself keeps one validation split (its pruning needs
    one learning curve per trial); this re-ranks its best few on every training row."""
    y = np.concatenate([split.y_train, split.y_val])
    if k > len(y):
        raise ExportError(f"--folds {k} is more than the {len(y)} training rows; use fewer")
    seed = trial_seed(config.study.seed, 0, "fold split")
    folds = fold_ids(y, k, seed, stratify=split.task != "regression")
    best, tried = None, []
    for i, m in enumerate(members):
        if progress is not None:
            progress(
                f"cross-validating trial #{m.trial.number} ({i + 1} of {len(members)}): "
                f"{k} folds of {len(y):,} rows..."
            )
        t0 = time.perf_counter()
        cv = cross_validate(m.trial, split, config, metric, folds, tag=f"trial_{m.trial.number}")
        cv.info["seconds"] = round(time.perf_counter() - t0, 1)
        tried.append(cv.info)
        if progress is not None:
            progress(
                f"trial #{m.trial.number}: out-of-fold {metric.name} {metric.format(cv.value)}"
            )
        if best is None or metric.better(cv.value, best.value):
            best = cv  # the others' models are dropped with their CrossValidated
    info = {"k": k, "rows": int(len(y)), "split_seed": seed, "candidates": tried}
    info["selected"] = best.trial.number
    info["cv_value"] = best.value
    return best, info


def _kept_model(store, member: Member, scratch: Path, *, name, split: Split, config: Config):
    import keras

    import search.layers  # noqa: F401  (registers fsearch's layers a kept model may hold)
    from search.model import build_model

    path = scratch / f"member-{member.trial.number}.keras"
    _download(store, member.entry["artifact_id"], path)
    verify_sha256(path, member.entry)
    loaded = keras.saving.load_model(path)
    if name is None:
        return loaded
    # Rebuilt under a name of its own (an ensemble holds several nets of one architecture),
    # with the kept weights.
    hp = stored_hyperparams(member.trial, config, **split.dims)
    # train_size: a cosine schedule is part of the compiled model (never used to predict).
    model = build_model(
        hp,
        task=split.task,
        name=name,
        train_size=len(split.y_train),
        table=split.preprocessing.table,
    )
    model.set_weights(loaded.get_weights())
    return model


def for_inference(model):
    """The same network and weights, uncompiled: the file then holds no optimizer state
    (Adam's moments, which made a kept model several times the size of its weights:
    BENCHMARKS.md `export-modes`, seed 1, "MiB" against "parameters") and loads without a
    training configuration."""
    import keras

    # From the config, not keras.models.clone_model: that one compiles the clone again.
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return clone


def average(models: list, input_dim: int):
    """One plain functional model whose output is the mean of the members' outputs (class
    probabilities, or the standardized target); loads without custom objects."""
    import keras

    if len(models) == 1:
        return models[0]
    # Each member uncompiled first: a compiled member nested in the ensemble keeps its
    # optimizer's variables through for_inference (Adam's two moments: 3x the file).
    models = [for_inference(m) for m in models]
    inputs = keras.Input(shape=(input_dim,), name="x")
    out = keras.layers.Average(name="ensemble_mean")([m(inputs) for m in models])
    return keras.Model(inputs, out, name=f"ensemble_of_{len(models)}")


def export_best(
    study: optuna.Study,
    store,
    out: Path,
    *,
    data_dir: str | None = None,
    storage_masked: str = "",
    refit: bool = DEFAULT_REFIT,
    ensemble: int | None = None,
    max_params: int | None = None,
    progress: Callable[[str], None] | None = None,
    split: Split | None = None,
    folds: int | None = None,
) -> dict[str, Any]:
    """Write model.keras, model-card.json and model-card.md: the study's best kept model, or
    (refit) its configuration trained on train + validation, or (ensemble K) the average of
    the K best, within max_params parameters per member if given. Test is read once, last.
    progress: told one line before each refit (they take minutes on the default study).
    ensemble None: DEFAULT_ENSEMBLE, or 1 under a parameter budget (a budget is for the model
    that is deployed; an explicit --ensemble K with a budget holds each member to it).
    split: the study's data when the caller has it loaded (the end of a run), else loaded
    here; either way checked against the study's split.
    folds K: the `ensemble` best configurations (3 by default) cross-validated on K folds of
    train + validation; the best out-of-fold one is exported as its K fold models averaged
    (bag_best). None: the study's [study] folds (config.export_folds); 0: no folds."""
    config = stored_config(study)
    if max_params is None:  # the study's own budget, if it has one
        max_params = config.study.max_params or None
    folds = export_folds(
        folds, config.study.folds, refit=refit, max_params=max_params, ensemble=ensemble
    )
    up_to = ensemble is None
    if ensemble is None:
        ensemble = 1 if max_params is not None else DEFAULT_ENSEMBLE
    if ensemble < 1:
        raise ExportError(f"--ensemble must be at least 1, got {ensemble}")
    t0 = time.perf_counter()
    check_out_dir(out)
    metric = of_study(study)
    members = select_members(study, k=ensemble, refit=refit, max_params=max_params, up_to=up_to)
    if split is None:
        split = datasets.load_split(config.data, data_dir)
    # The rows must be those the study selected on: a changed or reshuffled file would
    # score models on rows they trained on.
    check_split(study, split)
    for m in members:  # stored values checked before minutes of training, not after
        hp = stored_hyperparams(m.trial, config, **split.dims)
        if refit:
            stored_best_epoch(m.trial, hp)
    # Everything is made in a scratch folder beside `out` and swapped in as a whole once the
    # test metrics and both cards exist: a failed or interrupted export leaves the previous
    # one whole, and no reader ever sees a new model beside an old card.
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.export-"))
    try:
        models, refits, bag = [], [], None
        if folds is not None:
            cv, bag = bag_best(members, split, config, metric, folds, progress)
            members, models = [m for m in members if m.trial is cv.trial], cv.models
            kept_or_refit: list = []  # the fold models are the export
        else:
            kept_or_refit = members
        for i, m in enumerate(kept_or_refit):
            name = f"member_{i + 1}_trial_{m.trial.number}" if len(members) > 1 else None
            if refit:
                t_member = time.perf_counter()
                if progress is not None:
                    progress(
                        f"refitting trial #{m.trial.number} ({i + 1} of {len(members)}) on "
                        f"{len(split.y_train) + len(split.y_val):,} rows..."
                    )
                model, info = refit_model(m.trial, split, config, name=name or "refit")
                info["seconds"] = round(time.perf_counter() - t_member, 1)
                refits.append(info)
            else:
                model = _kept_model(store, m, scratch, name=name, split=split, config=config)
            models.append(model)
        core = average(models, split.input_dim)
        export_info: dict[str, Any] = {
            "mode": "folds"
            if bag is not None
            else " ".join(w for w, on in (("refit", refit), ("ensemble", len(members) > 1)) if on)
            or "selected",
            "members": [m.trial.number for m in members],
            "member_validation_values": [m.trial.value for m in members],
            "member_architectures": [m.trial.user_attrs.get("architecture") for m in members],
            "train_rows": int(len(split.y_train)),
        }
        if bag is not None:
            export_info["folds"] = bag
        elif refit:
            export_info["refit"] = refits
        elif len(members) > 1:
            # Measured on the validation split, before the test set is read below. The same
            # split chose the members, so this value is optimistic (the card says so).
            export_info["ensemble_validation_value"] = validation_score(core, split, metric)
        if max_params is not None:
            export_info["max_params"] = max_params
        model = datasets.inference_model(core, split)
        model = for_inference(model)
        for leftover in scratch.iterdir():  # kept members' downloads: not part of the export
            leftover.unlink()
        model_path = scratch / MODEL_FILE
        model.save(model_path)
        x_test, y_test = datasets.load_test(config.data, data_dir)
        metrics = evaluate(model, x_test, y_test, split)
        card = model_card(
            study, members[0].trial, config, model, metrics, split, data_dir, storage_masked
        )
        card["export"] = export_info
        card["model_sha256"] = file_sha256(model_path)
        card["model_bytes"] = model_path.stat().st_size
        card["export_seconds"] = round(time.perf_counter() - t0, 1)
        # allow_nan=False: a NaN or infinite figure is a bug to see here, not a card that
        # JSON readers refuse.
        text = json.dumps(card, indent=2, allow_nan=False)
        (scratch / "model-card.json").write_text(text + "\n", "utf-8")
        (scratch / "model-card.md").write_text(render_card_md(card), encoding="utf-8")
        swap_in(scratch, out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return card


EXPORT_FILES = (MODEL_FILE, "model-card.json", "model-card.md")


def check_out_dir(out: Path) -> None:
    """`out` will be replaced as a whole: it must be new, or an export folder (nothing in it
    but an export's files), never a folder of the user's."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"output path {str(out)!r} is a file; give a directory (--out DIR)")
    if out.is_dir():
        # .export-*: the scratch folder of an export before folders were swapped whole.
        others = sorted(
            p.name
            for p in out.iterdir()
            if p.name not in EXPORT_FILES and not p.name.startswith(".export-")
        )
        if others:
            raise ExportError(
                f"output directory {str(out)!r} holds other files ({', '.join(others[:3])}"
                f"{', ...' if len(others) > 3 else ''}); an export replaces its folder as a "
                "whole: give a new or empty directory (--out DIR)"
            )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create output directory {str(out)!r}: {e.strerror}") from None


def swap_in(new: Path, out: Path) -> None:
    """Put the folder `new` in place of `out` as a whole: two renames under a lock (two
    exports at once take turns; between the renames `out` is briefly absent, never mixed)."""
    import fcntl

    lock_path = out.parent / f".{out.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(new, 0o777 & ~umask)  # mkdtemp's 0700 would hide the export from others
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            os.replace(out, old / "previous")
        os.replace(new, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
