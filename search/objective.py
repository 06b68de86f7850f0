"""One trial: suggest, build, fit with pruning, return the best epoch's validation score.

The score is the study's metric (search/metrics.py): accuracy, balanced accuracy or RMSE.
Per epoch it is reported to Optuna (so pruners work and the learning curve
is stored as intermediate values). A NaN/inf loss ends the trial at once as PRUNED with the
reason stored: the lab report's many "0.1" results were diverged runs trained to the end.
The best epoch's weights are kept in memory and, when the trial enters the study's top k,
saved as an Optuna artifact: the exported model is the one that was scored.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from search.config import SPACE_DEFAULTS, Config, Fixed
from search.constraints import OVER_LATENCY, OVER_PARAMS, set_constraint
from search.data import Split
from search.data.preprocessing import EMBED_CATEGORIES_FROM
from search.errors import ConfigError
from search.metrics import Metric, for_data
from search.model import count_params, resolve_precision
from search.outcomes import END_REASON
from search.space import Hyperparams, suggest
from search.training import Rows, epoch_score, train, trial_seed

if TYPE_CHECKING:
    import optuna


@dataclass
class EpochLog:
    """What the Keras callback saw; filled in during fit."""

    values: list[float] = field(default_factory=list)  # the metric per epoch
    val_loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    val_seconds: float = 0.0  # time spent in validation passes (part of `seconds`)
    best_value: float | None = None
    best_epoch: int = 0
    best_weights: list[Any] | None = None
    end_reason: str = "completed"
    detail: str = ""


def _make_callback(trial: optuna.Trial, log: EpochLog, metric: Metric, split: Split):
    """A Keras callback reporting to Optuna; built lazily so Keras is imported only to train.

    A first trial (search/first_trials.py: a configuration known to be good, queued first)
    reports every epoch but is never pruned: as one of a study's first trials, Hyperband's
    bootstrap_count would stop it at its first rung before any other trial got there (as it
    did in benchmarks.jobs --arms auto+first, section `first-trials`)."""
    import keras

    prunable = "first_trial" not in trial.user_attrs

    class OptunaEpochCallback(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_test_begin(self, logs=None):
            self._v0 = time.perf_counter()

        def on_test_end(self, logs=None):
            log.val_seconds += time.perf_counter() - self._v0

        def _diverged(self, where: str, value: float) -> None:
            log.end_reason = "diverged"
            log.detail = f"loss became {value} {where}"
            self.model.stop_training = True

        def on_train_batch_end(self, batch, logs=None):
            # Called once per steps_per_execution batches, so the check costs one sync per call.
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self._diverged(f"in epoch {len(log.values) + 1}", float(loss))

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log.seconds.append(time.perf_counter() - self._t0)
            if log.end_reason == "diverged":
                return
            loss, val_loss = (
                float(logs.get("loss", math.nan)),
                float(logs.get("val_loss", math.nan)),
            )
            if not (math.isfinite(loss) and math.isfinite(val_loss)):
                self._diverged(
                    f"at epoch {epoch + 1}", loss if not math.isfinite(loss) else val_loss
                )
                return
            score = epoch_score(metric, split, logs, self.model)
            log.values.append(score)
            log.val_loss.append(val_loss)
            if metric.better(score, log.best_value):
                log.best_value, log.best_epoch = score, epoch + 1
                log.best_weights = self.model.get_weights()
            # Step = epochs trained, so Hyperband's resource is the epoch budget.
            trial.report(score, step=epoch + 1)
            if prunable and trial.should_prune():
                log.end_reason = "pruned"
                log.detail = (
                    f"pruned after epoch {epoch + 1} ({metric.name} {metric.format(score)})"
                )
                self.model.stop_training = True

    return OptunaEpochCallback()


class Objective:
    """Callable for study.optimize. Holds the data (as backend tensors, built once per process).

    keep(trial, value, model): offered every completed trial's best-epoch model (the run
    passes artifacts.keeper: the study's top k are kept); device: where this process trains,
    recorded on every trial ("gpu:0 NVIDIA H200", "cpu (2 threads)")."""

    def __init__(
        self,
        config: Config,
        split: Split,
        *,
        keep: Callable[[optuna.Trial, float, Any], Any] | None = None,
        device: str | None = None,
    ) -> None:
        table = split.preprocessing.table
        tables_only = [
            k for k in ("numeric", "embedding") if config.space[k] != Fixed(SPACE_DEFAULTS[k])
        ]
        if tables_only and not (table and table.columns):
            raise ConfigError(
                f"[space] {' and '.join(tables_only)} act on a table's number columns, and "
                "this data has none; remove them from [space]"
            )
        if config.space["categories"] != Fixed(SPACE_DEFAULTS["categories"]) and not (
            table and table.categories
        ):
            raise ConfigError(
                "[space] categories acts on a table's category columns with "
                f"{EMBED_CATEGORIES_FROM} or more values, and this data has none; remove it "
                "from [space]"
            )
        self.config = config
        self.split = split
        self.metric = for_data(split.task, config.data.metric)
        self.keep = keep
        self.device = device
        self._tensors = None

    def _rows(self) -> Rows:
        """Train/validation rows converted once per process, not per trial (Rows.as_tensors)."""
        if self._tensors is None:
            self._tensors = Rows.search(self.split).as_tensors()
        return self._tensors

    def __call__(self, trial: optuna.Trial) -> float:
        hp = suggest(trial, self.config, **self.split.dims)
        trial.set_user_attr("architecture", hp.architecture)
        if hp.precision == "auto":  # what this machine chose (model.resolve_precision)
            trial.set_user_attr("precision", resolve_precision(hp.precision))
        n_params = count_params(hp)
        trial.set_user_attr("n_params", n_params)
        budget = self.config.study.max_params
        if budget:
            set_constraint(trial, OVER_PARAMS, n_params - budget)
            if n_params > budget:
                # Not trained: the sampler learns the boundary from the constraint value.
                trial.set_user_attr(END_REASON, "over budget")
                trial.set_user_attr("end_detail", f"{n_params:,} parameters > {budget:,}")
                import optuna

                raise optuna.TrialPruned(f"{n_params} parameters > max_params {budget}")
        try:
            return self._train(trial, hp)
        except Exception as e:
            import optuna

            if not isinstance(e, optuna.TrialPruned):
                trial.set_user_attr(END_REASON, "failed")
                trial.set_user_attr("error", traceback.format_exc(limit=-8)[-4000:])
            raise

    def _train(self, trial: optuna.Trial, hp: Hyperparams) -> float:
        import optuna

        if self.device is not None:
            trial.set_user_attr("device", self.device)
        log = EpochLog()
        t0 = time.perf_counter()
        built: list[float] = []
        model, _ = train(
            hp,
            self._rows(),
            task=self.split.task,
            settings=self.config.train,
            seed=trial_seed(self.config.study.seed, trial.number),
            callbacks=[_make_callback(trial, log, self.metric, self.split)],
            on_built=lambda _model: built.append(time.perf_counter() - t0),
            table=self.split.preprocessing.table,
        )
        build_s = built[0]
        epochs_run = len(log.seconds)
        attrs = {
            "hyperparams": hp.to_dict(),
            "epochs_run": epochs_run,
            "best_epoch": log.best_epoch,
            "build_seconds": round(build_s, 3),
            "first_epoch_seconds": round(log.seconds[0], 3) if log.seconds else None,
            "sec_per_epoch": round(
                sum(log.seconds[1:]) / (epochs_run - 1) if epochs_run > 1 else sum(log.seconds), 3
            ),
            "val_seconds": round(log.val_seconds, 3),
            END_REASON: log.end_reason,
            "rss_mb": rss_mb(),
        }
        if log.best_epoch:
            attrs["val_loss"] = round(log.val_loss[log.best_epoch - 1], 5)
        if log.detail:
            attrs["end_detail"] = log.detail
        for key, value in attrs.items():
            trial.set_user_attr(key, value)

        if log.end_reason in ("diverged", "pruned"):
            raise optuna.TrialPruned(log.detail)
        value = log.best_value
        if log.best_weights is not None:
            model.set_weights(log.best_weights)
        limit = self.config.study.max_latency_ms
        if limit:
            ms = batch1_latency_ms(model, self.split.input_dim)
            trial.set_user_attr("latency_ms", round(ms, 3))
            set_constraint(trial, OVER_LATENCY, ms - limit)
        within = not limit or ms <= limit
        if self.keep is not None and log.best_weights is not None and within:
            self.keep(trial, value, model)
        return value


def batch1_latency_ms(model, input_dim: int, *, calls: int = 30) -> float:
    """Median time of one forward pass on one example (a direct model call, as a server
    answering single requests makes it), in ms, after a few warm-up calls."""
    import numpy as np

    x = np.zeros((1, input_dim), dtype=np.float32)
    for _ in range(3):
        model(x, training=False)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        model(x, training=False)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return 0.0
