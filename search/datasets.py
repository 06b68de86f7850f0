"""The names search/datasets.py had before the data layer became the search/data package:
task inference, loading any source, table features, the exported model's preprocessing and
the `fsearch init` TOML. New code imports from the package's modules directly."""

from search.data.init_toml import study_toml
from search.data.loading import held_out_rows, load_split, load_test, test_notes
from search.data.preprocessing import RESERVED_PREFIX, inference_model
from search.data.split import MIN_TRAIN_ROWS
from search.data.tables import MAX_CATEGORIES, Feature, model_input
from search.data.task import (
    MAX_CLASSES,
    MAX_INFERRED_CLASSES,
    UNSEEN_CLASS,
    Target,
    infer_task,
    target_of,
)

__all__ = [
    "MAX_CATEGORIES",
    "MAX_CLASSES",
    "MAX_INFERRED_CLASSES",
    "MIN_TRAIN_ROWS",
    "RESERVED_PREFIX",
    "UNSEEN_CLASS",
    "Feature",
    "Target",
    "held_out_rows",
    "infer_task",
    "inference_model",
    "load_split",
    "load_test",
    "model_input",
    "study_toml",
    "target_of",
    "test_notes",
]
