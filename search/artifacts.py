"""Kept models: where they live (a directory or S3) and which are kept (the study's top k).

Models are Optuna artifacts. The store is a directory (a shared volume for many machines) or
an s3:// URL (Optuna's Boto3ArtifactStore). Which trials' models are kept is a study user
attribute (KEPT_ATTR), best first, so every worker sees it and disk stays bounded at
`keep_models` files however long the study runs.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.data import file_sha256
from search.errors import StorageError, StudyError
from search.storage import parse_url, resolve_url

if TYPE_CHECKING:
    import optuna

ENV_ARTIFACTS = "FSEARCH_ARTIFACTS"
# study attr: [{"trial", "artifact_id", "value", "sha256"}], best first
KEPT_ATTR = "fsearch:kept_models"
MODEL_FILE = "model.keras"


def artifact_dir(url: str | None, artifacts: str | None = None) -> Path | str:
    """Where kept models live: --artifacts, $FSEARCH_ARTIFACTS, else beside the SQLite file
    (studies/artifacts for a server database). An s3:// URL is returned as is (a str)."""
    chosen = artifacts or os.environ.get(ENV_ARTIFACTS)
    if chosen:
        return str(chosen) if str(chosen).startswith("s3:") else Path(chosen)
    info = parse_url(resolve_url(url))
    base = info.sqlite_path.parent if info.sqlite_path is not None else Path("studies")
    return base / "artifacts"


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key prefix) of s3://bucket[/prefix]; the prefix ends with '/' or is empty."""
    head, sep, rest = url.partition("://")
    bucket, _, prefix = rest.partition("/")
    if head != "s3" or not sep or not bucket:
        raise StorageError(f"artifact URL {url!r} is malformed; expected s3://BUCKET[/PREFIX]")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class _PrefixedStore:
    """An artifact store that keeps every key under a prefix, so one bucket holds many
    studies. Optuna's Boto3ArtifactStore writes keys at the bucket's root."""

    def __init__(self, store: Any, prefix: str) -> None:
        self.store, self.prefix = store, prefix

    def open_reader(self, artifact_id: str):
        return self.store.open_reader(self.prefix + artifact_id)

    def write(self, artifact_id: str, content_body) -> None:
        self.store.write(self.prefix + artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        self.store.remove(self.prefix + artifact_id)


def open_artifact_store(path: Path | str, *, create: bool = True):
    """Optuna's artifact store for a directory or an s3:// URL.

    A directory is created unless create is False (readers then get ArtifactNotFound, which
    export turns into a hint about --artifacts). S3 (or MinIO, Ceph... through
    AWS_ENDPOINT_URL) uses Optuna's Boto3ArtifactStore with boto3's usual credentials chain.
    """
    if isinstance(path, str) and path.startswith("s3:"):
        bucket, prefix = parse_s3_url(path)
        try:
            import boto3
        except ImportError:
            raise StorageError(
                f"artifact store {path!r} needs boto3: pip install 'fsearch[s3]' "
                "(or use --artifacts DIR on a shared volume)"
            ) from None
        from optuna.artifacts import Boto3ArtifactStore

        store = Boto3ArtifactStore(bucket, client=boto3.client("s3"))
        return _PrefixedStore(store, prefix) if prefix else store
    from optuna.artifacts import FileSystemArtifactStore

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StorageError(f"artifact path {str(path)!r} is a file; give a directory")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


# Optuna's upload_artifact names every artifact by a random UUID. An id of another form read
# from a (shared, writable by others) database could be a path ("/home/you/.ssh/id_rsa",
# "../../x") that a file store would open or delete: never used.
_ARTIFACT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def checked_id(artifact_id: Any) -> str:
    """The artifact id if it has the form fsearch writes (a UUID); StudyError otherwise."""
    if isinstance(artifact_id, str) and _ARTIFACT_ID.fullmatch(artifact_id):
        return artifact_id
    raise StudyError(
        f"the study holds an artifact id {str(artifact_id)[:80]!r} that fsearch never writes "
        "(a UUID is expected), so it is not used as a file name; someone may have edited the "
        "shared database: check it before using this study"
    )


def kept_models(study: optuna.Study) -> list[dict[str, Any]]:
    """The kept-model entries of the study, best first, every artifact id checked."""
    entries = list(study.user_attrs.get(KEPT_ATTR, []))
    for entry in entries:
        checked_id(entry.get("artifact_id") if isinstance(entry, dict) else entry)
    return entries


def keeper(store, *, k: int):
    """The objective's `keep`: each completed trial's model offered to keep_if_top(k)."""
    return lambda trial, value, model: keep_if_top(trial, value, model, store, k=k)


def keep_if_top(trial: optuna.Trial, value: float, model, store, *, k: int) -> bool:
    """Save the model as an artifact if it is among the study's k best; evict the ones it beats.

    The kept list is a study user attribute, so every worker sees it and disk stays bounded at
    k models however long the study runs. It is updated in one locked transaction
    (storage.update_study_user_attr): workers finishing at once cannot drop each other's
    entries, and every file that leaves the list (or never enters it) is removed.
    """
    from optuna.artifacts import upload_artifact

    from search.metrics import of_study
    from search.storage import update_study_user_attr

    study = trial.study
    metric = of_study(study)
    kept = kept_models(study)
    if len(kept) >= k and not any(metric.better(value, e["value"]) for e in kept):
        return False  # a cheap early no; the transaction below decides for real
    with tempfile.TemporaryDirectory(prefix="fsearch-") as tmp:
        path = os.path.join(tmp, MODEL_FILE)
        model.save(path)
        sha256 = file_sha256(Path(path))  # export checks the file it downloads against it
        artifact_id = upload_artifact(artifact_store=store, file_path=path, study_or_trial=trial)
    entry = {"trial": trial.number, "artifact_id": artifact_id, "value": value, "sha256": sha256}

    def with_entry(old: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        # Read inside the locked transaction: what another writer of a shared database put
        # there since kept_models() is checked too, before any id reaches store.remove.
        for e in old or []:
            checked_id(e.get("artifact_id") if isinstance(e, dict) else e)
        return sorted([*(old or []), entry], key=lambda e: metric.rank_key(e["value"]))[:k]

    try:
        old, new = update_study_user_attr(study, KEPT_ATTR, with_entry)
    except StudyError:
        _remove_quietly(store, artifact_id)  # ours: nothing refers to it
        raise
    staying = {e["artifact_id"] for e in new}
    for gone in {e["artifact_id"] for e in [*(old or []), entry]} - staying:
        _remove_quietly(store, gone)
    if artifact_id not in staying:
        return False
    trial.set_user_attr("model_artifact_id", artifact_id)
    return True


def _remove_quietly(store, artifact_id: str) -> None:
    from optuna.artifacts.exceptions import ArtifactNotFound

    try:
        store.remove(artifact_id)
    except ArtifactNotFound:
        pass  # already removed (by the worker that evicted it first)
