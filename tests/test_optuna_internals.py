"""Every private Optuna internal listed in search/_optuna.py exists in the installed Optuna with
the shape we rely on. An upgrade that moves one fails here, by name, not in a user's study."""

from __future__ import annotations

import inspect

import optuna
import pytest
import sqlalchemy.orm

from search import _optuna


@pytest.mark.parametrize("name", sorted(_optuna.RDB_PRIVATE_METHODS))
def test_rdb_private_method_exists_with_the_parameters_we_pass(name):
    method = getattr(optuna.storages.RDBStorage, name, None)
    assert method is not None, f"optuna.storages.RDBStorage.{name} is gone (Optuna upgrade?)"
    params = tuple(inspect.signature(method).parameters)
    assert params == _optuna.RDB_PRIVATE_METHODS[name], f"RDBStorage.{name}{params}"


def test_rdb_attributes_models_session_and_study_internals_exist(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/s.db")
    for attr in _optuna.RDB_ATTRIBUTES:
        assert hasattr(storage, attr), f"RDBStorage instances lost .{attr}"
    models = _optuna.rdb_models()
    sqlalchemy.orm.configure_mappers()  # relationships (TrialModel.heartbeats) exist after this
    for model, columns in _optuna.RDB_MODELS.items():
        cls = getattr(models, model)
        for column in columns:
            assert hasattr(cls, column), f"{model}.{column} is gone"
    with _optuna.create_scoped_session(storage.scoped_session) as session:
        assert session.query(models.StudyModel).count() == 0
    study = optuna.create_study(storage=storage)
    assert _optuna.storage_backend(study) is storage  # unwrapped from _CachedStorage
    assert _optuna.study_id(study) == storage.get_study_id_from_name(study.study_name)


def test_our_overrides_replace_the_methods_optuna_calls():
    from search.storage import ResilientStorage

    for name in ("_create_new_trial", "_get_stale_trial_ids"):
        # Defined by one of its concern classes (search/storage/), not inherited from Optuna.
        ours = getattr(ResilientStorage, name)
        assert ours is not getattr(optuna.storages.RDBStorage, name), name
        assert name in _optuna.RDB_PRIVATE_METHODS


def test_tpe_and_study_private_methods_tpe_window_relies_on_exist():
    for cls, methods in (
        (optuna.samplers.TPESampler, _optuna.TPE_PRIVATE_METHODS),
        (optuna.Study, _optuna.STUDY_PRIVATE_METHODS),
    ):
        for name, want in methods.items():
            method = getattr(cls, name, None)
            assert method is not None, f"{cls.__name__}.{name} is gone (Optuna upgrade?)"
            params = tuple(inspect.signature(method).parameters)
            assert params == want, f"{cls.__name__}.{name}{params}"
    # _sample reads the history only through study._get_trials: a windowed study is seen.
    source = inspect.getsource(optuna.samplers.TPESampler._sample)
    assert "study._get_trials(" in source


def test_keras_lazy_tensorflow_module_has_the_available_flag_we_set():
    import importlib

    from search._optuna import KERAS_TF_AVAILABLE

    module, obj, attr = KERAS_TF_AVAILABLE
    lazy = getattr(importlib.import_module(module), obj)
    assert hasattr(lazy, attr), f"{module}.{obj}.{attr} moved: update search/_tf.py"


def test_late_rung_promotion_rule_agrees_with_optunas_successive_halving_rule():
    import importlib
    import random

    from search.late_rung import promotable

    module, name = _optuna.PROMOTION_RULE
    theirs = getattr(importlib.import_module(module), name)
    rng = random.Random(0)
    for _ in range(500):
        competing = [round(rng.random(), 2) for _ in range(rng.randint(1, 12))]
        value, keep = rng.choice(competing), rng.randint(2, 5)
        for direction in (
            optuna.study.StudyDirection.MAXIMIZE,
            optuna.study.StudyDirection.MINIMIZE,
        ):
            maximize = direction == optuna.study.StudyDirection.MAXIMIZE
            want = theirs(value, list(competing), keep, direction)
            assert promotable(value, list(competing), keep, maximize=maximize) == want, (
                value,
                competing,
                keep,
                direction,
            )


def test_hyperband_with_a_late_rung_still_gets_its_bracket_study_from_optuna():
    import importlib

    from search.late_rung import HyperbandLateRung

    module, name = _optuna.BRACKET_FILTER
    filter_study = getattr(importlib.import_module(module), name)
    pruner = HyperbandLateRung(
        min_resource=1, max_resource=12, reduction_factor=4, late_rung=8, late_rung_keep=2
    )
    for p in (pruner, optuna.pruners.NopPruner()):
        study = optuna.create_study(direction="maximize", pruner=p)
        study.ask()
        frozen = study.get_trials(deepcopy=False)[0]
        # A Hyperband pruner gets the sampler a bracket's study; any other pruner the study.
        assert (filter_study(study, frozen) is not study) == (p is pruner)
