"""The model card: what an export says about its model (model-card.json and model-card.md).

Which trial and mode, test metrics, the data's files and preprocessing, seeds and package
versions. exporting.export_best calls model_card once the model is saved and tested, then
writes it as JSON and as render_card_md's Markdown.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
from typing import Any

from search import datasets
from search.artifacts import MODEL_FILE
from search.config import Config
from search.data import Split
from search.metrics import of_study

PACKAGES = ("fsearch", "tensorflow", "keras", "jax", "torch", "optuna", "numpy", "sqlalchemy")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def model_card(
    study, trial, config: Config, model, metrics, split: Split, data_dir, storage_masked: str
) -> dict[str, Any]:
    metric = of_study(study)
    card = {
        "study": study.study_name,
        "storage": storage_masked,
        "trial": trial.number,
        "architecture": trial.user_attrs.get("architecture"),
        "params": trial.params,
        "hyperparams": trial.user_attrs.get("hyperparams"),
        "task": split.task,
        "metric": metric.name,
        "validation_value": trial.value,
        "best_epoch": trial.user_attrs.get("best_epoch"),
        "epochs_run": trial.user_attrs.get("epochs_run"),
        "parameter_count": int(model.count_params()),
        # fsearch's own layers in the model (search/layers.py): loading it needs
        # `import search.layers` first (`fsearch predict` does that).
        "fsearch_layers": fsearch_layers(model),
        "device": trial.user_attrs.get("device"),  # where the selected trial trained
        "keras_backend": _backend(),
        **metrics,
        "data": _data_card(split, config, data_dir),
        "seed": config.study.seed,
        "sampler": config.study.sampler,
        "pruner": config.study.pruner,
        "versions": package_versions(),
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_file": MODEL_FILE,
    }
    if metric.key == "accuracy":  # the name cards have had since the first release
        card["validation_accuracy"] = trial.value
    return card


def fsearch_layers(model) -> list[str]:
    """The names of fsearch's own layer types (search/layers.py) in a model, nested models'
    included: what `keras.saving.load_model` needs registered first."""
    found: set[str] = set()

    def walk(layer) -> None:
        if type(layer).__module__ == "search.layers":
            found.add(type(layer).__name__)
        for sub in getattr(layer, "layers", None) or ():
            walk(sub)

    walk(model)
    return sorted(found)


def _backend() -> str:
    import keras

    return keras.config.backend()


def _data_card(split: Split, config: Config, data_dir) -> dict[str, Any]:
    """The card's `data`: which files and rows, then what the inputs are (the split's
    Preprocessing says), then the outputs."""
    settings = config.to_json()["data"]  # as the study stores it
    if not config.data.source:  # Fashion-MNIST: the four files found by --data-dir
        out: dict[str, Any] = {
            "directory": split.directory,
            "files_sha256": split.files,
            "split": settings,
        }
    else:
        out = {
            "source": config.data.source,
            "files_sha256": split.files,
            "split": settings,
            "split_sha": split.split_sha,
            "test_notes": list(datasets.test_notes(config.data, data_dir)),
            "train_rows": int(len(split.y_train)),
            "validation_rows": int(len(split.y_val)),
        }
        if config.data.target:
            out["target"] = config.data.target
    out.update(split.preprocessing.card())
    if not config.data.source:
        return out
    if split.task == "regression":
        out["outputs"] = "the target, in its own units"
        if split.y_log:
            out["outputs"] += (
                ' (the network fitted log(1 + target), target_transform = "log"; the '
                "model's last layers take exp(z) - 1)"
            )
    else:
        out["outputs"] = f"{split.n_outputs} class probabilities, in the order of `classes`"
    return out


def _export_lines(card: dict[str, Any], metric: str) -> list[str]:
    """What was exported, in words: the card's first lines say which model this is."""
    info = card.get("export")
    if not info:  # a card written before export modes: the selected model
        return []
    members, mode = info["members"], info["mode"]
    refits = {r["trial"]: r for r in info.get("refit", [])}
    if "folds" in info:
        what = _folds_line(info["folds"], metric)
    elif len(members) == 1:
        if not refits:
            what = "the selected trial's model as the search kept it"
            rows = info.get("train_rows")
            what += f" (trained on the {rows:,} training rows)" if rows else ""
        else:
            r = refits[members[0]]
            what = (
                f"refit: the selected configuration trained again on train + validation "
                f"({r['rows']:,} rows) for {r['epochs']} epochs, seed {r['seed']}"
            )
    else:
        scores = ", ".join(
            f"#{n} {v:.4f}" for n, v in zip(members, info["member_validation_values"], strict=True)
        )
        if refits:
            r = refits[members[0]]
            epochs = ", ".join(f"#{n} {refits[n]['epochs']}" for n in members)
            what = (
                f"refit ensemble: the {len(members)} best configurations, each trained again on "
                f"train + validation ({r['rows']:,} rows; epochs {epochs}), their outputs "
                f"averaged; {metric} at selection {scores}"
            )
        else:
            what = (
                f"ensemble: the {len(members)} best kept models, their outputs averaged; "
                f"{metric} {scores}, of the ensemble "
                f"**{info['ensemble_validation_value']:.4f}** (before the test set was read; "
                "optimistic: the same validation split chose the members)"
            )
    if info.get("max_params"):
        what += f"; at most {info['max_params']:,} parameters per model"
    return [f"- Export: {what} (mode `{mode}`)"]


