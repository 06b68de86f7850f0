"""search/artifacts.py: where kept models live (a directory beside the database, --artifacts,
S3) and which are kept (the study's top k)."""

from __future__ import annotations

import io
import sys
import types

import optuna
import pytest

from search import artifacts
from search.errors import StorageError, StudyError


def test_artifact_dir_is_beside_the_sqlite_file_of_the_storage(workdir, monkeypatch):
    assert artifacts.artifact_dir(None).as_posix() == "studies/artifacts"
    monkeypatch.setenv("FSEARCH_STORAGE", "sqlite:///elsewhere/x.db")
    assert artifacts.artifact_dir(None).as_posix() == "elsewhere/artifacts"
    assert artifacts.artifact_dir("sqlite:///a/b.db").as_posix() == "a/artifacts"


def test_artifact_dir_of_a_server_storage_is_studies_artifacts():
    assert artifacts.artifact_dir("postgresql+psycopg://u@db/x").as_posix() == "studies/artifacts"


def test_artifacts_option_wins_over_the_env_which_wins_over_the_storage(workdir, monkeypatch):
    monkeypatch.setenv(artifacts.ENV_ARTIFACTS, "from/env")
    assert artifacts.artifact_dir(None).as_posix() == "from/env"
    assert artifacts.artifact_dir(None, "shared/models").as_posix() == "shared/models"


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [("s3://models", "models", ""), ("s3://models/fsearch/big/", "models", "fsearch/big/")],
)
def test_s3_url_splits_into_bucket_and_prefix_and_stays_a_url(url, bucket, prefix):
    assert artifacts.parse_s3_url(url) == (bucket, prefix)
    assert artifacts.artifact_dir(None, url) == url  # kept as a URL, not squashed into a Path


@pytest.mark.parametrize("url", ["s3://", "s3:/models", "s3:models"])
def test_malformed_s3_urls_are_refused_with_the_expected_form(url):
    with pytest.raises(StorageError, match=r"expected s3://BUCKET\[/PREFIX\]"):
        artifacts.parse_s3_url(url)


def test_s3_store_is_optunas_boto3_store_prefixed_when_the_url_has_a_prefix(monkeypatch):
    import optuna.artifacts

    made = {}

    class FakeBoto3Store:
        def __init__(self, bucket, client=None):
            made.update(bucket=bucket, client=client)

    monkeypatch.setitem(sys.modules, "boto3", types.SimpleNamespace(client=lambda kind: kind))
    monkeypatch.setattr(optuna.artifacts, "Boto3ArtifactStore", FakeBoto3Store)
    assert isinstance(artifacts.open_artifact_store("s3://models"), FakeBoto3Store)
    assert made == {"bucket": "models", "client": "s3"}
    store = artifacts.open_artifact_store("s3://models/runs/a")
    assert store.prefix == "runs/a/" and isinstance(store.store, FakeBoto3Store)


def test_s3_without_boto3_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 -> ImportError
    with pytest.raises(StorageError, match=r"needs boto3: pip install 'fsearch\[s3\]'"):
        artifacts.open_artifact_store("s3://models")


def test_prefixed_store_keeps_keys_under_the_prefix(tmp_path):
    inner = artifacts.open_artifact_store(tmp_path)
    store = artifacts._PrefixedStore(inner, "runs/")
    (tmp_path / "runs").mkdir()
    store.write("abc", io.BytesIO(b"model"))
    assert (tmp_path / "runs" / "abc").read_bytes() == b"model"
    with store.open_reader("abc") as f:
        assert f.read() == b"model"
    store.remove("abc")
    assert not (tmp_path / "runs" / "abc").exists()


def test_directory_store_is_created_unless_create_is_false_and_never_on_a_file(tmp_path):
    artifacts.open_artifact_store(tmp_path / "lazy", create=False)
    assert not (tmp_path / "lazy").exists()
    artifacts.open_artifact_store(tmp_path / "made")
    assert (tmp_path / "made").is_dir()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StorageError, match="is a file; give a directory"):
        artifacts.open_artifact_store(tmp_path / "afile")


