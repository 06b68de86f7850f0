"""The [space] table of a study TOML: its parameter types and how an entry is parsed.

Every [space] entry is either a fixed value, a range table `{low, high, log?, step?}` or a list
of choices (Fixed, IntRange, FloatRange, Choice); SPACE_KEYS says which keys exist, the type of
their values and the check each value passes. config.py reads the rest of the TOML and
re-exports these names, so `from search.config import Fixed` still works.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Any

from search.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "rmsprop", "adamw")
REGULARIZERS = ("none", "l1", "l2")
LR_SCHEDULES = ("constant", "cosine")
# The hidden layers' arithmetic (search/model.py): float32, or Keras' mixed_bfloat16 policy
# (bfloat16 matmuls, float32 weights and output layer), for hardware with fast bfloat16. On a
# 2-core Xeon with AMX the default study's 30-minute pair favoured it on both seeds
# (BENCHMARKS.md `precision-pair`), as on a 2-core AMD EPYC without AMX (`precision-pair-amd`);
# float32 stays the default: in the hour-long pair that was to decide it (seed 3, Xeon with
# AMX, `precision-hour`) bfloat16 finished fewer trials by 30 minutes and ended with a lower
# best. "auto": each machine's own choice where the net is
# built (model.resolve_precision: mixed_bfloat16 on a CPU with AMX, float32 elsewhere).
PRECISIONS = ("float32", "mixed_bfloat16", "auto")
ACTIVATIONS = (
    "relu",
    "elu",
    "gelu",
    "selu",
    "swish",
    "mish",
    "tanh",
    "sigmoid",
    "leaky_relu",
    "linear",
)
# How a table's number columns reach the network (search/layers.py, the network's first layers):
# standardize: (x - mean) / std, as before; robust: RealMLP's robust scaling and smooth clipping,
# (x - median) / IQR then x / sqrt(1 + (x / 3)^2), so heavy tails and outliers arrive bounded.
# quantile: each number mapped through its training quantiles onto a normal distribution
# (scikit-learn's QuantileTransformer, output normal: TabM's and RTDL's recipe).
NUMERIC = ("standardize", "robust", "quantile")
# none: each number is one input; periodic: each number also goes through learned sin/cos
# features and a small linear map with ReLU (PLR embeddings, Gorishniy et al. 2022);
# piecewise: through its piecewise-linear encoding over 48 quantile bins and a small linear
# map with ReLU (Q-LR embeddings, the same paper).
EMBEDDINGS = ("none", "periodic", "piecewise")
# How a table's category columns with 20 values or more reach the network (preprocessing.
# EMBED_CATEGORIES_FROM): onehot: their one-hot block goes to the first Dense layer; embed: a
# learned embedding of 8 values each (layers.CategoryEmbedding) goes instead, as tabular
# networks embed wide categories (RealMLP-TD: 8 values from 9 categories on). Smaller
# categories stay one-hot either way.
CATEGORIES = ("onehot", "embed")


@dataclass(frozen=True)
class Fixed:
    value: Any

    def describe(self) -> str:
        return repr(self.value)


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    log: bool = False
    step: int = 1

    def describe(self) -> str:
        return f"int[{self.low}, {self.high}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    log: bool = False
    step: float | None = None

    def describe(self) -> str:
        return f"float[{self.low:g}, {self.high:g}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class Choice:
    choices: tuple

    def describe(self) -> str:
        return "{" + ", ".join(map(str, self.choices)) + "}"


Param = Fixed | IntRange | FloatRange | Choice


def _check_positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def _check_nonneg(v: float) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _check_unit(v: float) -> str | None:
    return None if 0 <= v <= 1 else "must be between 0 and 1"


def _check_below_one(v: float) -> str | None:
    """A share that cannot be whole: dropout, label smoothing."""
    return None if 0 <= v < 1 else "must be >= 0 and < 1"


def _check_layers(v: int) -> str | None:
    return None if 1 <= v <= 16 else "must be between 1 and 16"


def _one_of(options: tuple[str, ...]):
    def check(v: str) -> str | None:
        return None if v in options else f"must be one of {', '.join(options)}"

    return check


# name -> (python type of a value, value check). The order is the order of the model card.
SPACE_KEYS: dict[str, tuple[type, Any]] = {
    "layers": (int, _check_layers),
    "width": (int, _check_positive),
    "activation": (str, _one_of(ACTIVATIONS)),
    "optimizer": (str, _one_of(OPTIMIZERS)),
    "learning_rate": (float, _check_positive),
    "momentum": (float, _check_unit),  # used by SGD only
    "regularizer": (str, _one_of(REGULARIZERS)),
    "reg_strength": (float, _check_nonneg),  # used when regularizer != "none"
    "dropout": (float, _check_below_one),
    "batch_size": (int, _check_positive),
    "epochs": (int, _check_positive),  # the most epochs a trial may train; pruning stops earlier
    # constant: the learning rate as sampled; cosine: decays to 0 over the trial's `epochs`
    # (keras CosineDecay), so a trial that trains to the end settles in fewer epochs.
    "lr_schedule": (str, _one_of(LR_SCHEDULES)),
    # AdamW's decoupled weight decay (used by optimizer "adamw" only).
    "weight_decay": (float, _check_nonneg),
    # Classification only: the one-hot targets mixed with the uniform distribution.
    "label_smoothing": (float, _check_below_one),
    # Tables only (see NUMERIC, EMBEDDINGS and CATEGORIES above).
    "numeric": (str, _one_of(NUMERIC)),
    "embedding": (str, _one_of(EMBEDDINGS)),
    "categories": (str, _one_of(CATEGORIES)),
    # The standard deviation of the periodic embedding's initial frequencies (its sigma).
    "embedding_scale": (float, _check_positive),
    # The hidden layers' arithmetic (PRECISIONS above); a list searches it like any choice.
    "precision": (str, _one_of(PRECISIONS)),
}

# Keys that may be left out of [space], and the value they then take. A key left at its
# default is also left out of the study's fingerprint, so studies made before it existed
# still resume.
SPACE_DEFAULTS: dict[str, Any] = {
    "lr_schedule": "constant",
    "weight_decay": 0.004,  # Keras' AdamW default
    "label_smoothing": 0.0,
    "numeric": "standardize",
    "embedding": "none",
    "embedding_scale": 0.1,
    "categories": "onehot",
    "precision": "float32",
}


def parse_space(raw_space: Any, where: str) -> dict[str, Param]:
    """The [space] table of the study TOML at `where`, every key parsed (defaults filled in)."""
    if not isinstance(raw_space, dict) or not raw_space:
        raise ConfigError(f"{where}: missing [space] table; see README 'Study config reference'")
    _check_keys(raw_space, list(SPACE_KEYS), f"{where} [space]", "key")
    raw_space = {**SPACE_DEFAULTS, **raw_space}
    missing = [k for k in SPACE_KEYS if k not in raw_space]
    if missing:
        raise ConfigError(
            f"{where} [space]: missing {', '.join(missing)}; give each a value, range or list"
        )
    return {k: _parse_param(k, raw_space[k], f"{where} [space] {k}") for k in SPACE_KEYS}


def _parse_param(name: str, raw: Any, where: str) -> Param:
    want, check = SPACE_KEYS[name]

    def value(v: Any, at: str) -> Any:
        v = _coerce(v, want, at)
        problem = check(v)
        if problem:
            raise ConfigError(f"{at}: {problem}, got {v!r}")
        return v

    if isinstance(raw, list):
        if not raw:
            raise ConfigError(f"{where}: the list of choices is empty; give at least one")
        choices = tuple(value(v, f"{where} choice") for v in raw)
        if len(set(choices)) != len(choices):
            raise ConfigError(f"{where}: the list of choices {list(raw)} has duplicates")
        return Fixed(choices[0]) if len(choices) == 1 else Choice(choices)
    if isinstance(raw, dict):
        if want is str:
            raise ConfigError(f"{where}: a range makes no sense here; give a value or a list")
        _check_keys(raw, ["low", "high", "log", "step"], where, "range key")
        for k in ("low", "high"):
            if k not in raw:
                raise ConfigError(f"{where}: a range needs both 'low' and 'high'")
        low, high = value(raw["low"], f"{where} low"), value(raw["high"], f"{where} high")
        log = raw.get("log", False)
        if not isinstance(log, bool):
            raise ConfigError(f"{where} log: expected true or false, got {log!r}")
        if low > high:
            raise ConfigError(f"{where}: low ({low}) must be <= high ({high}); swap them")
        if log and low <= 0:
            raise ConfigError(f"{where}: a log range needs low > 0, got low = {low}")
        step = raw.get("step")
        if step is not None:
            step = _coerce(step, want, f"{where} step")
            if step <= 0:
                raise ConfigError(f"{where} step: must be > 0, got {step}")
            if log:
                raise ConfigError(f"{where}: use either log or step, not both")
        if low == high:
            return Fixed(low)
        if want is int:
            return IntRange(low, high, log, step if step is not None else 1)
        return FloatRange(low, high, log, step)
    return Fixed(value(raw, where))


# ---------------------------------------------------------------------------- value checks
# Shared with config.py's other tables.


def _check_keys(table: dict, allowed: list[str], where: str, what: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
            raise ConfigError(f"{where}: unknown {what} {key!r}; {hint}")


def _coerce(value: Any, want: type, where: str) -> Any:
    if want is tuple:  # a list of names
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of column names, got {value!r}")
        return tuple(value)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is int and isinstance(value, bool) or not isinstance(value, want):
        raise ConfigError(
            f"{where}: expected {want.__name__}, got {type(value).__name__} {value!r}"
        )
    if want is float and not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number, got {value!r}")
    return value


# ---------------------------------------------------------------------------- stored form


def _param_to_json(p: Param) -> dict[str, Any]:
    d = dataclasses.asdict(p)
    d["type"] = type(p).__name__
    if "choices" in d:
        d["choices"] = list(d["choices"])
    return d


def _param_from_json(d: Any) -> Any:
    """A [space] entry as TOML writes it, from _param_to_json's dict."""
    if not isinstance(d, dict):
        return d
    kind = d.get("type")
    if kind == "Fixed":
        return d.get("value")
    if kind == "Choice":
        return list(d.get("choices", []))
    if kind in ("IntRange", "FloatRange"):
        out = {"low": d.get("low"), "high": d.get("high"), "log": bool(d.get("log", False))}
        step = d.get("step")
        if step is not None and not (kind == "IntRange" and step == 1 and out["log"]):
            out["step"] = step
        return out
    return d


def max_value(p: Param) -> Any:
    if isinstance(p, Fixed):
        return p.value
    if isinstance(p, Choice):
        return max(p.choices)
    return p.high
