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


# Fashion-MNIST's default study: the best complete trial of an earlier validation-selected
# study on the same split, printed by
#   python -m benchmarks.known_good --study jobs \
#       --storage sqlite:///studies/jobs-bench-amd/jobs-auto-0.db
# (from benchmarks.jobs --trials 200 --seeds 1 --arms auto,1 --keep studies/jobs-bench-amd).
FASHION: tuple[Known, ...] = ()


def _tables(task: str) -> tuple[Known, ...]:
    """The published default configurations of tabular MLPs, in this search's space (pytabkit
    1.8's models/sklearn/default_params.py). What does not carry over: RealMLP's learning rate
    (0.04 / 0.2) belongs to its NTK parametrization and scaling layer, so it takes the
    RTDL MLPs' Adam rate 1e-3; TabM's ensemble of 32 and quantile transform, and the
    quantile transform of MLP-PLR, have no counterpart here (robust scaling is the nearest)."""
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
                "numeric": "robust",
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
                "numeric": "robust",
                "embedding": "none",
                "categories": "onehot",
                "batch_size": 256,
            },
        ),
    )


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

    from search.space import distributions, fits

    dists = distributions(config)
    params = dict(known.params)
    width = params.pop("width", None)
    if width is not None:
        if config.model.width_per_layer:
            params.update({f"width_{i + 1}": width for i in range(int(params.get("layers", 1)))})
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
        value = min(max(value, d.low), d.high)
        if isinstance(value, float) and type(d.low) is int:
            value = round(value)
        if fits(d, value):
            out[name] = value
    return out


def queue_first_trials(study: optuna.Study, config: Config, split: Split) -> list[str]:
    """Queue the known configurations in a study that has none queued yet (`first_trials`
    on; not for the grid sampler, whose trials are its grid). Returns their labels (empty:
    already queued, off, or none known for this data)."""
    if not config.study.first_trials or config.study.sampler == "grid":
        return []
    if study.user_attrs.get(ATTR_FIRST) is not None:
        return []
    labels = []
    for known in known_good(split):
        params = fitted(known, config)
        if params:
            # skip_if_exists: two workers starting together queue each configuration once.
            study.enqueue_trial(
                params, user_attrs={"first_trial": known.label}, skip_if_exists=True
            )
            labels.append(known.label)
    study.set_user_attr(ATTR_FIRST, labels)
    return labels
