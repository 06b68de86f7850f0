"""The study lock, and a study attribute read and written in one transaction under it.

Many workers change the same study: the trial budget, the stale sweep and kept-model lists
all read a value and write a new one. Each does it in one transaction that first takes
`lock_study`, so concurrent workers queue instead of overwriting each other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import optuna

from search import _optuna
from search.storage._retry import RetryingStorage


def lock_study(session: Any, study_id: int) -> None:
    """Serialise budget, stale-trial and attribute changes of one study across processes.

    A no-op UPDATE of the study row: a row lock on PostgreSQL (held to commit, so others
    wait), and the database write lock on SQLite, where SELECT ... FOR UPDATE is ignored.
    Taking it first, before any read, also avoids SQLite's "cannot upgrade a read
    transaction" failure in WAL mode.
    """
    import sqlalchemy

    models = _optuna.rdb_models()
    session.execute(
        sqlalchemy.update(models.StudyModel)
        .where(models.StudyModel.study_id == study_id)
        .values(study_name=models.StudyModel.study_name)
    )


class AtomicStudyAttrs(RetryingStorage):
    """RDBStorage with a read-modify-write of a study user attribute in one transaction."""

    def update_study_user_attr(self, study_id: int, key: str, update: Callable[[Any], Any]):
        """Set the study user attribute `key` to update(its current value or None), read and
        written in one transaction under the study lock: concurrent workers' updates queue
        instead of overwriting each other. Returns (old, new)."""
        return self._with_retry(self._update_attr, study_id, key, update)

    def _update_attr(self, study_id: int, key: str, update: Callable[[Any], Any]):
        models = _optuna.rdb_models()
        with _optuna.create_scoped_session(self.scoped_session) as session:
            lock_study(session, study_id)
            row = (
                session.query(models.StudyUserAttributeModel)
                .filter_by(study_id=study_id, key=key)
                .one_or_none()
            )
            old = json.loads(row.value_json) if row is not None else None
            new = update(old)
            if row is None:
                row = models.StudyUserAttributeModel(study_id=study_id, key=key)
                session.add(row)
            row.value_json = json.dumps(new)
        return old, new


def update_study_user_attr(study: optuna.Study, key: str, update: Callable[[Any], Any]):
    """update() applied to a study user attribute atomically (our storage: one locked
    transaction; an `fsearch proxy` client: compare-and-set on the proxy); on another storage
    (in-memory, one process) a plain read and write. Returns (old, new)."""
    backend = _optuna.storage_backend(study)
    if hasattr(backend, "update_study_user_attr"):
        return backend.update_study_user_attr(_optuna.study_id(study), key, update)
    old = study.user_attrs.get(key)
    new = update(old)
    study.set_user_attr(key, new)
    return old, new
