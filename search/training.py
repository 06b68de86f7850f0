"""One training unit: every model fsearch trains goes through `train` here.

The search's trials (objective.py), the refit at export (exporting.py), the reseeded retrain
of a report (reseed.py) and the benchmarks all build, seed and fit a model the same way:
`trial_seed` is the one seed formula, `train` the one call of Keras' `fit` (with the speed
settings of the study's [train] table), and `validation_score` / `epoch_score` score a model
with the metric's one scoring function (search/metrics.py, `score`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from search.config import TrainSettings
from search.metrics import Metric, from_keras_logs, score
from search.model import build_model

if TYPE_CHECKING:
    import keras

    from search.data import Split
    from search.space import Hyperparams

# What a model is trained for, and its seed's offset from the trial's search seed: a refit or
# a reseed must not repeat the search's random draws (the reseed measures another seed on
# purpose). Values kept from before the one training unit, so seeded studies and their
# exports reproduce.
SEED_OFFSETS = {
    "search": 0,
    "refit": 7919,
    "reseed": 1_000_003,
    "fold": 2_000_029,  # a fold model of --folds (part: the fold)
    "fold split": 3_000_017,  # which rows go in which fold (trial 0: one split per study)
}
_PART_STRIDE = 7_368_787  # apart from any trial number: fold f of trial n is not trial n + f


def trial_seed(study_seed: int, trial_number: int, purpose: str = "search", part: int = 0) -> int:
    """The seed of one training run: a function of the study's seed, the trial, why it is
    trained (SEED_OFFSETS) and which part of it (a fold of --folds), so every run is
    reproducible and no two share their draws."""
    return (
        int(study_seed) * 100003 + int(trial_number) + SEED_OFFSETS[purpose] + _PART_STRIDE * part
    ) % (2**31)


@dataclass(frozen=True)
class Rows:
    """What a model trains on: inputs and labels, and (search, reseed) the validation part
    Keras scores after every epoch."""

    x: Any
    y: Any
    x_val: Any = None
    y_val: Any = None

    @classmethod
    def search(cls, split: Split) -> Rows:
        """The search's rows: train, scored on validation."""
        return cls(split.x_train, split.y_train, split.x_val, split.y_val)

    @classmethod
    def refit(cls, split: Split) -> Rows:
        """All training rows (train + validation) with nothing held out: a refit's."""
        import numpy as np

        return cls(
            np.concatenate([split.x_train, split.x_val]),
            np.concatenate([split.y_train, split.y_val]),
        )

    def subset(self, index) -> Rows:
        """These rows at `index` (NumPy arrays; no validation part): a fold's training rows."""
        return Rows(self.x[index], self.y[index])

    def __len__(self) -> int:
        return len(self.y)

    def as_tensors(self) -> Rows:
        """The same rows as TF tensors under the TensorFlow backend (converted once per
        process: Keras then shuffles and batches inside the graph, BENCHMARKS.md `epoch`);
        under other backends NumPy arrays, which their fit consumes directly."""
        import keras

        if keras.backend.backend() != "tensorflow":
            return self
        import tensorflow as tf

        return Rows(*(None if a is None else tf.constant(a) for a in self._parts()))

    def _parts(self) -> tuple:
        return self.x, self.y, self.x_val, self.y_val


def seed_session(seed: int, *, fresh: bool = True) -> None:
    """Seed Python, NumPy and the backend; fresh: drop Keras' global state first (once per
    trial: memory stays flat over hundreds of models)."""
    import keras

    if fresh:
        keras.backend.clear_session()
    keras.utils.set_random_seed(seed)


def train(
    hp: Hyperparams,
    rows: Rows,
    *,
    task: str,
    settings: TrainSettings,
    seed: int,
    epochs: int | None = None,
    callbacks: tuple | list = (),
    name: str | None = None,
    fresh_session: bool = True,
    on_built=None,
    table=None,
) -> tuple[keras.Model, keras.callbacks.History]:
    """Build the model for `hp`, seeded, and fit it on `rows` for `epochs` (the space's
    `epochs` by default) with the study's speed settings. Returns (model, Keras History);
    the callbacks see every epoch. on_built(model) runs between build and fit.

    A cosine schedule is sized to `hp.epochs` over these rows, so a refit on more rows keeps
    its length in epochs. fresh_session False: an export builds several members in one
    session and keeps the earlier ones. table: where a table's columns sit in x
    (`split.preprocessing.table`), for the space's `numeric`, `embedding` and `categories`."""
    seed_session(seed, fresh=fresh_session)
    model = build_model(
        hp,
        task=task,
        steps_per_execution=settings.steps_per_execution,
        train_size=len(rows),
        name=name,
        table=table,
    )
    if on_built is not None:
        on_built(model)
    validation = None if rows.y_val is None else (rows.x_val, rows.y_val)
    # Speed comes from compile-time settings (steps_per_execution, see model.py) and from
    # rows held as TF tensors (Rows.as_tensors): no input pipeline of ours.
    history = model.fit(
        rows.x,
        rows.y,
        batch_size=hp.batch_size,
        validation_data=validation,
        validation_batch_size=settings.validation_batch_size if validation else None,
        epochs=hp.epochs if epochs is None else epochs,
        shuffle=True,
        verbose=0,
        callbacks=list(callbacks),
    )
    return model, history


def outputs(model, x) -> Any:
    """The model's outputs on x as float64 (class probabilities, or the standardized
    target), in one forward pass."""
    import numpy as np

    return np.asarray(model.predict(x, batch_size=4096, verbose=0), dtype=np.float64)


def validation_score(model, split: Split, metric: Metric) -> float:
    """The study's metric on the validation split, from the model's outputs."""
    return score(
        metric,
        split.y_val,
        outputs(model, split.x_val),
        y_std=split.y_std,
        y_mean=split.y_mean,
        y_log=split.y_log,
    )


def epoch_score(metric: Metric, split: Split, logs: dict, model) -> float:
    """The study's metric after one epoch: what Keras' own validation pass measured where it
    measures this metric (accuracy, RMSE: no second forward pass per epoch), else the
    metric's scoring function on one more pass (balanced accuracy)."""
    value = from_keras_logs(metric, logs, y_std=split.y_std, y_log=split.y_log)
    return validation_score(model, split, metric) if value is None else value
