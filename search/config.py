"""Typed, frozen study settings: load and validate a study TOML.

A study file has five tables: [study] (name, sampler, pruner, seed), [data] (split sizes),
[model] (how widths are laid out), [train] (speed knobs that do not change what is learned)
and [space] (the search space). Every [space] entry is either a fixed value, a range table
`{low, high, log?, step?}` or a list of choices (parsed in config_space.py, whose names are
re-exported here). Unknown keys, wrong types and impossible ranges raise ConfigError naming
the key and the fix, before anything touches a database.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from search.config_space import (  # noqa: F401  (re-exported: imported from search.config)
    ACTIVATIONS,
    LR_SCHEDULES,
    OPTIMIZERS,
    REGULARIZERS,
    SPACE_DEFAULTS,
    SPACE_KEYS,
    Choice,
    Fixed,
    FloatRange,
    IntRange,
    Param,
    _check_keys,
    _coerce,
    _param_from_json,
    _param_to_json,
    max_value,
    parse_space,
)
from search.errors import ConfigError, ExportError

# grid: every combination of the [space] lists once (Optuna's GridSampler); no ranges allowed.
SAMPLERS = ("tpe", "random", "cmaes", "gp", "grid")
PRUNERS = ("hyperband", "median", "successive-halving", "none")

# A study name becomes a directory name (artifacts, exports): keep it to one safe path segment.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # whole name: fullmatch

# The default study config, looked up relative to the working directory first, then beside
# the package (an editable install from a clone).
DEFAULT_CONFIG_NAME = "fashion-mnist-mlp.toml"
# What `fsearch run` exports at its end and `fsearch export` makes without flags: the 3 best
# configurations, each trained again on train + validation, averaged. Chosen over the
# selected model, refit alone and the plain ensemble on training images held out of the
# study, not on test: `python -m benchmarks.export_selection` (BENCHMARKS.md
# `export-selection`).
DEFAULT_REFIT = True
DEFAULT_ENSEMBLE = 3


MAX_FOLDS = 20
# A table of at most FOLDS_MAX_ROWS training rows (train + validation) is exported as
# TABLE_FOLDS fold models: `fsearch init` (search/data/init_toml.py) writes [study] folds for
# it. On such a table a validation split of a few hundred rows is a noisy judge of the best
# few configurations. Chosen on the model cards' own test rows (held out of all training and
# apart from the scored rows) over three split seeds of the four small tables of BENCHMARKS.md
# `tables-folds`, all under this bound: ahead on three, level on the fourth. Larger tables
# keep the refit export: no table over it was measured with folds, and folds cost K
# trainings per configuration where a refit costs one.
FOLDS_MAX_ROWS = 5000
TABLE_FOLDS = 5


def export_folds(
    folds: int | None,
    configured: int,
    *,
    refit: bool,
    max_params: int | None,
    ensemble: int | None,
) -> int | None:
    """The K of an export's --folds, None for none. An explicit --folds K (0: off) is checked
    and wins; else the study's [study] folds (what `fsearch init` writes for a small table),
    which gives way, without an error, to an export it cannot go with (--no-refit, a
    parameter budget without --ensemble): those are asked for, the study's folds is not."""
    if folds is not None:
        check_folds(folds, refit=refit, max_params=max_params, ensemble=ensemble)
        return folds or None
    if configured and refit and (max_params is None or ensemble is not None):
        return configured
    return None


