"""Strong first trials (issue #23): a new study's first trials are configurations known to be
good for its kind of data, queued with Optuna's `enqueue_trial` before the sampler starts, so
a user has a good model within the first trials while TPE explores. `[study] first_trials`
turns it on; each queued trial carries the user attribute `first_trial` saying where its
configuration comes from.

Every configuration is written in the space's parameter names and fitted to the study's
space: a range's value is clipped into it, a choice the space lacks (or a key it fixes) is
left to the sampler, a batch size becomes the space's nearest choice. Queued once per study
(the study remembers it), so resumed runs and other workers do not queue them again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from search.config import Config
    from search.data import Split

ATTR_FIRST = "fsearch:first_trials"


@dataclass(frozen=True)
class Known:
    label: str  # where the configuration comes from (the trial's `first_trial` attribute)
    params: dict[str, Any]  # in [space] names; "width" is every layer's width


# Fashion-MNIST's default study: the best complete trial of an earlier study of the default
# space, selected on the same validation split (never on test): the `--jobs auto` arm of
# `python -m benchmarks.jobs --trials 200 --first-seed 0 --seeds 1` on the 2-core AMD EPYC,
# 2026-12-03, stopped at 183 trials; printed by
#   python -m benchmarks.known_good --study jobs --storage sqlite:///<that study's file>
#
# After it, a quick one: the complete trial of the 11 studies then kept in benchmarks/results/
# (selected on their validation values) that took the fewest seconds in all among those at
# 0.895 or more (0.89, the one-minute mark, plus a margin for other seeds), so a
# user has a model past 0.89 within the first minute while the best-known one trains on the
# other worker. Second, not first: a trial's seed follows its number, and queued first it
# moved the best-known one to trial 1, whose seed-2 run ended below 0.90 (BENCHMARKS.md
# `first-quick`, with the rule it had to meet). Printed by
#   python -m benchmarks.known_good --quickest 0.895 --study jobs \
#       --storage $(ls benchmarks/results/jobs-kept*/*.db | sed 's#^#sqlite:///#')
FASHION: tuple[Known, ...] = (
    Known(
        "trial #111 of a 176-trial study (jobs, seed 0), val_accuracy 0.9038",
        {
            "layers": 3,
            "width": 655,
            "optimizer": "adam",
            "regularizer": "l1",
            "learning_rate": 0.0008843914278366436,
            "reg_strength": 2.5797038785957555e-06,
            "dropout": 0.050684115453799874,
            "batch_size": 256,
        },
    ),
    Known(
        "trial #124 of a 200-trial study (jobs, seed 0, jobs-kept-xeon/jobs-auto-0.db), "
        "val_accuracy 0.8965 after 14.8 s of its own",
        {
            "layers": 2,
            "width": 294,
            "optimizer": "adam",
            "regularizer": "l1",
            "learning_rate": 0.0023573352219018197,
            "reg_strength": 5.158851878189081e-06,
            "dropout": 0.023095523298043867,
            "batch_size": 512,
        },
    ),
)


def _tables(task: str) -> tuple[Known, ...]:
    """The published default configurations of tabular MLPs, in this search's space (pytabkit
    1.8's models/sklearn/default_params.py). What does not carry over: RealMLP's learning rate
    (0.04 / 0.2) belongs to its NTK parametrization and scaling layer, so it takes the
    RTDL MLPs' Adam rate 1e-3; TabM's ensemble of 32 networks is one network here; MLP-PLR's
    128-256-128 layers are three of 256 (the table space shares one width)."""
    classes = task == "classification"
    return (
        Known(
            "RealMLP-TD defaults (pytabkit RealMLP_TD_"
            + ("CLASS" if classes else "REG")
            + "), learning rate 1e-3",
            {
                "layers": 3,
                "width": 256,
                "activation": "selu" if classes else "mish",
                "optimizer": "adamw",
                "learning_rate": 1e-3,
                "weight_decay": 2e-2,
                "dropout": 0.15,
                "label_smoothing": 0.1,
                "numeric": "robust",
                "embedding": "periodic",
                "embedding_scale": 0.1,
                "categories": "embed",
                "batch_size": 256,
            },
        ),
        Known(
            "MLP-PLR defaults (pytabkit MLP_PLR_D_CLASS; 128-256-128 as 256 wide)",
            {
                "layers": 3,
                "width": 256,
                "activation": "relu",
                "optimizer": "adamw",
                "learning_rate": 1e-3,
                "weight_decay": 1e-2,  # torch AdamW's default, which MLP_PLR_D leaves as is
                "dropout": 0.1,
                "label_smoothing": 0.0,
                "numeric": "quantile",
                "embedding": "periodic",
                "embedding_scale": 0.01,
                "categories": "embed",
                "batch_size": 128,
            },
        ),
        Known(
            "TabM-D's MLP (pytabkit TABM_D_CLASS without the ensemble of 32)",
            {
                "layers": 3,
                "width": 512,
                "activation": "relu",
                "optimizer": "adamw",
                "learning_rate": 2e-3,
                "weight_decay": 0.0,
                "dropout": 0.1,
                "label_smoothing": 0.0,
                "numeric": "quantile",
                "embedding": "none",
                "categories": "onehot",
                "batch_size": 256,
            },
        ),
    )


def wanted(config: Config, split: Split) -> bool:
    """[study] first_trials: true / false as written; "auto" (the default) on for a table
    only. Tables: the `--first-trials` arm of benchmarks/tables.py had the better best
    validation value on most sets (BENCHMARKS.md `tables`). Fashion-MNIST: the default study
    (studies/fashion-mnist-mlp.toml) writes true, by the rule of BENCHMARKS.md `jobs-200`
    (0.90 sooner in every 200-trial pair, the best never lower by more than a standard
    error); "auto" leaves it off for a Fashion-MNIST config of one's own, whose space may
    not be the default's."""
    value = config.study.first_trials
    return split.kind == "table" if value == "auto" else bool(value)


