from __future__ import annotations

import pytest

from search.config import Choice, Fixed, FloatRange, IntRange, load_config, parse_config
from search.errors import ConfigError
from tests.helpers import raw_config


def test_default_config_loads_and_covers_the_issue_space():
    cfg = load_config()
    s = cfg.space
    assert cfg.study.name == "fashion-mnist-mlp"
    assert s["layers"] == IntRange(1, 4)
    assert s["width"] == IntRange(16, 1024, log=True)
    assert s["activation"] == Fixed("relu")
    assert isinstance(s["learning_rate"], FloatRange) and s["learning_rate"].log
    assert set(s["optimizer"].choices) == {"sgd", "adam", "rmsprop"}
    assert set(s["regularizer"].choices) == {"none", "l1", "l2"}
    assert cfg.study.sampler == "tpe" and cfg.study.pruner == "hyperband"


def test_parse_kinds():
    cfg = parse_config(raw_config(width=32, optimizer=["adam"], dropout={"low": 0.1, "high": 0.1}))
    assert cfg.space["width"] == Fixed(32)
    assert cfg.space["optimizer"] == Fixed("adam")  # a one-element list is a fixed value
    assert cfg.space["dropout"] == Fixed(0.1)
    assert cfg.space["batch_size"] == Choice((64, 128))
    assert cfg.space["learning_rate"] == FloatRange(1e-3, 0.05, log=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"widht": 3}, "unknown key 'widht'; did you mean 'width'"),
        ({"width": "wide"}, "expected int, got str"),
        ({"width": 32.5}, "expected int, got float"),
        ({"layers": True}, "expected int, got bool"),
        ({"learning_rate": {"low": 0.1, "high": 0.01}}, "low (0.1) must be <= high (0.01)"),
        ({"learning_rate": {"low": 0.0, "high": 0.1, "log": True}}, "must be > 0"),
        ({"reg_strength": {"low": 0.0, "high": 0.1, "log": True}}, "log range needs low > 0"),
        ({"dropout": 1.0}, "must be >= 0 and < 1"),
        ({"optimizer": ["sgd", "adagrad"]}, "must be one of sgd, adam, rmsprop, adamw"),
        ({"optimizer": []}, "list of choices is empty"),
        ({"width": {"low": 16}}, "needs both 'low' and 'high'"),
        ({"width": {"low": 16, "high": 32, "lg": True}}, "unknown range key 'lg'"),
        ({"activation": {"low": 1, "high": 2}}, "a range makes no sense here"),
        ({"lr_schedule": "cosin"}, "must be one of constant, cosine"),
    ],
)
def test_bad_space_entries_name_the_key_and_fix(change, message):
    with pytest.raises(ConfigError) as e:
        parse_config(raw_config(**change), source="s.toml")
    assert message in str(e.value)
    assert "s.toml [space]" in str(e.value)


def test_unknown_table_and_study_key():
    raw = raw_config()
    raw["studdy"] = {}
    with pytest.raises(ConfigError, match="unknown table 'studdy'; did you mean 'study'"):
        parse_config(raw)
    raw = raw_config()
    raw["study"]["prunner"] = "median"
    with pytest.raises(ConfigError, match="unknown key 'prunner'; did you mean 'pruner'"):
        parse_config(raw)


def test_missing_space_key():
    raw = raw_config()
    del raw["space"]["dropout"]
    with pytest.raises(ConfigError, match="missing dropout"):
        parse_config(raw)


@pytest.mark.parametrize("name", ["../x", "/etc/x", "a/b", "..", "", ".hidden", "x" * 101])
def test_study_names_that_would_escape_a_directory_are_refused(name):
    raw = raw_config()
    raw["study"]["name"] = name
    with pytest.raises(ConfigError, match="is not allowed"):
        parse_config(raw)


def test_overrides_are_validated():
    cfg = parse_config(raw_config())
    assert cfg.replace_study(name="other", sampler="random").study.sampler == "random"
    with pytest.raises(ConfigError, match="is not allowed"):
        cfg.replace_study(name="../up")


