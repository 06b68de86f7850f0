"""The study's metric: what a trial returns, under which name, and which way is better.

Classification studies maximize validation accuracy (or balanced accuracy); regression studies
minimize validation RMSE. Every place that ranks trials (kept models, the best trial, reports,
progress) asks the study's Metric instead of assuming "higher is better".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Metric:
    key: str  # the [data] metric value: accuracy | balanced_accuracy | rmse
    name: str  # what the study calls it (Optuna metric name, dashboard axis): val_accuracy
    direction: str  # maximize | minimize
    label: str  # prose: "validation accuracy"
    short: str  # in the one-line-per-trial log: val_acc

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    def better(self, a: float | None, b: float | None) -> bool:
        """a is strictly better than b (None and NaN are worse than anything)."""
        if a is None or math.isnan(a):
            return False
        if b is None or math.isnan(b):
            return True
        return a > b if self.maximize else a < b

    def rank_key(self, value: float | None) -> float:
        """Sort key: ascending order puts the best first, missing values last."""
        if value is None or math.isnan(value):
            return math.inf
        return -value if self.maximize else value

    def best(self, values: Iterable[float | None]) -> float | None:
        best = None
        for v in values:
            if self.better(v, best):
                best = v
        return best

    def format(self, value: float | None) -> str:
        return "-" if value is None or math.isnan(value) else f"{value:.4f}"


METRICS = {
    "accuracy": Metric("accuracy", "val_accuracy", "maximize", "validation accuracy", "val_acc"),
    "balanced_accuracy": Metric(
        "balanced_accuracy",
        "val_balanced_accuracy",
        "maximize",
        "validation balanced accuracy",
        "val_bacc",
    ),
    "rmse": Metric("rmse", "val_rmse", "minimize", "validation RMSE", "val_rmse"),
}
DEFAULT_METRIC = {"classification": "accuracy", "regression": "rmse"}
ACCURACY = METRICS["accuracy"]
_BY_NAME = {m.name: m for m in METRICS.values()}


def for_data(task: str, metric: str) -> Metric:
    """The metric of a resolved [data] table (task classification or regression)."""
    return METRICS[DEFAULT_METRIC[task] if metric == "auto" else metric]


def of_study(study: optuna.Study) -> Metric:
    """The metric a study was created with (studies made before metrics were named:
    validation accuracy, maximized)."""
    names = study.metric_names
    if names and names[0] in _BY_NAME:
        return _BY_NAME[names[0]]
    return ACCURACY


def balanced_accuracy(y: Iterable[int], pred: Iterable[int], n_classes: int) -> float:
    """Mean recall over the classes present in y. A negative label (a test class the
    training part lacked, datasets.UNSEEN_CLASS) is one more class, never predicted."""
    import numpy as np

    y, pred = np.asarray(y), np.asarray(pred)
    if (y < 0).any():
        y, n_classes = np.where(y < 0, n_classes, y), n_classes + 1
    support = np.bincount(y, minlength=n_classes)
    hits = np.bincount(y[y == pred], minlength=n_classes)
    present = support > 0
    return float(np.mean(hits[present] / support[present]))


def score(
    metric: Metric, y, outputs, *, y_std: float = 1.0, y_mean: float = 0.0, y_log: bool = False
) -> float:
    """The metric of model outputs against the true labels: the one scoring function of each
    metric (validation in the search and at export, test at export). outputs: class
    probabilities (n, classes), or the standardized target (regression; y in the same
    standardized units, y_std turns the error back into the target's units; with y_log the
    standardized units are log(1 + target)'s, and both go back to the target's units before
    the error is taken)."""
    import numpy as np

    y, out = np.asarray(y), np.asarray(outputs, dtype=np.float64)
    if metric.key == "rmse":
        if y_log:
            logs_y = y.astype(np.float64) * y_std + y_mean
            # A wild prediction would overflow exp: capped at e^10 times the largest target.
            logs_out = np.minimum(out.reshape(-1) * y_std + y_mean, logs_y.max() + 10.0)
            err = np.expm1(logs_out) - np.expm1(logs_y)
        else:
            err = (out.reshape(-1) - y) * y_std
        return float(np.sqrt(np.mean(err**2)))
    pred = out.argmax(axis=1)
    if metric.key == "balanced_accuracy":
        return balanced_accuracy(y, pred, out.shape[1])
    return float(np.mean(pred == y))


def from_keras_logs(
    metric: Metric, logs: dict, *, y_std: float = 1.0, y_log: bool = False
) -> float | None:
    """The metric as Keras' own validation pass measured it during fit (the compiled model's
    `accuracy` and `rmse`, model.py), or None where Keras does not measure it (a log target's
    RMSE: Keras measured it in log units). Reading it saves a second forward pass over the
    validation rows every epoch."""
    if metric.key == "accuracy":
        return float(logs["val_accuracy"])
    if metric.key == "rmse" and not y_log:  # Keras measured it on the standardized target
        return float(logs["val_rmse"]) * y_std
    return None
