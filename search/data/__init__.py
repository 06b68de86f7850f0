"""The data layer: what trials train on and export scores, from Fashion-MNIST or a user's file.

In reading order:
  split.py          the `Split` every trial trains on, its hash, the seeded hold-outs
  fashion.py        Fashion-MNIST: find, verify, download, parse IDX, its split
  readers.py        a user's file read and checked: CSV/Parquet tables, NPZ, IDX folders
  files.py          each file read once per process
  task.py           classification or regression from the target; labels and classes
  tables.py         a table's columns encoded (`Feature`)
  arrays.py         arrays flattened and scaled
  loading.py        `load_split` / `load_test` for any source (Fashion-MNIST when empty)
  preprocessing.py  the exported model: the network with the preprocessing in Keras layers
  init_toml.py      the study TOML `fsearch init` writes for a data file

`search.data` keeps the names it had as a module (Fashion-MNIST's `load_split`, `read_raw`,
`Split`...); search/datasets.py and search/sources.py re-export the rest under their old
names. Tests that patch a module global patch the module that reads it (e.g. fashion.MIRRORS).
"""

from search.data.fashion import (
    CONTENT_SHA256,
    DEBIAN_DIR,
    ENV_DATA_DIR,
    FILES,
    MIRRORS,
    RawData,
    download_dataset,
    find_data_dir,
    keras_cache_dir,
    load_split,
    load_test,
    parse_idx,
    read_raw,
)
from search.data.split import CLASS_NAMES, Split, file_sha256, split_hash, stratified_indices

__all__ = [
    "CLASS_NAMES",
    "CONTENT_SHA256",
    "DEBIAN_DIR",
    "ENV_DATA_DIR",
    "FILES",
    "MIRRORS",
    "RawData",
    "Split",
    "download_dataset",
    "file_sha256",
    "find_data_dir",
    "keras_cache_dir",
    "load_split",
    "load_test",
    "parse_idx",
    "read_raw",
    "split_hash",
    "stratified_indices",
]
