"""The study-wide trial budget: exactly N finished trials however many workers share a study.

`limit_trials(study_id, n)` makes new (non-template) trials fail with TrialBudgetReached once
finished + running + waiting >= n. The count and the insert run in one transaction holding
the study lock (a row lock on PostgreSQL, the write lock on SQLite), the same lock Optuna
takes to number trials, so two workers cannot both take the last slot. WAITING trials count
because a re-queued trial replaces a running one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import optuna

from search import _optuna
from search.storage._retry import RetryingStorage
from search.storage._transactions import lock_study

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


class TrialBudgetReached(Exception):
    """No new trial may start: finished + running + waiting trials already reach the budget.

    Not an error for the user: the worker waits for the running trials (they may fail and free
    a slot) or stops when the study is done.
    """


class TrialBudget(RetryingStorage):
    """RDBStorage whose studies may each have a budget of trials, checked atomically with
    trial creation."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self._budgets: dict[int, int] = {}
        super().__init__(url, **kwargs)

    def limit_trials(self, study_id: int, n: int) -> None:
        """New trials of the study fail with TrialBudgetReached once n are finished or live."""
        self._budgets[study_id] = n

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None):
        # _CachedStorage (which wraps every RDBStorage a Study uses) calls this private method,
        # not create_new_trial, so the budget check belongs here.
        limit = self._budgets.get(study_id)
        if template_trial is not None or limit is None:
            return self._with_retry(super()._create_new_trial, study_id, template_trial)
        return self._with_retry(self._create_within_budget, study_id, limit)

    def _create_within_budget(self, study_id: int, limit: int) -> FrozenTrial:
        import sqlalchemy
        from optuna.trial import FrozenTrial, TrialState

        models = _optuna.rdb_models()
        live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
        with _optuna.create_scoped_session(self.scoped_session) as session:
            lock_study(session, study_id)
            taken = session.scalar(
                sqlalchemy.select(sqlalchemy.func.count(models.TrialModel.trial_id)).where(
                    models.TrialModel.study_id == study_id, models.TrialModel.state.in_(live)
                )
            )
            if taken >= limit:
                raise TrialBudgetReached(f"{taken} of {limit} trials finished or running")
            trial = self._get_prepared_new_trial(study_id, None, session)
            # Built inside the transaction, as Optuna does: the row expires at commit.
            return FrozenTrial(
                number=trial.number,
                state=trial.state,
                value=None,
                values=None,
                datetime_start=trial.datetime_start,
                datetime_complete=None,
                params={},
                distributions={},
                user_attrs={},
                system_attrs={},
                intermediate_values={},
                trial_id=trial.trial_id,
            )


def limit_trials(study: optuna.Study, n: int) -> bool:
    """Give the study a budget of n trials if its storage is ours (a TrialBudget, or the
    client of an `fsearch proxy`, which has the same method); False if it is not."""
    backend = _optuna.storage_backend(study)
    if not hasattr(backend, "limit_trials"):
        return False
    backend.limit_trials(_optuna.study_id(study), n)
    return True