def _folds_line(bag: dict[str, Any], metric: str) -> str:
    """--folds K in words: which configurations were cross-validated, and what was exported."""
    k, chosen = bag["k"], bag["selected"]
    tried = bag["candidates"]
    scores = ", ".join(
        f"#{c['trial']} {c['cv_value']:.4f} (at selection {c['validation_value']:.4f})"
        for c in tried
    )
    epochs = next(c["epochs"] for c in tried if c["trial"] == chosen)
    if len(tried) > 1:
        why = (
            f"of the {len(tried)} best configurations, each cross-validated on the same {k} "
            f"folds of train + validation ({bag['rows']:,} rows), trial #{chosen} had the best "
            f"out-of-fold {metric}: {scores} (the winner's figure is optimistic: the same folds "
            "chose it)"
        )
    else:
        why = (
            f"trial #{chosen}, cross-validated on {k} folds of train + validation "
            f"({bag['rows']:,} rows): out-of-fold {metric} {scores}"
        )
    return (
        f"{k}-fold bag: {why}; its {k} fold models, each trained on all rows but one fold for "
        f"{epochs} epoch{'' if epochs == 1 else 's'}, their outputs averaged"
    )


def render_card_md(card: dict[str, Any]) -> str:
    hp = card.get("hyperparams") or {}
    data = card["data"]
    metric = card.get("metric", "val_accuracy")
    value = card.get("validation_value", card.get("validation_accuracy"))
    test = ", ".join(f"{k[5:]} **{card[k]:.4f}**" for k in card.get("test_metrics", []))
    members = (card.get("export") or {}).get("members", [card["trial"]])
    if len(members) > 1:
        archs = card["export"].get("member_architectures")  # cards since 2026-11-29
        title = f"{card['study']}, ensemble of trials " + ", ".join(f"#{n}" for n in members)
        arch = (
            f"- Architecture: the mean of {len(members)} networks' outputs, "
            + (", ".join(f"**{a}**" for a in archs) if archs else "the best one **"
               f"{card['architecture']}**")
            + f" ({card['parameter_count']:,} parameters in all)"
        )  # fmt: skip
        selected = f"- Best member (trial #{card['trial']}) selected on {metric}"
    else:
        title = f"{card['study']} trial {card['trial']}"
        arch = (
            f"- Architecture: **{card['architecture']}** ({card['parameter_count']:,} parameters)"
        )
        bag = (card.get("export") or {}).get("folds")
        if bag:  # one configuration, K networks
            arch = (
                f"- Architecture: the mean of {bag['k']} fold networks' outputs, each "
                f"**{card['architecture']}** ({card['parameter_count']:,} parameters in all)"
            )
        selected = f"- Selected on {metric}"
    lines = [
        f"# Model card: {title}",
        "",
        f"- Task: {card.get('task', 'classification')}",
        arch,
        *_export_lines(card, metric),
        f"{selected}: **{value:.4f}** at epoch {card['best_epoch']} of {card['epochs_run']}",
        f"- Test (measured once, at export, on {card['test_examples']:,} examples): {test}",
        *(f"- Test note: {n}" for n in data.get("test_notes", [])),
        f"- Seed {card['seed']}, sampler {card['sampler']}, pruner {card['pruner']}",
        f"- Trained on {card.get('device') or 'an unrecorded device'}, Keras backend "
        f"{card.get('keras_backend', 'tensorflow')}",
        "",
        "## Hyperparameters"
        + (f" of the best member, trial #{card['trial']}" if len(members) > 1 else ""),
        "",
        "| name | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in hp.items()),
        "",
    ]
    if "per_class_accuracy" in card:
        lines += [
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
        ]
    if data.get("features"):
        lines += [
            "## Features (model inputs, by name)",
            "",
            "| column | model input | kind | preprocessing (training rows) |",
            "|---|---|---|---|",
            *(
                f"| {f['name']} | {f['input']} | {f['kind']} | "
                + (
                    f"(x - {f['mean']:.6g}) / {f['std']:.6g}"
                    + (
                        f"; blank: {f['missing']['filled_with']:.6g}"
                        + (" + missing indicator" if f["missing"]["indicator"] else "")
                        if f.get("missing")
                        else ""
                    )
                    if f["kind"] == "number"
                    else f"one-hot over {len(f['vocabulary'])} values"
                )
                + " |"
                for f in data["features"]
            ),
            "",
        ]
    lines += [
        "## Data files (SHA-256)",
        "",
        *(f"- `{name}`: `{sha}`" for name, sha in data["files_sha256"].items()),
        "",
        "## Versions",
        "",
        *(f"- {k}: {v}" for k, v in card["versions"].items()),
        "",
        (
            "Load it with `import search.layers` (fsearch's own layers: "
            f"{', '.join(card['fsearch_layers'])}) and then "
            if card.get("fsearch_layers")
            else "Load it with "
        )
        + f"`keras.saving.load_model('model.keras')`. Inputs: {data['inputs']}. "
        f"Outputs: {data.get('outputs', '10 class probabilities')}.",
        "",
    ]
    return "\n".join(lines)
