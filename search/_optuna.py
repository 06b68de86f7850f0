"""Every private Optuna internal fsearch leans on, in one place (and the one Keras internal,
KERAS_TF_AVAILABLE, at the end).

Optuna gives no public hook for what storage.ResilientStorage adds (a trial budget checked in
the same transaction as the insert, stale trials failed and re-queued in one transaction,
retries around the private methods its _CachedStorage calls), so ResilientStorage overrides or
calls the private members listed here. tests/test_optuna_internals.py checks each of them
against the installed Optuna, so an upgrade that moves one fails that test by name instead of
corrupting a study at run time. pyproject.toml pins Optuna to the versions checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

# RDBStorage methods we override or call, with the parameter names we rely on.
RDB_PRIVATE_METHODS: dict[str, tuple[str, ...]] = {
    # overridden: the budget check (_CachedStorage calls this, not create_new_trial)
    "_create_new_trial": ("self", "study_id", "template_trial"),
    # overridden: stale trials swept in one transaction (Optuna calls it before each trial)
    "_get_stale_trial_ids": ("self", "study_id"),
    # called inside our transactions
    "_get_prepared_new_trial": ("self", "study_id", "template_trial", "session"),
    "_set_trial_attr_without_commit": ("self", "session", "model_cls", "trial_id", "key", "value"),
    "_build_frozen_trial_from_trial_model": ("self", "trial"),
    # wrapped with retries: _CachedStorage calls them directly
    "_set_trial_param": (
        "self",
        "trial_id",
        "param_name",
        "param_value_internal",
        "distribution",
        "previous_distribution",
    ),
    "_get_trials": ("self", "study_id", "states", "included_trial_ids", "trial_id_greater_than"),
    "_get_best_trial_id": ("self", "study_id", "direction"),
}
# RDBStorage instance attributes we read.
RDB_ATTRIBUTES = ("scoped_session", "engine", "heartbeat_interval", "grace_period", "url")
# ORM models (optuna.storages._rdb.models) and their columns we query.
RDB_MODELS: dict[str, tuple[str, ...]] = {
    "StudyModel": ("study_id", "study_name"),
    "TrialModel": ("trial_id", "study_id", "state", "datetime_start", "heartbeats"),
    "TrialUserAttributeModel": (),
    "StudyUserAttributeModel": ("study_id", "key", "value_json"),
    "TrialHeartbeatModel": ("heartbeat",),
}


def rdb_models() -> Any:
    """optuna.storages._rdb.models: the SQLAlchemy ORM classes of Optuna's schema."""
    from optuna.storages._rdb import models

    return models


def create_scoped_session(scoped_session: Any) -> Any:
    """Optuna's transaction context manager: commit on success, roll back and re-raise
    (as StorageInternalError) on a database error."""
    from optuna.storages._rdb.storage import _create_scoped_session

    return _create_scoped_session(scoped_session)


def storage_backend(study: optuna.Study) -> Any:
    """The storage a Study really uses: Optuna wraps an RDBStorage in _CachedStorage."""
    storage = study._storage
    return getattr(storage, "_backend", storage)


def study_id(study: optuna.Study) -> int:
    return study._study_id


# TPE over a window of the history (search/tpe_window.py): the TPESampler method it wraps
# and the Study method through which that method reads the trials, with their parameters.
TPE_PRIVATE_METHODS: dict[str, tuple[str, ...]] = {
    "_sample": ("self", "study", "trial", "search_space"),
}
STUDY_PRIVATE_METHODS: dict[str, tuple[str, ...]] = {
    "_get_trials": ("self", "deepcopy", "states", "use_cache"),
}


# The late rung (search/late_rung.py) restates successive halving's promotion rule instead of
# calling it, and subclasses HyperbandPruner so that this function still hands the sampler the
# trial's own bracket (it checks isinstance(study.pruner, HyperbandPruner)).
PROMOTION_RULE = ("optuna.pruners._successive_halving", "_is_trial_promotable_to_next_rung")
BRACKET_FILTER = ("optuna.pruners", "_filter_study")

# Keras (search/_tf.py): under JAX or torch, Keras is told TensorFlow is absent so it does not
# import it to seed each trial. The module and attribute it sets:
KERAS_TF_AVAILABLE = ("keras.src.utils.module_utils", "tensorflow", "_available")