def known_good(split: Split) -> tuple[Known, ...]:
    """The configurations known to be good for this kind of data (none for arrays)."""
    if split.kind == "fashion-mnist":
        return FASHION
    if split.kind == "table":
        return _tables(split.task)
    return ()


def fitted(known: Known, config: Config) -> dict[str, Any]:
    """The configuration in the config's space: names it asks the sampler for only, values
    clipped into ranges, the nearest batch size (log scale), choices it lacks left out."""
    from optuna.distributions import CategoricalDistribution

    from search.config import Fixed
    from search.space import distributions, fits

    dists = distributions(config)
    params = dict(known.params)
    width = params.pop("width", None)
    if width is not None:
        if config.model.width_per_layer:
            fixed = config.space["layers"]
            layers = fixed.value if isinstance(fixed, Fixed) else params.get("layers", 1)
            d = dists.get("layers")
            layers = _in_range(d, layers) if d is not None else layers
            params.update({f"width_{i + 1}": width for i in range(int(layers))})
        else:
            params["width"] = width
    out = {}
    for name, value in params.items():
        d = dists.get(name)
        if d is None:
            continue  # fixed in this space, or not one of its keys
        if isinstance(d, CategoricalDistribution):
            if name == "batch_size" and value not in d.choices:
                numeric = [c for c in d.choices if isinstance(c, (int, float)) and c > 0]
                if not numeric:
                    continue
                value = min(numeric, key=lambda c: abs(math.log(c / value)))
            if value in d.choices:
                out[name] = value
            continue
        value = _in_range(d, value)
        if fits(d, value):
            out[name] = value
    return out


def _in_range(d: Any, value: float) -> Any:
    """The value clipped into a range distribution, on its step (an int range's value an
    int)."""
    value = min(max(value, d.low), d.high)
    if d.step:
        value = d.low + round((value - d.low) / d.step) * d.step
        value = min(value, d.high)
    if type(d.low) is int:
        value = int(round(value))
    return value


def queue_first_trials(study: optuna.Study, config: Config, split: Split | None) -> list[str]:
    """Queue the known configurations as a new study's first trials (`first_trials` on; not
    for the grid sampler, whose trials are its grid). Once per study: the first process to
    claim the study's ATTR_FIRST attribute (in one locked transaction, so two workers
    starting together cannot both queue) queues them; a study that already has finished
    trials, made before first_trials existed, gets none. Returns the labels queued (empty:
    already claimed, off, none known for this data, or split None: a --jobs parent leaves
    it to its workers, which load the data)."""
    from search.storage import update_study_user_attr

    if split is None or not wanted(config, split) or config.study.sampler == "grid":
        return []
    if study.user_attrs.get(ATTR_FIRST) is not None:
        return []
    entries = [(k.label, fitted(k, config)) for k in known_good(split)]
    entries = [(label, params) for label, params in entries if params]
    if any(t.state.is_finished() for t in study.get_trials(deepcopy=False)):
        entries = []  # not a new study: its first trials ran long ago
    labels = [label for label, _ in entries]
    old, _ = update_study_user_attr(study, ATTR_FIRST, lambda old: labels if old is None else old)
    if old is not None:
        return []  # another process claimed it first
    for label, params in entries:
        study.enqueue_trial(params, user_attrs={"first_trial": label})
    return labels
