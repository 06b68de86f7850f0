"""Kept models in S3, shared by workers that have nothing else in common: each runs in its own
folder, and a third folder exports. The S3 server is moto's, on loopback, started here."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.helpers import FSEARCH, TINY_TOML

# Without moto or boto3: skipped here, failed under CI (conftest.py, the `needs` marker).
pytestmark = [
    pytest.mark.slow,
    pytest.mark.needs(
        "moto.server", "boto3", install="pip install -e '.[dev]' (moto[server], boto3)"
    ),
]


@pytest.fixture
def s3_endpoint(monkeypatch):
    """A real S3-compatible HTTP server (moto) on 127.0.0.1, with an empty bucket `models`."""
    import boto3
    import moto.server as moto_server

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3").create_bucket(Bucket="models")
    try:
        yield endpoint
    finally:
        server.stop()


def test_workers_in_separate_folders_share_models_in_s3_and_a_third_exports(
    tmp_path, real_data_dir, s3_endpoint
):
    import boto3

    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML)
    db = tmp_path / "shared" / "fsearch.db"
    db.parent.mkdir()
    common = ["--config", config, "--data-dir", real_data_dir, "--artifacts", "s3://models/runs"]
    env = {**os.environ, "FSEARCH_STORAGE": f"sqlite:///{db}"}

    def fsearch(folder: str, *args: object) -> str:
        cwd = tmp_path / folder
        cwd.mkdir(exist_ok=True)
        proc = subprocess.run(
            [str(FSEARCH), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    fsearch("machine-a", "run", *common, "--trials", 3, "--no-export")
    fsearch("machine-b", "run", *common, "--trials", 6, "--no-export", "--worker", 1)
    out = fsearch("machine-c", "export", "--study", "tiny", "--artifacts", "s3://models/runs",
                  "--data-dir", real_data_dir, "--out", "best")  # fmt: skip
    assert "exported trial #" in out
    card = json.loads((tmp_path / "machine-c" / "best" / "model-card.json").read_text())
    assert 0 < card["test_accuracy"] <= 1
    # The bucket holds exactly the kept models the study lists (keep_models = 2), no orphans.
    from search import storage as st
    from search.artifacts import kept_models
    from search.studies import load_study

    kept = kept_models(load_study(st.open_storage(f"sqlite:///{db}"), "tiny"))
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="models")["Contents"]}
    assert 1 <= len(kept) <= 2 and keys == {f"runs/{e['artifact_id']}" for e in kept}
    assert card["trial"] == kept[0]["trial"]
    # Nothing was written to the workers' own folders but their (empty) working directories.
    assert not any((tmp_path / "machine-a").iterdir()) and not any(
        (tmp_path / "machine-b").iterdir()
    )