class _FakeModel:
    """Saves its name, as model.save(path) would save a Keras model."""

    def __init__(self, name: str) -> None:
        self.name = name

    def save(self, path: str) -> None:
        with open(path, "w") as f:
            f.write(self.name)


def test_keep_if_top_keeps_the_k_best_models_best_first_and_deletes_the_rest(tmp_path):
    store = artifacts.open_artifact_store(tmp_path / "art")
    study = optuna.create_study(direction="maximize")
    kept_flags = []
    for value in (0.5, 0.7, 0.6, 0.4):
        trial = study.ask()
        kept_flags.append(artifacts.keep_if_top(trial, value, _FakeModel(f"m{value}"), store, k=2))
        study.tell(trial, value)
    assert kept_flags == [True, True, True, False]  # 0.4 is below both kept models
    kept = artifacts.kept_models(study)
    assert [(e["trial"], e["value"]) for e in kept] == [(1, 0.7), (2, 0.6)]
    files = {p.name: p.read_text() for p in (tmp_path / "art").iterdir()}
    assert files == {kept[0]["artifact_id"]: "m0.7", kept[1]["artifact_id"]: "m0.6"}


def test_keep_if_top_keeps_the_lowest_values_of_a_minimizing_study(tmp_path):
    store = artifacts.open_artifact_store(tmp_path / "art")
    study = optuna.create_study(direction="minimize")
    study.set_metric_names(["val_rmse"])
    for value in (50.0, 40.0, 45.0, 60.0):
        trial = study.ask()
        artifacts.keep_if_top(trial, value, _FakeModel(f"m{value}"), store, k=2)
        study.tell(trial, value)
    assert [(e["trial"], e["value"]) for e in artifacts.kept_models(study)] == [
        (1, 40.0),
        (2, 45.0),
    ]


@pytest.mark.parametrize("bad", ["/etc/passwd", "../../x", "abc", "", None, 7])
def test_checked_id_refuses_anything_but_the_uuids_optuna_writes(bad):
    with pytest.raises(StudyError, match="fsearch never writes"):
        artifacts.checked_id(bad)


def test_checked_id_accepts_a_uuid():
    good = "0f2d6c9e-3b1a-4f57-9c2e-8d1b7a6e5f40"
    assert artifacts.checked_id(good) == good


def test_kept_models_refuses_a_planted_path_instead_of_returning_it():
    study = optuna.create_study()
    study.set_user_attr(artifacts.KEPT_ATTR, [{"trial": 0, "artifact_id": "/etc/passwd"}])
    with pytest.raises(StudyError, match="'/etc/passwd'"):
        artifacts.kept_models(study)


def test_keep_if_top_records_the_sha256_of_the_saved_file(tmp_path):
    import hashlib

    store = artifacts.open_artifact_store(tmp_path / "art")
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    assert artifacts.keep_if_top(trial, 0.5, _FakeModel("weights"), store, k=1)
    (entry,) = artifacts.kept_models(study)
    assert entry["sha256"] == hashlib.sha256(b"weights").hexdigest()


def test_keep_if_top_refuses_an_id_forged_inside_the_transaction_and_removes_nothing_of_it(
    tmp_path, monkeypatch
):
    store = artifacts.open_artifact_store(tmp_path / "art")
    removed = []
    real_remove = store.remove
    monkeypatch.setattr(store, "remove", lambda i: removed.append(i) or real_remove(i))
    study = optuna.create_study(direction="maximize")
    # Written by another writer of a shared database after the early read saw a clean list.
    forged = [{"trial": 0, "artifact_id": "../../victim", "value": 0.1}]
    study.set_user_attr(artifacts.KEPT_ATTR, forged)
    monkeypatch.setattr(artifacts, "kept_models", lambda s: [])
    trial = study.ask()
    with pytest.raises(StudyError, match="'../../victim'"):
        artifacts.keep_if_top(trial, 0.9, _FakeModel("m"), store, k=1)
    assert "../../victim" not in removed and len(removed) == 1  # only our own upload
    assert list((tmp_path / "art").iterdir()) == []
    assert study.user_attrs[artifacts.KEPT_ATTR] == forged
