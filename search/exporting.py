"""Best model + model card, with test metrics measured once, here and nowhere else.

The search selects on the validation split only; export is the single place that reads the
test set, so the reported test accuracy is an honest estimate (the lab report selected on it).
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from search.artifacts import MODEL_FILE, kept_models
from search.config import DataSettings
from search.data import CLASS_NAMES, file_sha256, load_test, read_raw
from search.errors import ExportError, StudyError
from search.studies import stored_config

if TYPE_CHECKING:
    import optuna

PACKAGES = ("fsearch", "tensorflow", "keras", "optuna", "numpy", "sqlalchemy")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def prepare_out_dir(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise ExportError(f"output path {str(out)!r} is a file; give a directory (--out DIR)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create output directory {str(out)!r}: {e.strerror}") from None
    return out


def best_kept_trial(study: optuna.Study) -> tuple[optuna.trial.FrozenTrial, dict[str, Any]]:
    """The best completed trial whose model was kept, and its kept-model entry."""
    from optuna.trial import TrialState

    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        raise StudyError(
            f"study {study.study_name!r} has no completed trial yet; "
            f"run `fsearch run --study {study.study_name}` first"
        )
    by_number = {t.number: t for t in completed}
    for entry in kept_models(study):  # best first
        trial = by_number.get(entry["trial"])
        if trial is not None:
            return trial, entry
    raise ExportError(
        f"study {study.study_name!r} has completed trials but no kept model "
        "(were they run with another --artifacts directory?)"
    )


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


def evaluate(model, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Test metrics from one forward pass: accuracy, cross-entropy, per class, confusion."""
    probs = np.asarray(model.predict(x, batch_size=4096, verbose=0), dtype=np.float64)
    pred = probs.argmax(axis=1)
    n_classes = probs.shape[1]
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    support = confusion.sum(axis=1)
    per_class = np.divide(np.diag(confusion), support, out=np.zeros(n_classes), where=support > 0)
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))
    return {
        "test_accuracy": float((pred == y).mean()),
        "test_loss": loss,
        "test_examples": int(len(y)),
        "per_class_accuracy": {
            (CLASS_NAMES[i] if n_classes == len(CLASS_NAMES) else str(i)): round(float(a), 4)
            for i, a in enumerate(per_class)
        },
        "confusion_matrix": confusion.tolist(),
    }


def export_best(
    study: optuna.Study,
    store,
    out: Path,
    *,
    data_dir: str | None = None,
    storage_masked: str = "",
) -> dict[str, Any]:
    """Write model.keras, model-card.json and model-card.md for the study's best kept model."""
    import keras

    out = prepare_out_dir(out)
    trial, entry = best_kept_trial(study)
    cfg = stored_config(study)
    # Everything is made in a scratch folder inside `out` and moved into place only once the
    # test metrics and both cards exist: a failed export leaves the previous one whole.
    scratch = Path(tempfile.mkdtemp(dir=out, prefix=".export-"))
    try:
        model_path = scratch / MODEL_FILE
        _download(store, entry["artifact_id"], model_path)
        verify_sha256(model_path, entry)
        model = keras.saving.load_model(model_path)
        data = DataSettings(**cfg["data"])
        x_test, y_test = load_test(data, data_dir)
        metrics = evaluate(model, x_test, y_test)
        card = _card(study, trial, cfg, model, metrics, data_dir, storage_masked)
        card["model_sha256"] = file_sha256(model_path)
        (scratch / "model-card.json").write_text(json.dumps(card, indent=2) + "\n", "utf-8")
        (scratch / "model-card.md").write_text(render_card_md(card), encoding="utf-8")
        for name in (MODEL_FILE, "model-card.json", "model-card.md"):
            os.replace(scratch / name, out / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return card


def _card(study, trial, cfg, model, metrics, data_dir, storage_masked: str) -> dict[str, Any]:
    raw = read_raw(data_dir)
    return {
        "study": study.study_name,
        "storage": storage_masked,
        "trial": trial.number,
        "architecture": trial.user_attrs.get("architecture"),
        "params": trial.params,
        "hyperparams": trial.user_attrs.get("hyperparams"),
        "validation_accuracy": trial.value,
        "best_epoch": trial.user_attrs.get("best_epoch"),
        "epochs_run": trial.user_attrs.get("epochs_run"),
        "parameter_count": int(model.count_params()),
        **metrics,
        "data": {
            "directory": str(raw.directory),
            "files_sha256": raw.gz_sha256,
            "split": cfg["data"],
        },
        "seed": cfg["study"]["seed"],
        "sampler": cfg["study"]["sampler"],
        "pruner": cfg["study"]["pruner"],
        "versions": package_versions(),
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_file": MODEL_FILE,
    }


def render_card_md(card: dict[str, Any]) -> str:
    hp = card.get("hyperparams") or {}
    lines = [
        f"# Model card: {card['study']} trial {card['trial']}",
        "",
        f"- Architecture: **{card['architecture']}** ({card['parameter_count']:,} parameters)",
        f"- Validation accuracy (selection): **{card['validation_accuracy']:.4f}** "
        f"at epoch {card['best_epoch']} of {card['epochs_run']}",
        f"- Test accuracy (measured once, at export): **{card['test_accuracy']:.4f}** "
        f"on {card['test_examples']:,} images; test loss {card['test_loss']:.4f}",
        f"- Seed {card['seed']}, sampler {card['sampler']}, pruner {card['pruner']}",
        "",
        "## Hyperparameters",
        "",
        "| name | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in hp.items()),
        "",
        "## Per-class test accuracy",
        "",
        "| class | accuracy |",
        "|---|---|",
        *(f"| {k} | {v:.4f} |" for k, v in card["per_class_accuracy"].items()),
        "",
        "## Confusion matrix (rows: true class, columns: predicted)",
        "",
        "```",
        *(" ".join(f"{n:5d}" for n in row) for row in card["confusion_matrix"]),
        "```",
        "",
        "## Data files (SHA-256 of the .gz files)",
        "",
        *(f"- `{name}`: `{sha}`" for name, sha in card["data"]["files_sha256"].items()),
        "",
        "## Versions",
        "",
        *(f"- {k}: {v}" for k, v in card["versions"].items()),
        "",
        "Load it with `keras.saving.load_model('model.keras')`; inputs are 784 floats in [0, 1] "
        "(pixel / 255), outputs are 10 class probabilities.",
        "",
    ]
    return "\n".join(lines)