def check_folds(
    folds: int | None, *, refit: bool, max_params: int | None, ensemble: int | None
) -> None:
    """--folds K against the other export options, before anything is trained. Under a
    parameter budget the default export is one model (the budget is for what is deployed) and
    --folds deploys K of them: refused unless --ensemble says how many configurations.
    --folds 0 (off) goes with anything."""
    if not folds:
        return
    if not refit:
        raise ExportError(
            "--folds trains each configuration again on K folds; it cannot be combined with "
            "--no-refit"
        )
    if not 2 <= folds <= MAX_FOLDS:
        raise ExportError(f"--folds must be 0 (off) or between 2 and {MAX_FOLDS}, got {folds}")
    if max_params is not None and ensemble is None:
        raise ExportError(
            f"--folds {folds} exports {folds} networks and this export has a parameter budget "
            f"of {max_params:,} for the one deployed model; export without --folds, or give "
            "--ensemble K to bag K configurations' fold models of at most that size each"
        )


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class StudySettings:
    name: str = "fashion-mnist-mlp"
    seed: int = 42
    sampler: str = "tpe"
    pruner: str = "hyperband"
    # Random trials before TPE models the space; Optuna's default, fine for a few hundred trials.
    startup_trials: int = 10
    # Pruners never stop a trial before this many epochs (Hyperband's min_resource).
    min_epochs: int = 1
    # Hyperband / successive halving keep 1/reduction_factor of the trials at each rung.
    reduction_factor: int = 3
    # Hyperband / successive halving prune the first N trials to reach each rung instead of
    # promoting the best so far (Optuna's bootstrap_count; 0 = Optuna's default behaviour).
    bootstrap_count: int = 0
    # One more rung at this epoch (0 = none), after Hyperband's / successive halving's: a
    # trial goes on only if its validation value is among the best 1/late_rung_keep of all
    # the study's values at that epoch (search/late_rung.py; BENCHMARKS.md `rungs`).
    late_rung: int = 0
    late_rung_keep: int = 2
    # Best-epoch models of the top-k trials are kept as artifacts; the rest are deleted.
    keep_models: int = 3
    # A worker stops after this many failed trials in a row (a bug, not bad luck).
    max_consecutive_failures: int = 5
    # A size budget (0 = none): a trial whose net has more trainable parameters is not
    # trained (pruned at once, "over budget"); TPE and GP learn the boundary (Optuna's
    # constraints_func), and export picks the best within it.
    max_params: int = 0
    # Per-example CPU inference latency at batch 1, in ms (0 = none), measured on every
    # completed trial's best model: a constraint for TPE/GP; export leaves out slower models.
    max_latency_ms: float = 0.0
    # A new study's first trials are configurations known to be good for its kind of data
    # (search/first_trials.py: the tabular MLPs' published defaults, Fashion-MNIST's best
    # earlier configuration), queued before the sampler starts. true | false | "auto": on
    # for tables, where BENCHMARKS.md `tables` (its `--first-trials` rows) chose it on
    # validation, off for other data; the default study (studies/fashion-mnist-mlp.toml)
    # sets true, chosen on validation and time by the rule of BENCHMARKS.md `jobs-200`.
    first_trials: bool | str = "auto"
    # TPE over the most recent N finished trials (plus the 25 best) instead of all of them
    # (search/tpe_window.py): for studies of many thousand trials, where TPE's time per
    # suggestion grows with the study (BENCHMARKS.md `tpe-cost`). 0 = all trials; else 250+.
    tpe_window: int = 0
    # What the export trains (search/exporting.py): 0 = the DEFAULT_ENSEMBLE best refit on
    # train + validation; K = those configurations cross-validated on K folds of train +
    # validation and the best one's K fold models averaged (`--folds K` overrides it, `--folds
    # 0` turns it off). `fsearch init` writes TABLE_FOLDS for a table of at most
    # FOLDS_MAX_ROWS training rows (above; BENCHMARKS.md `tables-folds`).
    folds: int = 0