def test_fingerprint_tracks_the_objective_only():
    a = parse_config(raw_config())
    assert a.fingerprint() == parse_config(raw_config()).fingerprint()
    assert a.fingerprint() != parse_config(raw_config(dropout=0.2)).fingerprint()
    # Sampler, pruner and speed knobs may change on resume without changing the fingerprint.
    assert a.fingerprint() == a.replace_study(sampler="random", pruner="none").fingerprint()


def test_lr_schedule_is_optional_and_constant_by_default():
    # Leaving it out means what every config meant before the key existed, fingerprint included,
    # so a study created then still resumes.
    plain = parse_config(raw_config())
    assert plain.space["lr_schedule"] == Fixed("constant")
    explicit = parse_config(raw_config(lr_schedule="constant"))
    assert explicit.fingerprint() == plain.fingerprint()
    assert "lr_schedule" not in plain.objective_dict()["space"]
    cosine = parse_config(raw_config(lr_schedule="cosine"))
    assert cosine.fingerprint() != plain.fingerprint()
    assert parse_config(raw_config(lr_schedule=["constant", "cosine"])).space[
        "lr_schedule"
    ] == Choice(("constant", "cosine"))


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found; pass --config"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[space\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


@pytest.mark.parametrize("pruner", ["hyperband", "successive-halving"])
def test_bootstrap_count_reaches_the_pruner(pruner):
    import optuna

    from search.runner import make_pruner

    def pruned_at_some_rung(bootstrap: int) -> list[bool]:
        raw = raw_config()
        raw["study"].update(pruner=pruner, bootstrap_count=bootstrap)
        cfg = parse_config(raw)
        assert cfg.study.bootstrap_count == bootstrap
        study = optuna.create_study(
            direction="maximize", pruner=make_pruner(cfg.study, max_epochs=9)
        )
        out = []
        for _ in range(6):
            trial = study.ask()
            # Every epoch up to the last: Hyperband puts a trial in a bracket by a hash of
            # the (random) study name, and a bracket's first rung may be after epoch 1, so a
            # report at epoch 1 alone reaches no rung in some studies (a flaky CI failure).
            pruned = False
            for epoch in range(1, 10):
                trial.report(0.9, step=epoch)
                if trial.should_prune():
                    pruned = True
                    break
            out.append(pruned)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return out

    # Equal values: each trial is the best so far, so Optuna promotes it (nothing pruned);
    # with bootstrap_count the first trials to reach a rung are pruned instead.
    assert not any(pruned_at_some_rung(0))
    assert pruned_at_some_rung(2)[0]


def test_bootstrap_count_must_not_be_negative():
    raw = raw_config()
    raw["study"]["bootstrap_count"] = -1
    with pytest.raises(ConfigError, match="bootstrap_count must be >= 0, got -1"):
        parse_config(raw)


def test_study_name_with_a_trailing_newline_is_refused():
    from search.config import validate_study_name

    with pytest.raises(ConfigError, match="is not allowed"):
        validate_study_name("foo\n")


def test_precision_is_optional_float32_by_default_and_only_other_values_change_the_fingerprint():
    a = parse_config(raw_config())
    assert a.space["precision"] == Fixed("float32")
    assert parse_config(raw_config(precision="float32")).fingerprint() == a.fingerprint()
    mixed = parse_config(raw_config(precision="mixed_bfloat16"))
    assert mixed.space["precision"] == Fixed("mixed_bfloat16")
    auto = parse_config(raw_config(precision="auto"))
    assert auto.space["precision"] == Fixed("auto")
    assert len({a.fingerprint(), mixed.fingerprint(), auto.fingerprint()}) == 3


def test_unknown_precision_is_refused_naming_the_three_it_takes():
    with pytest.raises(
        ConfigError, match="precision: must be one of float32, mixed_bfloat16, auto"
    ):
        parse_config(raw_config(precision="float16"))
