"""Find, verify and load Fashion-MNIST once per process; its train/validation/test split.

Lookup order for the four IDX `.gz` files:
  1. `--data-dir` / FSEARCH_DATA_DIR (if given, the files must be there: no silent fallback);
  2. /usr/share/datasets/fashion-mnist (Debian package `dataset-fashion-mnist`);
  3. the Keras cache, $KERAS_HOME/datasets/fashion-mnist (default ~/.keras);
  4. a download from the data set's official mirror into that cache.

Verification: each file's *decompressed* IDX bytes are checked against a known SHA-256. We hash
the content rather than the .gz because the same data ships in differently compressed files
(Debian's .gz differ byte-wise from the upstream ones); a truncated or altered file fails either
gzip's own CRC or this check, and the error names the file.

The test images are read only by export (`load_test`), never during the search.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from search.config import DataSettings
from search.data.split import (
    Split,
    file_sha256,
    split_hash,
    stratified_indices,
)
from search.errors import DataError

# file name -> SHA-256 of the decompressed IDX content.
CONTENT_SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",  # noqa: E501
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",  # noqa: E501
}
FILES = tuple(CONTENT_SHA256)
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
# The one Keras uses (https), then the official mirror of zalandoresearch/fashion-mnist's
# README (http only). Either way every file's content is checked against CONTENT_SHA256.
MIRRORS = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
# Bounds on what a mirror (or a file on disk) may make us write or hold: the largest real file
# is 26 MB compressed and 47 MB decompressed (train images); a server or a gzip bomb that
# sends more is cut off, not followed.
MAX_DOWNLOAD_BYTES = 64 * 2**20
MAX_DECOMPRESSED_BYTES = 64 * 2**20
ENV_DATA_DIR = "FSEARCH_DATA_DIR"


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "fashion-mnist"


def _has_all(d: Path) -> bool:
    return all((d / f).is_file() for f in FILES)


def find_data_dir(data_dir: str | Path | None = None, *, download: bool = True) -> Path:
    """The directory holding the four files, downloading them into the Keras cache if needed."""
    explicit = data_dir if data_dir is not None else os.environ.get(ENV_DATA_DIR) or None
    if explicit is not None:
        d = Path(explicit).expanduser()
        if not d.is_dir():
            raise DataError(
                f"data directory {str(d)!r} does not exist; fix --data-dir/{ENV_DATA_DIR}"
            )
        missing = [f for f in FILES if not (d / f).is_file()]
        if missing:
            raise DataError(
                f"data directory {str(d)!r} lacks {', '.join(missing)}; it needs the four "
                "Fashion-MNIST .gz files (or leave --data-dir unset to use the system copy)"
            )
        return d
    for d in (DEBIAN_DIR, keras_cache_dir()):
        if _has_all(d):
            return d
    if not download:
        raise DataError("Fashion-MNIST not found; install dataset-fashion-mnist or pass --data-dir")
    return download_dataset(keras_cache_dir())


def download_dataset(
    dest: Path, *, mirrors: tuple[str, ...] = MIRRORS, timeout: float = 30
) -> Path:
    """Download the four files into dest, verifying each before it is moved into place."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the data cache {str(dest)!r}: {e.strerror}") from None
    for name in FILES:
        if (dest / name).is_file():
            continue
        errors = []
        for base in mirrors:
            fd, tmp = tempfile.mkstemp(dir=dest, suffix=".part")
            try:
                with (
                    os.fdopen(fd, "wb") as out,
                    urllib.request.urlopen(base + name, timeout=timeout) as r,
                ):
                    _copy_bounded(r, out, MAX_DOWNLOAD_BYTES, what=base + name)
                _verified_bytes(Path(tmp), expected_name=name)
                os.replace(tmp, dest / name)
                break
            except (OSError, DataError) as e:  # URLError is an OSError
                errors.append(f"{base}: {getattr(e, 'reason', e)}")
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        else:
            raise DataError(
                f"Fashion-MNIST is not on this machine and the download of {name} failed "
                f"({'; '.join(errors)}); install the Debian package dataset-fashion-mnist "
                f"(apt-get install dataset-fashion-mnist) or pass --data-dir DIR"
            )
    return dest


def _copy_bounded(src, out, limit: int, *, what: str) -> int:
    """Copy src to out in chunks; DataError past `limit` bytes."""
    done = 0
    while chunk := src.read(1 << 20):
        done += len(chunk)
        if done > limit:
            raise DataError(f"{what} sent more than {limit >> 20} MiB; not a Fashion-MNIST file")
        out.write(chunk)
    return done


