"""Dead workers: heartbeats, and their trials failed and re-queued in one transaction.

Heartbeats let other workers notice a dead one: a RUNNING trial with no beat for the grace
period is failed and its parameters re-queued (Optuna's RetryHeartbeatStaleTrialCallback
decides how). Optuna's fail_stale_trials does this in two steps (fail, then add a WAITING
copy), and between them a worker could take the freed slot: the study would end with N + 1.
`StaleTrialSweep._get_stale_trial_ids` therefore does the whole job under the study lock and
returns [], leaving Optuna's caller (run before every trial) nothing to do twice.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from typing import TYPE_CHECKING, Any

import optuna

from search import _optuna
from search.errors import ConfigError
from search.storage._retry import RetryingStorage, env_seconds
from search.storage._transactions import lock_study

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

HEARTBEAT_INTERVAL_S = 20
GRACE_PERIOD_S = 90


def heartbeat_settings() -> tuple[int, int]:
    """(heartbeat interval, grace period) in whole seconds, from the environment
    (FSEARCH_HEARTBEAT_S, FSEARCH_GRACE_S; tests shorten them) or the defaults."""
    interval = int(env_seconds("FSEARCH_HEARTBEAT_S", HEARTBEAT_INTERVAL_S))
    grace = int(env_seconds("FSEARCH_GRACE_S", GRACE_PERIOD_S))
    if interval < 1 or grace <= interval:
        raise ConfigError(
            f"FSEARCH_GRACE_S ({grace}) must exceed FSEARCH_HEARTBEAT_S ({interval}), "
            "both whole seconds >= 1, or a live trial could be taken for a dead one"
        )
    return interval, grace


def heartbeat_kwargs() -> dict[str, Any]:
    """RDBStorage's heartbeat options from `heartbeat_settings` (checked before anything is
    created): a killed worker's trial is re-run with the same parameters, at most 3 times (a
    trial that kills its worker every time is not retried forever)."""
    interval, grace = heartbeat_settings()
    return {
        "heartbeat_interval": interval,
        "grace_period": grace,
        "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=3
        ),
    }


class _TrialSink:
    """Stands in for the study when Optuna's RetryHeartbeatStaleTrialCallback runs inside our
    transaction: the callback decides *whether* and *how* to re-queue (max_retry, retry
    history in system attrs), and we insert the trial it builds in the same transaction."""

    def __init__(self) -> None:
        self.trials: list[FrozenTrial] = []

    def add_trial(self, trial: FrozenTrial) -> None:
        self.trials.append(trial)


class StaleTrialSweep(RetryingStorage):
    """RDBStorage that fails and re-queues stale trials in one transaction (module docstring),
    and also fails RUNNING trials that never sent a heartbeat (an orphan of a lost
    acknowledgement, see RetryingStorage) one grace period after it first sees them."""

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        self._with_retry(self._sweep_stale, study_id)
        return []

    def _running(self, session: Any, study_id: int) -> list:
        import sqlalchemy
        from optuna.trial import TrialState

        models = _optuna.rdb_models()
        return (
            session.query(models.TrialModel)
            .options(sqlalchemy.orm.selectinload(models.TrialModel.heartbeats))
            .filter(models.TrialModel.state == TrialState.RUNNING)
            .filter(models.TrialModel.study_id == study_id)
            .all()
        )

    def _stale(self, session: Any, running: list) -> list:
        """The RUNNING trials whose last heartbeat is older than the grace period, by the
        database's clock only: clients' clocks may disagree with it and with each other."""
        import sqlalchemy

        grace = _dt.timedelta(seconds=self.grace_period or 2 * (self.heartbeat_interval or 1))
        db_now = session.execute(sqlalchemy.func.now()).scalar().replace(tzinfo=None)
        return [t for t in running if t.heartbeats and db_now - t.heartbeats[0].heartbeat > grace]

    def _stamp(self, session: Any, trials: list) -> None:
        """Give RUNNING trials that never beat (a creation whose acknowledgement was lost, or
        a worker killed before its first beat) a heartbeat at the database's time now: they are
        stale one grace period later unless their worker beats meanwhile. Their start time,
        written with the creating client's clock, is never compared with anyone's."""
        import sqlalchemy

        models = _optuna.rdb_models()
        for trial in trials:
            try:
                with session.begin_nested():  # the worker's own first beat may win the race
                    session.add(models.TrialHeartbeatModel(trial_id=trial.trial_id))
            except sqlalchemy.exc.IntegrityError:
                pass

    def _sweep_stale(self, study_id: int) -> None:
        from optuna.trial import TrialState

        from search.outcomes import END_REASON

        models = _optuna.rdb_models()
        if self.heartbeat_interval is None:
            return
        # Cheap look first, without the lock: almost always nothing is stale or unstamped.
        with _optuna.create_scoped_session(self.scoped_session) as session:
            running = self._running(session, study_id)
            if not self._stale(session, running) and all(t.heartbeats for t in running):
                return
        callback = self.get_heartbeat_stale_trial_callback()
        with _optuna.create_scoped_session(self.scoped_session) as session:
            lock_study(session, study_id)
            running = self._running(session, study_id)  # again, under the lock
            self._stamp(session, [t for t in running if not t.heartbeats])
            for trial in self._stale(session, running):
                frozen = self._build_frozen_trial_from_trial_model(trial)
                frozen.state = TrialState.FAIL
                sink = _TrialSink()
                if callback is not None:
                    callback(sink, frozen)  # type: ignore[arg-type]
                why = "its worker stopped sending heartbeats (killed or lost)"
                self._set_trial_attr_without_commit(
                    session, models.TrialUserAttributeModel, trial.trial_id, END_REASON, "lost"
                )
                self._set_trial_attr_without_commit(
                    session, models.TrialUserAttributeModel, trial.trial_id, "error", why
                )
                trial.state = TrialState.FAIL
                trial.datetime_complete = _dt.datetime.now()
                for template in sink.trials:
                    self._get_prepared_new_trial(study_id, template, session)


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail (and re-queue) trials of dead workers now, as Optuna does before every trial."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
