"""The search space: the only module that calls trial.suggest_*.

`suggest` turns a config's [space] into one concrete `Hyperparams` for a trial. Conditional
parameters are only suggested where they matter (momentum only for SGD, the strength only when
a regularizer is on, width_2.. only for deeper nets), so TPE never models noise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from search.config import Choice, Config, Fixed, FloatRange, IntRange, Param, max_value

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Hyperparams:
    """Everything needed to build and train one model."""

    widths: tuple[int, ...]
    activation: str = "relu"
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.0
    regularizer: str = "none"
    reg_strength: float = 0.0
    dropout: float = 0.0
    batch_size: int = 32
    epochs: int = 10
    lr_schedule: str = "constant"
    weight_decay: float = 0.0  # adamw only
    label_smoothing: float = 0.0  # classification only
    numeric: str = "standardize"  # tables: standardize | robust | quantile (config_space)
    embedding: str = "none"  # tables: none | periodic | piecewise (config_space.EMBEDDINGS)
    embedding_scale: float = 0.0  # periodic only: the frequencies' initial std
    categories: str = "onehot"  # tables: onehot | embed (config_space.CATEGORIES)
    precision: str = "float32"  # the hidden layers' arithmetic (config_space.PRECISIONS)
    # The data's width in and out (Fashion-MNIST: 784 pixels, 10 classes; regression: 1), how
    # many of the inputs are a table's numbers (what `numeric` and `embedding` act on), and
    # the one-hot width of each category column with 20+ values (what `categories` acts on).
    inputs: int = 784
    outputs: int = 10
    numbers: int = 0
    wide_categories: tuple[int, ...] = ()

    @property
    def architecture(self) -> str:
        """The lab report's name for a net, e.g. 784x64x64x10."""
        return "x".join(str(n) for n in (self.inputs, *self.widths, self.outputs))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["wide_categories"] = list(self.wide_categories)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Hyperparams:
        wide = tuple(d.get("wide_categories", ()))
        return cls(**{**d, "widths": tuple(d["widths"]), "wide_categories": wide})


def _suggest(trial: optuna.Trial, name: str, p: Param) -> Any:
    if isinstance(p, Fixed):
        return p.value
    if isinstance(p, Choice):
        return trial.suggest_categorical(name, list(p.choices))
    if isinstance(p, IntRange):
        return trial.suggest_int(name, p.low, p.high, log=p.log, step=p.step)
    if isinstance(p, FloatRange):
        return trial.suggest_float(name, p.low, p.high, log=p.log, step=p.step)
    raise TypeError(f"unknown parameter type {type(p).__name__}")


def suggest(
    trial: optuna.Trial,
    config: Config,
    *,
    inputs: int = 784,
    outputs: int = 10,
    numbers: int = 0,
    wide_categories: tuple[int, ...] = (),
) -> Hyperparams:
    """Ask the trial for one point of the config's search space (for data of `inputs`
    features, `numbers` of them a table's number columns, `wide_categories` the one-hot
    widths of its category columns with 20+ values, and `outputs` classes, or 1 output for
    regression: `Split.dims` gives them all).

    The parameters added for tables (weight_decay, label_smoothing, numeric, embedding,
    embedding_scale, categories) are asked for only where they matter, so a space that leaves
    them at their defaults (Fashion-MNIST's) asks the sampler exactly what it asked before."""
    s = config.space
    layers = _suggest(trial, "layers", s["layers"])
    if config.model.width_per_layer:
        widths = tuple(_suggest(trial, f"width_{i + 1}", s["width"]) for i in range(layers))
    else:
        widths = (_suggest(trial, "width", s["width"]),) * layers
    optimizer = _suggest(trial, "optimizer", s["optimizer"])
    regularizer = _suggest(trial, "regularizer", s["regularizer"])
    # Not for regression (one output): smoothing is about class probabilities.
    classes = outputs > 1
    embedding = _suggest(trial, "embedding", s["embedding"])
    return Hyperparams(
        widths=widths,
        activation=_suggest(trial, "activation", s["activation"]),
        optimizer=optimizer,
        learning_rate=_suggest(trial, "learning_rate", s["learning_rate"]),
        momentum=_suggest(trial, "momentum", s["momentum"]) if optimizer == "sgd" else 0.0,
        regularizer=regularizer,
        reg_strength=(
            _suggest(trial, "reg_strength", s["reg_strength"]) if regularizer != "none" else 0.0
        ),
        dropout=_suggest(trial, "dropout", s["dropout"]),
        batch_size=_suggest(trial, "batch_size", s["batch_size"]),
        epochs=_suggest(trial, "epochs", s["epochs"]),
        lr_schedule=_suggest(trial, "lr_schedule", s["lr_schedule"]),
        weight_decay=(
            _suggest(trial, "weight_decay", s["weight_decay"]) if optimizer == "adamw" else 0.0
        ),
        label_smoothing=(
            _suggest(trial, "label_smoothing", s["label_smoothing"]) if classes else 0.0
        ),
        numeric=_suggest(trial, "numeric", s["numeric"]),
        embedding=embedding,
        embedding_scale=(
            _suggest(trial, "embedding_scale", s["embedding_scale"])
            if embedding == "periodic"
            else 0.0
        ),
        categories=_suggest(trial, "categories", s["categories"]),
        precision=_suggest(trial, "precision", s["precision"]),
        inputs=inputs,
        outputs=outputs,
        numbers=numbers,
        wide_categories=tuple(wide_categories),
    )


