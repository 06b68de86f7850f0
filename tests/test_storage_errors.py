"""search/storage/: a damaged database is one line from every command, and the storage's
concerns (retry, budget, stale sweep, atomic attributes) stay composed as before the split."""

from __future__ import annotations

from pathlib import Path

import optuna

from search import storage as st
from tests.helpers import invoke


def test_fsearch_run_on_a_corrupt_sqlite_file_is_one_line_naming_it_exit_2_nothing_written(
    tiny_config, real_data_dir
):
    bad = Path("bad.db")
    content = b"not a database, just bytes" * 200
    bad.write_bytes(content)
    before = sorted(p.name for p in Path(".").iterdir())
    r = invoke(
        "run",
        "--config",
        tiny_config,
        "--data-dir",
        real_data_dir,
        "--trials",
        1,
        "--no-export",
        "--storage",
        "sqlite:///bad.db",
    )
    assert r.exit_code == 2, (r.output, r.exception)
    out = r.output.strip()
    assert out.count("\n") == 0 and "Traceback" not in out
    assert "sqlite:///bad.db" in out and "file is not a database" in out
    assert "restore it from a copy, or start anew with --storage" in out  # the fix
    assert bad.read_bytes() == content  # WAL not switched on, nothing appended
    assert sorted(p.name for p in Path(".").iterdir()) == before  # no -wal, -shm, studies/


def test_every_method_retried_as_is_is_wrapped_on_the_storage_fsearch_opens():
    for name in st._retry.RETRIED_AS_IS:
        ours = getattr(st.ResilientStorage, name)
        assert ours is not getattr(optuna.storages.RDBStorage, name), name
        assert ours.__wrapped__ is getattr(optuna.storages.RDBStorage, name), name
    assert len(set(st._retry.RETRIED_AS_IS)) == 19


def test_the_resilient_storage_is_each_concern_over_one_retrying_rdb_storage():
    mro = st.ResilientStorage.__mro__
    for concern in (st.TrialBudget, st.StaleTrialSweep, st.AtomicStudyAttrs):
        assert mro.index(concern) < mro.index(st.RetryingStorage), concern
    assert mro.index(st.RetryingStorage) < mro.index(optuna.storages.RDBStorage)
