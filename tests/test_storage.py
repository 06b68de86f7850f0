from __future__ import annotations

import pytest

from search import storage as st
from search.config import parse_config
from search.errors import StorageError, StudyError
from tests.test_config import _raw


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "is malformed"),
        ("nosuchdb://x/y", "unknown database dialect 'nosuchdb'"),
        ("sqlite://", "in-memory SQLite"),
    ],
)
def test_bad_urls(url, message):
    with pytest.raises(StorageError, match=message):
        st.parse_url(url)


def test_mask_hides_passwords():
    assert st.mask("postgresql+psycopg://bob:s3cret@db/x") == "postgresql+psycopg://bob:***@db/x"
    assert "s3cret" not in st.mask("garbage://bob:s3cret@@")


def test_unreachable_server_is_one_line_without_password():
    url = "postgresql+psycopg://bob:s3cret@127.0.0.1:9/x"
    with pytest.raises(StorageError) as e:
        st.open_storage(url)
    msg = str(e.value)
    assert "cannot reach storage" in msg and "s3cret" not in msg and "\n" not in msg


def test_sqlite_under_a_file_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StorageError, match="is a file"):
        st.open_storage(f"sqlite:///{tmp_path}/afile/db.sqlite")


def test_must_exist(tmp_path):
    with pytest.raises(StorageError, match="no study database"):
        st.open_storage(f"sqlite:///{tmp_path}/none.db", must_exist=True)
    assert not (tmp_path / "none.db").exists()


def test_default_url_and_artifacts(workdir, monkeypatch):
    assert st.resolve_url(None) == "sqlite:///studies/fsearch.db"
    monkeypatch.setenv("FSEARCH_STORAGE", "sqlite:///elsewhere/x.db")
    assert st.resolve_url(None) == "sqlite:///elsewhere/x.db"
    assert st.artifact_dir(None).as_posix() == "elsewhere/artifacts"
    assert st.artifact_dir(None, "shared/models").as_posix() == "shared/models"


def test_changed_space_is_refused_and_can_be_allowed(tmp_path):
    storage = st.open_storage(f"sqlite:///{tmp_path}/s.db")
    cfg = parse_config(_raw())
    study, created = st.create_or_load_study(storage, cfg)
    assert created
    again, created = st.create_or_load_study(storage, cfg)
    assert not created and again.study_name == study.study_name
    changed = parse_config(_raw(dropout=0.2))
    with pytest.raises(StudyError, match=r"different search space \(space.dropout.* changed\)"):
        st.create_or_load_study(storage, changed)
    _, created = st.create_or_load_study(storage, changed, allow_space_change=True)
    assert st.create_or_load_study(storage, changed)[0].user_attrs[st.ATTR_FINGERPRINT] == (
        changed.fingerprint()
    )


def test_unknown_study_lists_known_ones(tmp_path):
    storage = st.open_storage(f"sqlite:///{tmp_path}/s.db")
    st.create_or_load_study(storage, parse_config(_raw()))
    with pytest.raises(StudyError, match=r"no study named 'nope' .*studies: tiny"):
        st.load_study(storage, "nope")


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [("s3://models", "models", ""), ("s3://models/fsearch/big/", "models", "fsearch/big/")],
)
def test_s3_artifact_urls(url, bucket, prefix):
    assert st.parse_s3_url(url) == (bucket, prefix)
    assert st.artifact_dir(None, url) == url  # kept as a URL, not squashed into a Path


@pytest.mark.parametrize("url", ["s3://", "s3:/models", "s3:models"])
def test_malformed_s3_urls(url):
    with pytest.raises(StorageError, match=r"expected s3://BUCKET\[/PREFIX\]"):
        st.parse_s3_url(url)


def test_s3_store_is_optunas_boto3_store(monkeypatch):
    import sys
    import types

    import optuna.artifacts

    made = {}

    class FakeBoto3Store:
        def __init__(self, bucket, client=None):
            made.update(bucket=bucket, client=client)

    monkeypatch.setitem(sys.modules, "boto3", types.SimpleNamespace(client=lambda kind: kind))
    monkeypatch.setattr(optuna.artifacts, "Boto3ArtifactStore", FakeBoto3Store)
    assert isinstance(st.open_artifact_store("s3://models"), FakeBoto3Store)
    assert made == {"bucket": "models", "client": "s3"}
    store = st.open_artifact_store("s3://models/runs/a")
    assert store.prefix == "runs/a/" and isinstance(store.store, FakeBoto3Store)


def test_s3_without_boto3_is_one_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 -> ImportError
    with pytest.raises(StorageError, match=r"needs boto3: pip install 'fsearch\[s3\]'"):
        st.open_artifact_store("s3://models")


def test_prefixed_store_keeps_keys_under_the_prefix(tmp_path):
    import io

    inner = st.open_artifact_store(tmp_path)
    store = st._PrefixedStore(inner, "runs/")
    (tmp_path / "runs").mkdir()
    store.write("abc", io.BytesIO(b"model"))
    assert (tmp_path / "runs" / "abc").read_bytes() == b"model"
    with store.open_reader("abc") as f:
        assert f.read() == b"model"
    store.remove("abc")
    assert not (tmp_path / "runs" / "abc").exists()


def test_bad_heartbeat_settings_create_nothing(tmp_path, monkeypatch):
    from search.errors import ConfigError

    monkeypatch.setenv("FSEARCH_GRACE_S", "1")
    with pytest.raises(ConfigError, match="FSEARCH_GRACE_S"):
        st.open_storage(f"sqlite:///{tmp_path}/new/s.db", heartbeat=True)
    assert not (tmp_path / "new").exists()