@dataclass(frozen=True)
class DataSettings:
    # Held out of the 60,000 training images, stratified, for model selection.
    validation_size: int = 10000
    # 0 = every remaining training image; a smaller number takes a stratified subset (tests).
    train_size: int = 0
    # 0 = all 10,000 test images; only export ever reads them.
    test_size: int = 0
    # Seed of the split: fixed so that every trial of a study sees the same validation set.
    seed: int = 0
    # Your own data (search/datasets.py): a .csv, .parquet or .npz file or a folder of IDX
    # files; "" = Fashion-MNIST (the four files found by --data-dir). Relative to the
    # working directory.
    source: str = ""
    target: str = ""  # the label column of a table (CSV, Parquet)
    task: str = "auto"  # auto | classification | regression
    metric: str = "auto"  # auto | accuracy | balanced_accuracy (classification) | rmse
    categorical: tuple[str, ...] = ()  # columns one-hot encoded even if they hold numbers
    drop: tuple[str, ...] = ()  # columns left out of the features (ids, free text)
    # impute: blanks are filled inside the exported model (numbers: the training mean, plus a
    # missing indicator where training rows have blanks; text: a category of its own);
    # error: a blank stops the run, naming the column.
    missing: str = "impute"
    # Regression: none fits the target standardized; log fits log(1 + y) standardized (a
    # target >= 0 only), for a skewed positive target such as a price, and the exported model
    # turns its output back into the target's units (exp(z) - 1). Trials are still selected
    # on the metric in the target's units.
    target_transform: str = "none"
    # Own data: the validation split as a share of the training rows (0 = validation_size rows)
    validation_fraction: float = 0.0
    # Own data without a test part of its own: the share of rows held out for export's test.
    test_fraction: float = 0.2


@dataclass(frozen=True)
class ModelSettings:
    # true: every hidden layer gets its own width (width_1 .. width_n); false: one shared width.
    width_per_layer: bool = True


@dataclass(frozen=True)
class TrainSettings:
    # Speed knobs: they change how fast a trial trains, never what it learns.
    # Batches run per call into the TF graph; cuts Python overhead per step (see BENCHMARKS.md).
    steps_per_execution: int = 32
    # Validation is a forward pass only; big batches make it cheap.
    validation_batch_size: int = 4096


