"""search/studies.py: create or resume a study, refuse a changed search space, name the
studies that exist."""

from __future__ import annotations

import json

import pytest

from search import storage as st
from search import studies
from search.config import parse_config
from search.errors import StudyError
from tests.helpers import raw_config


@pytest.fixture
def storage(tmp_path):
    return st.open_storage(f"sqlite:///{tmp_path}/s.db")


def test_a_second_create_or_load_resumes_the_study_it_created(storage):
    cfg = parse_config(raw_config())
    study, created = studies.create_or_load_study(storage, cfg)
    assert created
    again, created = studies.create_or_load_study(storage, cfg)
    assert not created and again.study_name == study.study_name
    assert studies.stored_config(again).to_json() == json.loads(json.dumps(cfg.to_json()))
    assert again.user_attrs[studies.ATTR_FINGERPRINT] == cfg.fingerprint()


def test_a_changed_precision_is_refused_with_how_to_continue_in_the_one_it_ran_in(storage):
    studies.create_or_load_study(storage, parse_config(raw_config()))  # float32, the default
    auto = parse_config(raw_config(precision="auto"))
    hint = r'space\.precision changed.*set precision = "float32" in \[space\] of a copy of its'
    with pytest.raises(StudyError, match=hint):
        studies.create_or_load_study(storage, auto)
    # As the hint says: float32 given explicitly is the study's own space.
    float32 = parse_config(raw_config(precision="float32"))
    _, created = studies.create_or_load_study(storage, float32)
    assert not created


def test_the_resume_hint_names_a_stored_non_default_precision(tmp_path):
    storage = st.open_storage(f"sqlite:///{tmp_path}/b.db")
    studies.create_or_load_study(storage, parse_config(raw_config(precision="mixed_bfloat16")))
    with pytest.raises(StudyError, match=r'set precision = "mixed_bfloat16" in \[space\]'):
        studies.create_or_load_study(storage, parse_config(raw_config(precision="auto")))


def test_the_resume_hint_gives_every_changed_space_key_as_toml_that_resumes_the_study(storage):
    import tomllib

    ran = raw_config(
        width={"low": 8, "high": 64, "log": True}, batch_size=[32, 64], learning_rate=0.01
    )
    studies.create_or_load_study(storage, parse_config(ran))
    changed = raw_config(
        width={"low": 8, "high": 128, "log": True}, batch_size=[64], learning_rate=0.02
    )
    with pytest.raises(StudyError) as refused:
        studies.create_or_load_study(storage, parse_config(changed))
    message = str(refused.value)
    assert message.endswith("of a copy of its config (--config FILE)")
    entries = message.split("to continue it as it ran, set ")[1].split(" in [space]")[0]
    assert entries == (
        "batch_size = [32, 64], learning_rate = 0.01, width = { low = 8, high = 64, log = true }"
    )
    # Those entries, parsed as TOML into the changed config's [space], resume the study.
    changed["space"].update(tomllib.loads(f"entries = {{ {entries} }}")["entries"])
    _, created = studies.create_or_load_study(storage, parse_config(changed))
    assert not created


def test_no_resume_hint_when_more_than_the_space_changed(storage):
    studies.create_or_load_study(storage, parse_config(raw_config()))
    other = raw_config(precision="auto")
    other["data"]["validation_size"] = other["data"].get("validation_size", 100) + 1
    with pytest.raises(StudyError) as refused:
        studies.create_or_load_study(storage, parse_config(other))
    assert "data.validation_size" in str(refused.value)
    assert "to continue it as it ran" not in str(refused.value)


def test_changed_space_is_refused_naming_the_key_unless_allowed(storage):
    studies.create_or_load_study(storage, parse_config(raw_config()))
    changed = parse_config(raw_config(dropout=0.2))
    with pytest.raises(StudyError, match=r"different search space \(space.dropout.* changed\)"):
        studies.create_or_load_study(storage, changed)
    _, created = studies.create_or_load_study(storage, changed, allow_space_change=True)
    assert not created
    # Allowed once: the study now holds the new space, so it resumes without the flag.
    study, _ = studies.create_or_load_study(storage, changed)
    assert study.user_attrs[studies.ATTR_FINGERPRINT] == changed.fingerprint()


def test_describe_change_lists_the_dotted_keys_that_differ():
    old = {"space": {"dropout": 0.1, "width": 16}, "data": {"seed": 1}}
    new = {"space": {"dropout": 0.2, "width": 16}, "data": {"seed": 1}, "model": {"x": 1}}
    assert studies.describe_change(old, new) == ["model", "space.dropout"]


def test_load_study_of_an_unknown_name_lists_the_known_ones(storage):
    studies.create_or_load_study(storage, parse_config(raw_config()))
    assert studies.study_names(storage) == ["tiny"]
    with pytest.raises(StudyError, match=r"no study named 'nope' .*studies: tiny"):
        studies.load_study(storage, "nope")


def test_stored_config_refuses_a_study_not_made_by_fsearch(storage):
    import optuna

    study = optuna.create_study(study_name="plain", storage=storage)
    with pytest.raises(StudyError, match="'plain' was not created by fsearch"):
        studies.stored_config(study)


def test_the_study_names_its_metric_so_plots_and_the_dashboard_label_it(tmp_path):
    import optuna

    storage = st.open_storage(f"sqlite:///{tmp_path}/s.db")
    study, _ = studies.create_or_load_study(storage, parse_config(raw_config()))
    assert study.metric_names == ["val_accuracy"]
    # A study made before metrics were named gets the name when it is resumed.
    old = optuna.create_study(study_name="old", storage=storage, direction="maximize")
    cfg = parse_config({**raw_config(), "study": {"name": "old"}})
    old.set_user_attr(studies.ATTR_FINGERPRINT, cfg.fingerprint())
    assert studies.create_or_load_study(storage, cfg)[0].metric_names == ["val_accuracy"]
