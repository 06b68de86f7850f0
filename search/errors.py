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


class UnusableColumn(DataError):
    """A table column that cannot be a feature (an identifier, free text, a timestamp): the
    config made for a file (`fsearch init`, `run --data`) drops it and says why."""

    def __init__(self, message: str, *, column: str, why: str) -> None:
        super().__init__(message)
        self.column, self.why = column, why


class StorageError(FsearchError):
    """The storage URL is malformed or the database cannot be reached."""


class StudyError(FsearchError):
    """The study does not exist, has no usable trial, or does not match the config."""


class ExportError(FsearchError):
    """The best model cannot be exported."""


class TooManyFailures(FsearchError):
    """Several trials in a row failed: probably a bug or a broken environment, not bad luck."""

    exit_code = 3


class WorkerFailed(FsearchError):
    """A `--jobs` worker process failed or was killed; its own lines say why."""

    def __init__(self, codes: list[int]) -> None:
        import signal

        self.codes = codes
        why = []
        for i, code in enumerate(codes):
            if code < 0:  # killed by a signal: Popen reports -SIGNUM
                try:
                    name = signal.Signals(-code).name
                except ValueError:
                    name = f"signal {-code}"
                why.append(f"worker w{i} was killed by {name}")
            elif code:
                why.append(f"worker w{i} exited {code}")
        super().__init__(f"{'; '.join(why)} (exit codes {codes}); see its lines above")
        # A signal's negative code would read as success to a shell: report it as 1.
        self.exit_code = max(max(codes), 1)


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C / SIGTERM stopped the run. The running trial was closed as FAIL and does not
    count; running the same command (or call) again resumes the study to its target.

    A KeyboardInterrupt, so a notebook or script stops as for any interrupt; the CLI prints it
    as one line and exits 130.
    """

    exit_code = 130

    def __init__(self, finished: int, target: int) -> None:
        self.finished, self.target = finished, target
        super().__init__(
            f"interrupted: {finished}/{target} trials finished; the running trial was closed "
            "as FAIL and does not count. Run the same command again to resume."
        )
