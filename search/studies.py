"""Study policy: find, create or resume a study, and refuse one whose search space changed.

A study stores the config that made it (ATTR_CONFIG) and a fingerprint of what determines a
trial's score (data split, model layout, search space). Resuming with a different space would
mix incomparable trials, so it is refused unless the caller allows it. Messages name both the
Python argument and the CLI flag, since both reach here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search.config import Config
from search.errors import StudyError
from search.metrics import Metric

if TYPE_CHECKING:
    import optuna

ATTR_CONFIG = "fsearch:config"
ATTR_FINGERPRINT = "fsearch:fingerprint"
ATTR_VERSION = "fsearch:version"


def study_names(storage) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def load_study(storage, name: str) -> optuna.Study:
    """An existing study, or StudyError listing the ones that exist."""
    import optuna

    names = study_names(storage)
    if name not in names:
        known = ", ".join(sorted(names)) or "none yet"
        raise StudyError(f"no study named {name!r} in this storage (studies: {known})")
    return optuna.load_study(study_name=name, storage=storage)


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """Optuna's best trial (the best feasible one under constraints), None before the first
    complete one. On a database Optuna reads it with one query."""
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet (or no feasible one)
        return None


def describe_change(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += describe_change(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def _resume_hint(old: Any, changed: list[str]) -> str:
    """How to continue a study in the space it ran in, when only [space] keys changed (a
    float32 study resumed with `precision = "auto"`, a wider width range, ...): each changed
    key as the study stored it, to set in a copy of the config."""
    if not changed or not isinstance(old, dict):
        return ""
    from search.config_space import SPACE_DEFAULTS, _param_from_json
    from search.data.init_toml import _toml_value  # what `fsearch init` writes values with

    # "space.KEY" when one side left KEY at its default or changed its kind of entry,
    # "space.KEY.FIELD" (value, low, choices, ...) when both set it.
    keys = list(dict.fromkeys(c.split(".")[1] if c.startswith("space.") else "" for c in changed))
    stored = old.get("space") or {}
    entries = []
    for key in keys:
        if key in stored:
            entries.append(f"{key} = {_toml_value(_param_from_json(stored[key]))}")
        elif key in SPACE_DEFAULTS:  # stored configs leave a default out
            entries.append(f"{key} = {_toml_value(SPACE_DEFAULTS[key])}")
        else:  # a change outside [space], or a key this study never had: no one-line fix
            return ""
    return (
        f"; or, to continue it as it ran, set {', '.join(entries)} in [space] of a copy of its "
        "config (--config FILE)"
    )


def create_or_load_study(
    storage, config: Config, *, sampler=None, pruner=None, allow_space_change: bool = False
) -> tuple[optuna.Study, bool]:
    """The config's study, created if new. Refuses a study whose search space differs.

    Returns (study, created).
    """
    import optuna

    from search import __version__
    from search.datasets import target_of

    metric = target_of(config.data).metric
    name = config.study.name
    fingerprint = config.fingerprint()
    if name in study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        old = study.user_attrs.get(ATTR_CONFIG)
        if study.user_attrs.get(ATTR_FINGERPRINT) != fingerprint:
            if not allow_space_change:
                changed = (
                    describe_change(
                        {k: old.get(k) for k in ("data", "model", "space")},
                        config.objective_dict(),
                    )
                    if isinstance(old, dict)
                    else ["(study was not made by fsearch)"]
                )
                raise StudyError(
                    f"study {name!r} exists with a different search space ({', '.join(changed)} "
                    "changed); use a new study name (--study NAME), or allow_space_change=True "
                    "(--allow-space-change) to continue it" + _resume_hint(old, changed)
                )
            study.set_user_attr(ATTR_CONFIG, config.to_json())
            study.set_user_attr(ATTR_FINGERPRINT, fingerprint)
        if study.metric_names is None:  # a study made before metrics were named
            _name_metric(study, metric)
        return study, False
    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            direction=metric.direction,
            sampler=sampler,
            pruner=pruner,
        )
    except optuna.exceptions.DuplicatedStudyError:
        # Another worker created it between our check and our create: join it.
        return create_or_load_study(
            storage, config, sampler=sampler, pruner=pruner, allow_space_change=allow_space_change
        )
    study.set_user_attr(ATTR_CONFIG, config.to_json())
    study.set_user_attr(ATTR_FINGERPRINT, fingerprint)
    study.set_user_attr(ATTR_VERSION, __version__)
    _name_metric(study, metric)
    return study, True


def _name_metric(study: optuna.Study, metric: Metric) -> None:
    """What the objective returns (the best epoch's val_accuracy, val_rmse, ...), named in
    the study, so optuna-dashboard and Optuna's plots label their axes with it instead of
    "Objective 0", and search.metrics.of_study knows the direction."""
    import warnings

    import optuna

    with warnings.catch_warnings():  # set_metric_names is experimental in Optuna 4.8-5.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([metric.name])


ATTR_SPLIT = "fsearch:data_split"


def check_split(study: optuna.Study, split) -> None:
    """The first run records which rows each part of the data holds (data.Split.split_sha);
    later runs and other workers must see the same, or they would mix two splits."""
    stored = study.user_attrs.get(ATTR_SPLIT)
    if stored is None:
        study.set_user_attr(ATTR_SPLIT, {"sha": split.split_sha, "files": split.files})
        return
    if stored.get("sha") != split.split_sha:
        changed = [n for n, h in split.files.items() if stored.get("files", {}).get(n) != h]
        why = (
            f"the data file ({', '.join(changed)}) changed"
            if changed
            else "the rows in the train/validation/test parts differ"
        )
        raise StudyError(
            f"study {study.study_name!r} began on other data: {why} since it started; restore "
            "the data it began with, or start a new study (--study NAME)"
        )


def stored_config(study: optuna.Study) -> Config:
    """The Config the study was made with (or last continued with), as load_config makes it."""
    from search.errors import ConfigError

    cfg = study.user_attrs.get(ATTR_CONFIG)
    if not isinstance(cfg, dict):
        raise StudyError(
            f"study {study.study_name!r} was not created by fsearch (no config stored)"
        )
    try:
        return Config.from_json(cfg, source=f"study {study.study_name!r}'s stored config")
    except ConfigError as e:
        raise StudyError(f"{e}; the study was made by another fsearch version") from None


ATTR_WARM = "fsearch:warm_started_from"


def warm_start(
    study: optuna.Study, source: optuna.Study, config: Config, *, n: int
) -> tuple[int, list[str]]:
    """Queue (Optuna's enqueue_trial) the n best completed configurations of `source`, keeping
    only the parameters this config's space can produce: the sampler fills in the rest.
    Once per study and source. Returns (configurations queued, parameter names left out)."""
    from optuna.trial import TrialState

    from search.metrics import of_study
    from search.space import distributions, fits

    done = list(study.user_attrs.get(ATTR_WARM, []))
    if source.study_name in done:
        return 0, []
    metric = of_study(source)
    best = sorted(
        source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
        key=lambda t: metric.rank_key(t.value),
    )[:n]
    dists = distributions(config)
    queued, dropped = 0, set()
    for t in best:
        params = {k: v for k, v in t.params.items() if k in dists and fits(dists[k], v)}
        dropped |= set(t.params) - set(params)
        if params:
            study.enqueue_trial(
                params, user_attrs={"warm_start": source.study_name}, skip_if_exists=True
            )
            queued += 1
    study.set_user_attr(ATTR_WARM, [*done, source.study_name])
    return queued, sorted(dropped)