class _Hasher:
    """A file-like sink that only hashes what is written to it (keep=False: nothing held)."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self.h.update(chunk)


def _verified_bytes(path: Path, *, expected_name: str | None = None, keep: bool = True) -> bytes:
    """The decompressed content, checked against its known SHA-256. keep=False: checked as
    a stream and not held (b"" is returned)."""
    name = expected_name or path.name
    buf = io.BytesIO() if keep else _Hasher()
    try:
        with gzip.open(path, "rb") as f:  # decompressed as a stream, never past the bound
            _copy_bounded(f, buf, MAX_DECOMPRESSED_BYTES, what=f"{path} (decompressed)")
        raw = buf.getvalue() if keep else b""
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"{path} is not a readable gzip file ({e}); it is truncated or corrupt: "
            "delete it and reinstall dataset-fashion-mnist or download it again"
        ) from None
    want = CONTENT_SHA256.get(name)
    got = hashlib.sha256(raw).hexdigest() if keep else buf.h.hexdigest()
    if want is not None and got != want:
        raise DataError(
            f"{path}: checksum mismatch (SHA-256 of its content is {got[:12]}…, expected "
            f"{want[:12]}…); the file is altered: delete it and reinstall or download it again"
        )
    return raw


def parse_idx(raw: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parse an IDX file (unsigned bytes): a big-endian header of dims, then the data."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{source}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0:
        raise DataError(f"{source}: IDX header gives no dimensions; the file is damaged")
    if len(raw) < header:
        raise DataError(f"{source}: IDX header is truncated")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    # math.prod on Python ints: np.prod would wrap around in int64 (4 dimensions of 65,536
    # make 0), and a header could then pass for an empty body.
    size = math.prod(shape)
    if len(raw) - header != size:
        raise DataError(
            f"{source}: IDX body holds {len(raw) - header:,} bytes, header promises {size:,} "
            f"({'x'.join(map(str, shape))}); the file is truncated or damaged"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


@dataclass(frozen=True)
class RawData:
    """The training images and labels, and every file's SHA-256. The test images are not
    here: a run never parses or holds them; `load_test` (export) reads them (`_read_test`)."""

    directory: Path
    train_x: np.ndarray  # uint8 (60000, 28, 28)
    train_y: np.ndarray  # uint8 (60000,)
    gz_sha256: dict[str, str]

    @property
    def test_x(self) -> np.ndarray:
        return _read_test(self.directory)[0]

    @property
    def test_y(self) -> np.ndarray:
        return _read_test(self.directory)[1]


@lru_cache(maxsize=4)
def _read(directory: Path) -> RawData:
    tx, ty = (_parse(directory / name) for name in FILES[:2])
    if tx.shape[0] != ty.shape[0]:
        raise DataError(f"{directory}: {tx.shape[0]} training images but {ty.shape[0]} labels")
    for name in FILES[2:]:  # checked now, so a damaged test file stops the run, not export
        _verified_bytes(directory / name, keep=False)
    return RawData(
        directory=directory,
        train_x=tx,
        train_y=ty,
        gz_sha256={name: file_sha256(directory / name) for name in FILES},
    )


@lru_cache(maxsize=1)
def _read_test(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 test images and labels: parsed only here, and only export calls it."""
    sx, sy = (_parse(directory / name) for name in FILES[2:])
    if sx.shape[0] != sy.shape[0]:
        raise DataError(f"{directory}: {sx.shape[0]} test images but {sy.shape[0]} labels")
    return sx, sy


def _parse(path: Path) -> np.ndarray:
    return parse_idx(_verified_bytes(path), source=str(path))


def read_raw(data_dir: str | Path | None = None) -> RawData:
    """Locate, verify and parse the four files; cached per directory for the process."""
    return _read(find_data_dir(data_dir).resolve())


def _as_inputs(images: np.ndarray) -> np.ndarray:
    # Flattened float32 in [0, 1]: the layout Dense layers consume with no per-step reshape.
    return (images.reshape(len(images), -1).astype(np.float32)) / np.float32(255.0)


@lru_cache(maxsize=4)
def _split(directory: Path, settings: DataSettings) -> Split:
    raw = _read(directory)
    rng = np.random.default_rng(settings.seed)
    n = len(raw.train_y)
    val_idx = stratified_indices(raw.train_y, settings.validation_size, rng)
    rest = np.setdiff1d(np.arange(n), val_idx, assume_unique=True)
    if settings.train_size and settings.train_size < len(rest):
        rest = rest[stratified_indices(raw.train_y[rest], settings.train_size, rng)]
    return Split(
        x_train=_as_inputs(raw.train_x[rest]),
        y_train=raw.train_y[rest].astype(np.int32),
        x_val=_as_inputs(raw.train_x[val_idx]),
        y_val=raw.train_y[val_idx].astype(np.int32),
        files=dict(raw.gz_sha256),
        directory=str(directory),
        split_sha=split_hash(raw.gz_sha256, rest, val_idx),
    )


def load_split(settings: DataSettings, data_dir: str | Path | None = None) -> Split:
    """Training and validation arrays; the same split for every trial of a study."""
    return _split(find_data_dir(data_dir).resolve(), settings)


def load_test(
    settings: DataSettings, data_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The held-out test set (or a stratified subset of it): only export calls this; the
    test files are parsed here, not when the training part is loaded."""
    x, y = _read_test(find_data_dir(data_dir).resolve())
    if settings.test_size and settings.test_size < len(y):
        idx = stratified_indices(y, settings.test_size, np.random.default_rng(settings.seed))
        x, y = x[idx], y[idx]
    return _as_inputs(x), y.astype(np.int32)
