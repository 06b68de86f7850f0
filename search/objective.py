"""One trial: suggest, build, fit with pruning, return the best epoch's validation accuracy.

Per epoch the validation accuracy is reported to Optuna (so pruners work and the learning curve
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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from search.artifacts import keep_if_top
from search.config import Config
from search.data import Split
from search.model import build_model, count_params
from search.outcomes import END_REASON
from search.space import Hyperparams, suggest

if TYPE_CHECKING:
    import optuna


@dataclass
class EpochLog:
    """What the Keras callback saw; filled in during fit."""

    val_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    val_seconds: float = 0.0  # time spent in validation passes (part of `seconds`)
    best_value: float = -math.inf
    best_epoch: int = 0
    best_weights: list[Any] | None = None
    end_reason: str = "completed"
    detail: str = ""


def _make_callback(trial: optuna.Trial, log: EpochLog):
    """A Keras callback reporting to Optuna; built lazily so Keras is imported only to train."""
    import keras

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
                self._diverged(f"in epoch {len(log.val_acc) + 1}", float(loss))

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
            acc = float(logs["val_accuracy"])
            log.val_acc.append(acc)
            log.val_loss.append(val_loss)
            if acc > log.best_value:
                log.best_value, log.best_epoch = acc, epoch + 1
                log.best_weights = self.model.get_weights()
            # Step = epochs trained, so Hyperband's resource is the epoch budget.
            trial.report(acc, step=epoch + 1)
            if trial.should_prune():
                log.end_reason = "pruned"
                log.detail = f"pruned after epoch {epoch + 1} (val_accuracy {acc:.4f})"
                self.model.stop_training = True

    return OptunaEpochCallback()


class Objective:
    """Callable for study.optimize. Holds the data (as TF tensors, built once per process)."""

    def __init__(self, config: Config, split: Split, *, artifact_store=None) -> None:
        self.config = config
        self.split = split
        self.artifact_store = artifact_store
        self._tensors = None

    def _arrays(self):
        """Train/validation data as TF tensors, converted once per process, not per trial."""
        if self._tensors is None:
            import tensorflow as tf

            s = self.split
            self._tensors = tuple(tf.constant(a) for a in (s.x_train, s.y_train, s.x_val, s.y_val))
        return self._tensors

    def __call__(self, trial: optuna.Trial) -> float:
        hp = suggest(trial, self.config)
        trial.set_user_attr("architecture", hp.architecture)
        trial.set_user_attr("n_params", count_params(hp))
        try:
            return self._train(trial, hp)
        except Exception as e:
            import optuna

            if not isinstance(e, optuna.TrialPruned):
                trial.set_user_attr(END_REASON, "failed")
                trial.set_user_attr("error", traceback.format_exc(limit=-8)[-4000:])
            raise

    def _train(self, trial: optuna.Trial, hp: Hyperparams) -> float:
        import keras
        import optuna

        keras.backend.clear_session()
        seed = (self.config.study.seed * 100003 + trial.number) % (2**31)
        keras.utils.set_random_seed(seed)
        t0 = time.perf_counter()
        model = build_model(
            hp,
            steps_per_execution=self.config.train.steps_per_execution,
            train_size=len(self.split.y_train),
        )
        x, y, xv, yv = self._arrays()
        build_s = time.perf_counter() - t0

        log = EpochLog()
        fit(
            model,
            hp,
            (x, y, xv, yv),
            validation_batch_size=self.config.train.validation_batch_size,
            callbacks=[_make_callback(trial, log)],
        )
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
        if self.artifact_store is not None and log.best_weights is not None:
            model.set_weights(log.best_weights)
            keep_if_top(trial, value, model, self.artifact_store, k=self.config.study.keep_models)
        return value


def fit(model, hp: Hyperparams, data, *, validation_batch_size: int, callbacks=(), epochs=None):
    """Train with Keras' own fit: the one training path of fsearch (the benchmarks use it too).

    Speed comes from compile-time settings (steps_per_execution, see model.py) and from data
    held as TF tensors: Keras' array adapter then shuffles indices and gathers batches inside
    the graph, with no input pipeline of ours (BENCHMARKS.md, `epoch`: fsearch against plain fit).
    """
    x, y, xv, yv = data
    return model.fit(
        x,
        y,
        batch_size=hp.batch_size,
        validation_data=(xv, yv),
        validation_batch_size=validation_batch_size,
        epochs=hp.epochs if epochs is None else epochs,
        shuffle=True,
        verbose=0,
        callbacks=list(callbacks),
    )


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return 0.0
