"""fsearch: Optuna hyperparameter search for Keras MLPs.

The Python API (see search/api.py and the README):

    import search
    result = search.run("studies/fashion-mnist-mlp.toml", trials=50)
    search.best(), search.export(), search.report()

Names are loaded on first use, so `import search` (and `fsearch --help`) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "run": "search.api",
    "RunOptions": "search.api",
    "RunResult": "search.api",
    "load_study": "search.api",
    "best": "search.api",
    "trials": "search.api",
    "export": "search.api",
    "report": "search.api",
    "Config": "search.config",
    "load_config": "search.config",
    "FsearchError": "search.errors",
    "ConfigError": "search.errors",
    "DataError": "search.errors",
    "StorageError": "search.errors",
    "StudyError": "search.errors",
    "ExportError": "search.errors",
    "TooManyFailures": "search.errors",
    "WorkerFailed": "search.errors",
    "StudyInterrupted": "search.errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
