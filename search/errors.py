"""Error tree.

Every error here is something the user can fix; the CLI prints its message as one line and
exits non-zero. ConfigError, DataError, StorageError and StudyError stop a run before any
trial starts. A failure inside one trial is not an error of this tree: Optuna records the
trial as FAIL (with the traceback in its user attributes) and the search goes on.
"""


class FsearchError(Exception):
    """Base class: a problem with the user's input or environment, stated with its fix."""

    exit_code = 2


class ConfigError(FsearchError):
    """The study config (TOML) or a command-line value is invalid."""


class DataError(FsearchError):
    """The data set is missing, corrupt or cannot be downloaded."""


class StorageError(FsearchError):
    """The storage URL is malformed or the database cannot be reached."""


class StudyError(FsearchError):
    """The study does not exist, has no usable trial, or does not match the config."""


class ExportError(FsearchError):
    """The best model cannot be exported."""


class TooManyFailures(FsearchError):
    """Several trials in a row failed: probably a bug or a broken environment, not bad luck."""

    exit_code = 3