@dataclass(frozen=True)
class Config:
    study: StudySettings = field(default_factory=StudySettings)
    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    space: dict[str, Param] = field(default_factory=dict)
    source: str = "<defaults>"

    def replace_study(self, **changes: Any) -> Config:
        """A copy with [study] fields replaced (None values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        new = dataclasses.replace(self, study=dataclasses.replace(self.study, **changes))
        validate_study(new.study)
        validate_grid(new.study, new.space, where="--sampler grid")
        return new

    def replace_data(self, **changes: Any) -> Config:
        """A copy with [data] fields replaced (None values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        new = dataclasses.replace(self, data=dataclasses.replace(self.data, **changes))
        _validate_data(new.data, where="data")
        return new

    @property
    def max_epochs(self) -> int:
        return max_value(self.space["epochs"])

    def objective_dict(self) -> dict[str, Any]:
        """What determines a trial's score: data split, model layout and search space.

        Two configs with the same objective_dict give comparable trials; sampler, pruner and
        speed knobs are left out on purpose, so they may change when a study is resumed.
        """
        return {
            # A [data] key at its default is left out, as in [space]: studies made before the
            # key existed keep their fingerprint.
            "data": {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self.data).items()
                if k in _FASHION_DATA_KEYS or v != getattr(_DATA_DEFAULTS, k)
            },
            "model": dataclasses.asdict(self.model),
            "space": {
                k: _param_to_json(p)
                for k, p in self.space.items()
                if not (k in SPACE_DEFAULTS and p == Fixed(SPACE_DEFAULTS[k]))
            },
        }

    def fingerprint(self) -> str:
        blob = json.dumps(self.objective_dict(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "study": dataclasses.asdict(self.study),
            "train": dataclasses.asdict(self.train),
            **self.objective_dict(),
        }

    @classmethod
    def from_json(cls, stored: dict[str, Any], *, source: str = "<stored>") -> Config:
        """The Config whose to_json() this is (a study's stored config), validated as a
        TOML's would be. Keys a later fsearch no longer has are refused with a ConfigError;
        keys an earlier fsearch did not write take their defaults."""
        raw = {k: stored[k] for k in ("study", "data", "model", "train") if k in stored}
        space = stored.get("space")
        if isinstance(space, dict):
            raw["space"] = {k: _param_from_json(v) for k, v in space.items()}
        return parse_config(raw, source=source)


_DATA_DEFAULTS = DataSettings()
_FASHION_DATA_KEYS = ("validation_size", "train_size", "test_size", "seed")


# ---------------------------------------------------------------------------- loading


def default_config_path() -> Path:
    """studies/fashion-mnist-mlp.toml in the working directory, else in the source tree."""
    here = Path("studies") / DEFAULT_CONFIG_NAME
    if here.is_file():
        return here
    beside = Path(__file__).resolve().parent.parent / "studies" / DEFAULT_CONFIG_NAME
    return beside if beside.is_file() else here


def load_config(path: str | Path | None = None, *, text: str | None = None) -> Config:
    """Read and validate a study TOML (the default study when path is None). With `text`, that
    TOML text is parsed instead of the file's (a run pinned to the config it started with)."""
    p, text = read_config_text(path) if text is None else (Path(path or "<run>"), text)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None
    return parse_config(raw, source=str(p))


def read_config_text(path: str | Path | None = None) -> tuple[Path, str]:
    """(path, text) of a study TOML (the default study when path is None)."""
    p = Path(path) if path is not None else default_config_path()
    if not p.exists():
        raise ConfigError(f"config file {str(p)!r} not found; pass --config PATH to a study TOML")
    if p.is_dir():
        raise ConfigError(f"config path {str(p)!r} is a directory; pass a .toml file")
    try:
        return p, p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read ({e})") from None


def parse_config(raw: dict[str, Any], *, source: str = "<dict>") -> Config:
    """Validate a parsed TOML document into a Config."""
    where = source
    _check_keys(raw, ["study", "data", "model", "train", "space"], where, "table")
    study = _section(StudySettings, raw.get("study", {}), f"{where} [study]")
    data = _section(DataSettings, raw.get("data", {}), f"{where} [data]")
    model = _section(ModelSettings, raw.get("model", {}), f"{where} [model]")
    train = _section(TrainSettings, raw.get("train", {}), f"{where} [train]")
    validate_study(study, where=f"{where} [study]")
    _validate_data(data, where=f"{where} [data]")
    _validate_train(train, where=f"{where} [train]")

    space = parse_space(raw.get("space"), where)
    validate_grid(study, space, where=f"{where} [space]")
    return Config(study=study, data=data, model=model, train=train, space=space, source=source)


def _section(cls: type, table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table, got {type(table).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(table, list(fields), where, "key")
    values = {}
    defaults = cls()
    for key, value in table.items():
        want = type(getattr(defaults, key))
        if key in _BOOL_OR_AUTO:  # true, false or "auto": validate_study says which is wrong
            values[key] = value
            continue
        values[key] = _coerce(value, want, f"{where} {key}")
    return cls(**values)


def validate_study_name(name: str, *, where: str = "study name") -> str:
    if not _NAME_RE.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"{where} {name!r} is not allowed: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (it becomes a directory name)"
        )
    return name


# Keys that take true, false or "auto" (each key's "auto" is said where it is read).
_BOOL_OR_AUTO = {"first_trials"}


def validate_study(s: StudySettings, *, where: str = "study") -> None:
    validate_study_name(s.name, where=f"{where} name")
    if not (isinstance(s.first_trials, bool) or s.first_trials == "auto"):  # not 1 or 0
        raise ConfigError(
            f'{where}: first_trials must be true, false or "auto", got {s.first_trials!r}'
        )
    if s.sampler not in SAMPLERS:
        raise ConfigError(
            f"{where}: sampler {s.sampler!r} unknown; use one of {', '.join(SAMPLERS)}"
        )
    if s.pruner not in PRUNERS:
        raise ConfigError(f"{where}: pruner {s.pruner!r} unknown; use one of {', '.join(PRUNERS)}")
    for key, low in (
        ("startup_trials", 0),
        ("min_epochs", 1),
        ("reduction_factor", 2),
        ("bootstrap_count", 0),
        ("late_rung", 0),
        ("late_rung_keep", 2),
        ("keep_models", 1),
        ("max_consecutive_failures", 1),
        ("max_params", 0),
        ("max_latency_ms", 0),
        ("tpe_window", 0),
    ):
        if getattr(s, key) < low:
            raise ConfigError(f"{where}: {key} must be >= {low}, got {getattr(s, key)}")
    if s.late_rung and s.pruner not in ("hyperband", "successive-halving"):
        raise ConfigError(
            f"{where}: late_rung adds a rung to Hyperband or successive halving; set pruner "
            f'= "hyperband" or "successive-halving", or late_rung = 0 (pruner is {s.pruner!r})'
        )
    if s.folds and not 2 <= s.folds <= MAX_FOLDS:
        raise ConfigError(
            f"{where}: folds must be 0 (export refits) or between 2 and {MAX_FOLDS}, got {s.folds}"
        )
    if 0 < s.tpe_window < 250:
        # Below 250 trials in view TPE's good group shrinks below its 25 (search/tpe_window.py).
        raise ConfigError(
            f"{where}: tpe_window must be 0 (every trial) or at least 250, got {s.tpe_window}"
        )


def validate_grid(s: StudySettings, space: dict[str, Param], *, where: str) -> None:
    """A grid study enumerates lists of values: a range has no finite grid."""
    if s.sampler != "grid":
        return
    ranges = [k for k, p in space.items() if isinstance(p, (IntRange, FloatRange))]
    if ranges:
        raise ConfigError(
            f"{where}: the grid sampler needs a value or a list of values for every key, "
            f"but {', '.join(ranges)} {'is a range' if len(ranges) == 1 else 'are ranges'}; "
            "write e.g. momentum = [0.1, 0.2, 0.3], or use another sampler"
        )


TASKS = ("auto", "classification", "regression")
METRICS = {"classification": ("accuracy", "balanced_accuracy"), "regression": ("rmse",)}
MISSING = ("error", "impute")
TARGET_TRANSFORMS = ("none", "log")


def _validate_data(d: DataSettings, *, where: str) -> None:
    if d.task not in TASKS:
        raise ConfigError(f"{where}: task {d.task!r} unknown; use one of {', '.join(TASKS)}")
    allowed = METRICS.get(d.task, METRICS["classification"] + METRICS["regression"])
    if d.metric != "auto" and d.metric not in allowed:
        raise ConfigError(
            f"{where}: metric {d.metric!r} does not fit task {d.task!r}; use auto or one of "
            f"{', '.join(allowed)}"
        )
    if d.missing not in MISSING:
        raise ConfigError(f"{where}: missing {d.missing!r} unknown; use error or impute")
    if d.target_transform not in TARGET_TRANSFORMS:
        raise ConfigError(
            f"{where}: target_transform {d.target_transform!r} unknown; use none or log"
        )
    if d.target_transform != "none" and d.task == "classification":
        raise ConfigError(
            f"{where}: target_transform = {d.target_transform!r} is for a regression target; "
            "remove it for classification"
        )
    for key in ("validation_fraction", "test_fraction"):
        if not 0 <= getattr(d, key) < 0.9:
            raise ConfigError(f"{where}: {key} must be >= 0 and < 0.9, got {getattr(d, key)}")
    if d.source:
        if d.validation_size < 1:
            raise ConfigError(f"{where}: validation_size must be >= 1, got {d.validation_size}")
        for key in ("train_size", "test_size"):
            if getattr(d, key) < 0:
                raise ConfigError(f"{where}: {key} must be >= 0 (0 = all), got {getattr(d, key)}")
        return
    for key in ("target", "categorical", "drop"):
        if getattr(d, key):
            raise ConfigError(f"{where}: {key} needs source = a data file; Fashion-MNIST has none")
    if not 10 <= d.validation_size <= 30000:
        raise ConfigError(
            f"{where}: validation_size must be between 10 and 30000, got {d.validation_size}"
        )
    for key in ("train_size", "test_size"):
        if getattr(d, key) < 0:
            raise ConfigError(f"{where}: {key} must be >= 0 (0 = all), got {getattr(d, key)}")
    if d.train_size and d.train_size + d.validation_size > 60000:
        raise ConfigError(f"{where}: train_size + validation_size must be <= 60000")


def _validate_train(t: TrainSettings, *, where: str) -> None:
    for key in ("steps_per_execution", "validation_batch_size"):
        if getattr(t, key) < 1:
            raise ConfigError(f"{where}: {key} must be >= 1, got {getattr(t, key)}")
