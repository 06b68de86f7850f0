"""The names search/sources.py had before it became search/data/readers.py (reading a user's
CSV, Parquet, NPZ or IDX folder). New code imports search.data.readers directly."""

from search.data.readers import (
    ARRAY_SUFFIXES,
    MAX_IDX_BYTES,
    MAX_NPZ_BYTES,
    TABLE_SUFFIXES,
    Arrays,
    Table,
    check_parquet,
    check_path,
    check_text,
    check_unique_names,
    kind_of,
    read_idx_folder,
    read_npz,
    read_table,
)

__all__ = [
    "ARRAY_SUFFIXES",
    "MAX_IDX_BYTES",
    "MAX_NPZ_BYTES",
    "TABLE_SUFFIXES",
    "Arrays",
    "Table",
    "check_parquet",
    "check_path",
    "check_text",
    "check_unique_names",
    "kind_of",
    "read_idx_folder",
    "read_npz",
    "read_table",
]
