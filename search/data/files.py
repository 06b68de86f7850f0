"""A user's data file, read once per process: cached by path, size and modification time (a
folder: its file count and newest modification time), so planning, the study and export
share one parse."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from search.data import readers


def _file_key(source: str) -> tuple[Path, int, float]:
    path = readers.check_path(source).resolve()
    st = path.stat()
    if path.is_dir():
        times = [f.stat().st_mtime for f in path.iterdir() if f.is_file()]
        return path, len(times), max(times, default=st.st_mtime)
    return path, st.st_size, st.st_mtime


@lru_cache(maxsize=2)
def _read_arrays(path: Path, _size: int, _mtime: float) -> readers.Arrays:
    return readers.read_idx_folder(path) if path.is_dir() else readers.read_npz(path)


# The last tables read whole, by file key: a dict rather than lru_cache so that _target_of can
# take a target from a table already here instead of parsing the file again (pyarrow's
# include_columns still tokenizes every column of a CSV).
_TABLES: dict[tuple[Path, int, float], readers.Table] = {}
_TABLES_KEPT = 2


def _read_table(path: Path, size: int, mtime: float) -> readers.Table:
    key = (path, size, mtime)
    if key not in _TABLES:
        table = readers.read_table(path)
        while len(_TABLES) >= _TABLES_KEPT:
            _TABLES.pop(next(iter(_TABLES)))
        _TABLES[key] = table
    return _TABLES[key]
