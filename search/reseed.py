"""Selection noise, measured: the top trials trained again with another seed.

A study picks its winner on one validation split out of many tries, so the winner's score is
partly luck. `fsearch report --reseed K` trains each of the K best configurations once more,
exactly as the search did (same split, same epochs, best epoch scored) but with another seed,
and the report puts the two scores side by side: how much of the ranking survives a new seed.
Results are stored in the study (user attribute RESEED_ATTR), so a later report reuses them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from search.metrics import of_study

if TYPE_CHECKING:
    import optuna

    from search.config import Config

RESEED_ATTR = "fsearch:reseed"


def reseed_top(
    study: optuna.Study, k: int, *, data_dir: str | None = None, log=None
) -> list[dict[str, Any]]:
    """The k best completed trials with their score at selection and retrained with another
    seed (trained here unless a previous report stored it). Best first."""
    from optuna.trial import TrialState

    from search import datasets
    from search.storage import update_study_user_attr
    from search.studies import check_split, stored_config

    metric = of_study(study)
    top = sorted(
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
        key=lambda t: metric.rank_key(t.value),
    )[:k]
    done = dict(study.user_attrs.get(RESEED_ATTR) or {})
    todo = [t for t in top if str(t.number) not in done and "hyperparams" in t.user_attrs]
    if todo:
        from search._tf import import_backend

        import_backend()
        config = stored_config(study)
        split = datasets.load_split(config.data, data_dir)
        check_split(study, split)  # the same rows as the search, or the comparison is void
        for t in todo:
            t0 = time.perf_counter()
            value, seed = _retrain(t, split, config, metric)
            entry = {"seed": seed, "value": value, "seconds": round(time.perf_counter() - t0, 1)}
            done[str(t.number)] = entry
            update_study_user_attr(
                study, RESEED_ATTR, lambda old, n=str(t.number), e=entry: {**(old or {}), n: e}
            )
            if log is not None:
                log(f"reseed: trial #{t.number} {metric.name} {t.value:.4f} -> {value:.4f}")
    rows = []
    for rank, t in enumerate(top, start=1):
        entry = done.get(str(t.number))
        rows.append(
            {
                "rank": rank,
                "trial": t.number,
                "architecture": t.user_attrs.get("architecture"),
                "selection": t.value,
                "reseeded": None if entry is None else entry["value"],
                "seed": None if entry is None else entry["seed"],
            }
        )
    return rows


def _retrain(trial, split, config: Config, metric) -> tuple[float, int]:
    """The trial's configuration trained as in the search, another seed; its best epoch."""
    import keras

    from search.space import stored_hyperparams
    from search.training import Rows, epoch_score, train, trial_seed

    hp = stored_hyperparams(trial, config, **split.dims)
    seed = trial_seed(config.study.seed, trial.number, "reseed")
    scores: list[float] = []

    class Score(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            scores.append(epoch_score(metric, split, logs or {}, self.model))

    train(
        hp,
        Rows.search(split),
        task=split.task,
        settings=config.train,
        seed=seed,
        callbacks=[Score()],
        table=split.preprocessing.table,
    )
    best = metric.best(scores)
    return (float("nan") if best is None else float(best)), seed


def rank_agreement(rows: list[dict[str, Any]]) -> float | None:
    """Spearman's rank correlation between the selection and reseeded scores (None if fewer
    than 3 rows have both)."""
    both = [(r["selection"], r["reseeded"]) for r in rows if r["reseeded"] is not None]
    if len(both) < 3:
        return None
    import numpy as np

    a, b = (np.array(x, dtype=float) for x in zip(*both, strict=True))
    ra, rb = a.argsort().argsort(), b.argsort().argsort()
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])