def grid_search_space(config: Config) -> dict[str, list]:
    """GridSampler's search space: each list of choices under the name `suggest` gives it.

    Fixed values are never suggested, so they stay out of the grid. A conditional parameter
    (momentum with adam, reg_strength with "none") still multiplies the grid: avoid such lists.
    """
    s = config.space
    grid: dict[str, list] = {}
    for key, p in s.items():
        if not isinstance(p, Choice):
            continue
        if key == "width" and config.model.width_per_layer:
            for i in range(max_value(s["layers"])):
                grid[f"width_{i + 1}"] = list(p.choices)
        else:
            grid[key] = list(p.choices)
    return grid


def grid_size(config: Config) -> int:
    """How many trials one pass over the grid takes."""
    return math.prod(len(v) for v in grid_search_space(config).values())


def short(hp: Hyperparams) -> str:
    """One-line summary of the parameters that matter most, for the per-trial log line."""
    parts = [hp.architecture, hp.optimizer, f"lr={hp.learning_rate:.3g}"]
    if hp.lr_schedule != "constant":
        parts[-1] += f"({hp.lr_schedule})"
    if hp.optimizer == "sgd":
        parts.append(f"mom={hp.momentum:.2f}")
    if hp.regularizer != "none":
        parts.append(f"{hp.regularizer}={hp.reg_strength:.1e}")
    if hp.optimizer == "adamw":
        parts.append(f"wd={hp.weight_decay:.1e}")
    if hp.dropout:
        parts.append(f"drop={hp.dropout:.2f}")
    if hp.label_smoothing:
        parts.append(f"ls={hp.label_smoothing:.2f}")
    if hp.numeric != "standardize":
        parts.append(hp.numeric)
    if hp.embedding == "periodic":
        parts.append(f"{hp.embedding}({hp.embedding_scale:.2g})")
    elif hp.embedding != "none":
        parts.append(hp.embedding)
    if hp.categories != "onehot":
        parts.append(f"categories={hp.categories}")
    parts.append(f"bs={hp.batch_size}")
    if hp.precision != "float32":
        parts.append(hp.precision)
    return " ".join(parts)


def distributions(config: Config) -> dict[str, Any]:
    """Optuna's distribution of every parameter `suggest` may ask for, by name."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    s = config.space
    names = ["layers"]
    if config.model.width_per_layer:
        names += [f"width_{i + 1}" for i in range(max_value(s["layers"]))]
    else:
        names.append("width")
    names += [k for k in s if k not in ("layers", "width")]
    out = {}
    for name in names:
        p = s["width" if name.startswith("width") else name]
        if isinstance(p, Choice):
            out[name] = CategoricalDistribution(list(p.choices))
        elif isinstance(p, IntRange):
            out[name] = IntDistribution(p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, FloatRange):
            out[name] = FloatDistribution(p.low, p.high, log=p.log, step=p.step)
    return out


def fits(distribution: Any, value: Any) -> bool:
    """The value is one the distribution can produce (a warm-start parameter may be kept)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return value in distribution.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if not distribution.low <= value <= distribution.high:
        return False
    if isinstance(distribution, IntDistribution):
        return value == int(value) and (int(value) - distribution.low) % distribution.step == 0
    step = distribution.step
    return step is None or math.isclose(
        (value - distribution.low) / step, round((value - distribution.low) / step)
    )


class _StoredTrial:
    """Answers `suggest` from a finished trial's stored parameters, each checked against the
    space: what a shared database holds is not trusted to be what a sampler suggested."""

    def __init__(self, trial: Any, config: Config) -> None:
        self.trial, self.dists = trial, distributions(config)

    def _stored(self, name: str, *_args: Any, **_kwargs: Any) -> Any:
        from search.errors import StudyError

        value = self.trial.params.get(name)
        dist = self.dists.get(name)
        if dist is None or name not in self.trial.params or not fits(dist, value):
            raise StudyError(
                f"trial {self.trial.number}'s stored parameter {name}={value!r} is not in the "
                "study's search space (the database was edited, or the space changed since); "
                "export another trial or study"
            )
        return value

    suggest_int = suggest_float = suggest_categorical = _stored


def stored_hyperparams(
    trial: Any,
    config: Config,
    *,
    inputs: int,
    outputs: int,
    numbers: int = 0,
    wide_categories: tuple[int, ...] = (),
) -> Hyperparams:
    """The Hyperparams a finished trial trained with, rebuilt from its parameters within the
    config's space (so a forged value cannot ask for a net or an epoch count the space does not
    allow) and checked against the ones the trial recorded."""
    from search.errors import StudyError

    hp = suggest(
        _StoredTrial(trial, config),
        config,
        inputs=inputs,
        outputs=outputs,
        numbers=numbers,
        wide_categories=wide_categories,
    )
    recorded = trial.user_attrs.get("hyperparams")
    try:
        # Keys a trial recorded before they existed (numbers, weight_decay, ...) take the
        # rebuilt values: the model is built from `hp`, which comes from checked parameters.
        same = recorded is None or Hyperparams.from_dict({**hp.to_dict(), **recorded}) == hp
    except (TypeError, KeyError, ValueError):
        same = False
    if not same:
        raise StudyError(
            f"trial {trial.number}'s recorded hyperparameters do not match its parameters "
            "(the database was edited?); export another trial or study"
        )
    return hp


def stored_best_epoch(trial: Any, hp: Hyperparams) -> int:
    """The epoch a trial was selected at, between 1 and its `epochs` (else the last one)."""
    from search.errors import StudyError

    value = trial.user_attrs.get("best_epoch")
    if value is None or value == 0:
        return hp.epochs
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hp.epochs:
        raise StudyError(
            f"trial {trial.number}'s recorded best_epoch {value!r} is not between 1 and its "
            f"{hp.epochs} epochs (the database was edited?); export another trial or study"
        )
    return value
