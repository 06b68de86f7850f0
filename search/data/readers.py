"""Read a user's data file: a table (CSV, Parquet) or arrays (NPZ, a folder of IDX files).

Only reading and checking the file's own shape happen here; what the columns mean (task,
features, split) is decided in task.py, tables.py and arrays.py. Every problem is a DataError
naming the file and the fix. Tables are read with pyarrow (typed columns, multithreaded); NPZ
archives with NumPy and allow_pickle=False, so an untrusted archive cannot run code.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import re
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from search.data import fashion
from search.data.split import file_sha256
from search.errors import DataError, UnusableColumn

TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
ARRAY_SUFFIXES = (".npz",)
# A folder of MNIST-format files can be far bigger than Fashion-MNIST (EMNIST: ~700 MB); the
# bound only stops a gzip bomb.
MAX_IDX_BYTES = 4 * 2**30
# The same bound on the arrays of an .npz (decompressed): a zip bomb or an NPY header that
# promises 10^12 values stops with one line instead of exhausting memory.
MAX_NPZ_BYTES = 4 * 2**30


class Table:
    """A table's columns by name, converted to NumPy only when first asked for: a column the
    study drops (an identifier too large for float64, a type fsearch cannot use) is never
    converted, so it cannot stop the load.

    columns[name]: float64 with NaN, bool, or object str/None; kinds[name]: number | bool | text.
    """

    def __init__(self, path: Path, arrow, sha256: dict[str, str]) -> None:
        self.path = path
        self.sha256 = sha256  # file name -> SHA-256
        self.names: tuple[str, ...] = tuple(arrow.column_names)  # unique (check_unique_names)
        self.num_rows: int = arrow.num_rows
        # Arrow columns not converted yet (a converted one is let go: held once, as NumPy).
        self._arrow = {n: arrow.column(i) for i, n in enumerate(self.names)}
        self.columns = _LazyColumns(self, 1)
        self.kinds = _LazyColumns(self, 0)
        self._done: dict[str, tuple[str, np.ndarray]] = {}

    def _converted(self, name: str) -> tuple[str, np.ndarray]:
        if name not in self._done:
            if name not in self._arrow:
                raise KeyError(name)
            self._done[name] = _column(self.path, name, self._arrow[name])
            del self._arrow[name]
        return self._done[name]


@dataclass(frozen=True)
class _LazyColumns:
    """table.columns / table.kinds: a read-only mapping that converts a column on first use."""

    table: Table = field(repr=False)
    which: int  # 0: kind, 1: values

    def __getitem__(self, name: str):
        return self.table._converted(name)[self.which]

    def __contains__(self, name: object) -> bool:
        return name in self.table.names

    def __iter__(self):
        return iter(self.table.names)

    def __len__(self) -> int:
        return len(self.table.names)

    def keys(self):
        return list(self.table.names)


@dataclass(frozen=True)
class Arrays:
    path: Path
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    sha256: dict[str, str]
    known: str | None = None  # the name of a known data set whose hashes matched


def kind_of(path: Path) -> str:
    """table | arrays, from the path; DataError for anything else."""
    if path.is_dir():
        return "arrays"
    name = path.name.lower()
    if name.endswith(TABLE_SUFFIXES):
        return "table"
    if name.endswith(ARRAY_SUFFIXES):
        return "arrays"
    raise DataError(
        f"{path}: unknown data format; use a .csv, .parquet or .npz file or a folder of "
        "MNIST-format IDX files"
    )


def check_path(source: str) -> Path:
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"data file {source!r} not found (relative paths start at {Path.cwd()})")
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"data file {source!r} is empty")
    kind_of(path)
    return path


# ---------------------------------------------------------------------------- tables


def read_table(path: Path, columns: list[str] | None = None) -> Table:
    """A CSV or Parquet file as typed columns (all, or only `columns`)."""
    import pyarrow as pa

    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            check_parquet(path)
            table = pq.read_table(path, columns=columns)
        else:
            import pyarrow.csv as pcsv

            check_text(path)
            # strings_can_be_null: "", "NA", "NaN", "null", "N/A" (pyarrow's null_values) are
            # missing in text columns too, as they already are in number columns.
            convert = pcsv.ConvertOptions(include_columns=columns or [], strings_can_be_null=True)
            table = pcsv.read_csv(path, convert_options=convert)
    except DataError:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, KeyError, EOFError, zlib.error) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: cannot read it as {_format(path)} ({first})") from None
    check_unique_names(path, table.column_names)
    if table.num_rows == 0:
        raise DataError(f"{path}: the table has a header but no rows")
    return Table(path, table, {path.name: file_sha256(path)})


def check_unique_names(path: Path, names: list[str]) -> None:
    """DataError for a header that names a column twice (a dict would keep only the last)."""
    twice = [n for n, k in Counter(names).items() if k > 1]
    if twice:
        raise DataError(
            f"{path}: column {twice[0]!r} appears {names.count(twice[0])} times in the header; "
            "rename the copies so that every column name is unique"
        )


def _format(path: Path) -> str:
    return "Parquet" if path.name.lower().endswith((".parquet", ".pq")) else "CSV"


def check_parquet(path: Path) -> None:
    with open(path, "rb") as f:
        if f.read(4) != b"PAR1":
            raise DataError(f"{path}: not a Parquet file (no PAR1 magic number)")


def check_text(path: Path) -> None:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4096)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; zlib.error not
        raise DataError(f"{path}: cannot read it, corrupt or truncated ({e})") from None
    if b"\x00" in head:
        raise DataError(f"{path}: not a CSV file (it holds binary data)")


def _column(path: Path, name: str, col) -> tuple[str, np.ndarray]:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if pa.types.is_dictionary(t):
        col, t = col.cast(t.value_type), t.value_type
    if pa.types.is_boolean(t):
        if col.null_count:
            return "text", np.array([None if v is None else str(v) for v in col.to_pylist()])
        return "bool", col.to_numpy(zero_copy_only=False).astype(bool)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        try:  # a safe cast: an integer above 2^53 has no exact float64 and is refused
            return "number", pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            first = str(e).strip().splitlines()[0]
            raise UnusableColumn(
                f"{path}: column {name!r} holds numbers a float cannot hold exactly ({first}); "
                "if it is an identifier add it to drop = [...] in [data], else store it as text",
                column=name,
                why="numbers a float cannot hold exactly (an identifier?)",
            ) from None
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text", col.to_numpy(zero_copy_only=False).astype(object)
    if pa.types.is_null(t):
        return "number", np.full(len(col), np.nan)
    raise UnusableColumn(
        f"{path}: column {name!r} holds {t} values, which fsearch cannot use as a feature; "
        f"add it to drop = [...] in [data] (or convert it to numbers or text)",
        column=name,
        why=f"{t} values, which fsearch cannot use (convert them to numbers or text to use them)",
    )


# ---------------------------------------------------------------------------- arrays


def read_npz(path: Path) -> Arrays:
    """x_train, y_train and optionally x_test, y_test (or x, y) from a NumPy archive."""
    try:
        with zipfile.ZipFile(path) as z:
            members = {(n[:-4] if n.endswith(".npy") else n): z.getinfo(n) for n in z.namelist()}
            keys = set(members)
            if {"x_train", "y_train"} <= keys:
                names = ["x_train", "y_train"]
            elif {"x", "y"} <= keys:
                names = ["x", "y"]
            else:
                raise DataError(
                    f"{path}: an .npz needs arrays x_train and y_train (or x and y), and may "
                    f"have x_test and y_test; it has {', '.join(sorted(keys)) or 'none'}"
                )
            if ("x_test" in keys) != ("y_test" in keys):
                raise DataError(f"{path}: has one of x_test / y_test; give both or neither")
            if "x_test" in keys:
                names += ["x_test", "y_test"]
            # The sizes the archive declares; zipfile never inflates a member past its own.
            total = sum(members[n].file_size for n in names)
            if total > MAX_NPZ_BYTES:
                raise DataError(
                    f"{path}: its arrays decompress to {total / 2**20:,.0f} MiB, over the "
                    f"{MAX_NPZ_BYTES / 2**20:,.0f} MiB fsearch reads from an .npz; use a "
                    "smaller file"
                )
            got = [_npz_array(path, z, members[n], n) for n in names]
    except DataError:
        raise
    # NotImplementedError: a compression method zipfile lacks; RuntimeError: an encrypted member.
    except (
        zipfile.BadZipFile,
        ValueError,
        OSError,
        EOFError,
        zlib.error,
        NotImplementedError,
        RuntimeError,
    ) as e:
        raise DataError(f"{path}: not a NumPy .npz archive of plain arrays ({e})") from None
    x, y = got[0], got[1]
    xt, yt = (got[2], got[3]) if len(got) == 4 else (None, None)
    for xs, ys, part in ((x, y, "train"), (xt, yt, "test")):
        if xs is None:
            continue
        if xs.ndim < 1 or ys.ndim != 1 and not (ys.ndim == 2 and ys.shape[1] == 1):
            raise DataError(f"{path}: y_{part} must be one label per row, got shape {ys.shape}")
        if len(xs) != len(ys):
            raise DataError(
                f"{path}: x_{part} has {len(xs)} rows but y_{part} has {len(ys)}; they must match"
            )
        if len(xs) == 0:
            raise DataError(f"{path}: x_{part} is empty")
        if xs.dtype.kind not in "biuf":
            raise DataError(f"{path}: x_{part} holds {xs.dtype} values; it must hold numbers")
    if yt is not None and (y.dtype.kind in "US") != (yt.dtype.kind in "US"):
        raise DataError(
            f"{path}: y_train holds {y.dtype} labels but y_test {yt.dtype}; give both as "
            "numbers or both as text"
        )
    if xt is not None and x.shape[1:] != xt.shape[1:]:
        raise DataError(
            f"{path}: x_train rows have shape {x.shape[1:]} but x_test rows {xt.shape[1:]}"
        )
    return Arrays(
        path=path,
        x_train=x,
        y_train=y.reshape(-1),
        x_test=xt,
        y_test=None if yt is None else yt.reshape(-1),
        sha256={path.name: file_sha256(path)},
    )


def _npz_array(path: Path, z: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> np.ndarray:
    """One member of an .npz, its NPY header checked against the member's size before any
    memory is given to it (a header may claim 10^12 values)."""
    fmt = np.lib.format
    bad = f"{path}: not a NumPy .npz archive of plain arrays: {key!r}"
    with z.open(info) as f:
        try:
            version = fmt.read_magic(f)
        except ValueError:
            raise DataError(f"{bad} has no NPY header; write the file with numpy.savez") from None
        readers = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
        if version not in readers:
            raise DataError(f"{bad} is in NPY format {version}; write it with numpy.savez")
        shape, _fortran, dtype = readers[version](f)
        if dtype.hasobject:
            raise DataError(f"{bad} holds Python objects, which fsearch never unpickles")
        need = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
        have = info.file_size - f.tell()
        if need != have:
            raise DataError(
                f"{bad}: its header promises {need:,} bytes ({'x'.join(map(str, shape))} "
                f"{dtype}) but it holds {have:,}; the file is damaged"
            )
    with z.open(info) as f:
        return fmt.read_array(f, allow_pickle=False)


_IDX = re.compile(r"(train|t10k|test)-(images|labels)[-.]idx\d-ubyte(\.gz)?")


def read_idx_folder(path: Path) -> Arrays:
    """A folder of MNIST-format files: {train,t10k}-{images,labels}-idx?-ubyte[.gz]."""
    found: dict[tuple[str, str], Path] = {}
    for f in sorted(path.iterdir()):
        m = _IDX.fullmatch(f.name)
        if m and f.is_file():
            found[("train" if m[1] == "train" else "test", m[2])] = f
    if ("train", "images") not in found or ("train", "labels") not in found:
        raise DataError(
            f"{path}: a data folder needs MNIST-format files train-images-idx3-ubyte[.gz] and "
            "train-labels-idx1-ubyte[.gz] (and t10k-* for a test part)"
        )
    arrays, hashes, content = {}, {}, {}
    for key, f in found.items():
        raw = _idx_bytes(f)
        content[f.name] = hashlib.sha256(raw).hexdigest()
        arrays[key] = fashion.parse_idx(raw, source=str(f))
        hashes[f.name] = file_sha256(f)
    known = None
    if set(content) == set(fashion.CONTENT_SHA256):
        if content != fashion.CONTENT_SHA256:
            bad = [n for n in content if content[n] != fashion.CONTENT_SHA256[n]]
            raise DataError(
                f"{path}: {', '.join(bad)} differ from Fashion-MNIST's published files "
                "(SHA-256 of the content); the files are altered or truncated"
            )
        known = "fashion-mnist"
    has_test = ("test", "images") in arrays and ("test", "labels") in arrays
    for part in ("train", "test") if has_test else ("train",):
        xs, ys = arrays[(part, "images")], arrays[(part, "labels")]
        if ys.ndim != 1:
            raise DataError(
                f"{path}: {part} labels have shape {ys.shape}; an IDX labels file holds one "
                "dimension (one label per image)"
            )
        if len(xs) != len(ys):
            raise DataError(f"{path}: {len(xs)} {part} images but {len(ys)} labels")
    return Arrays(
        path=path,
        x_train=arrays[("train", "images")],
        y_train=arrays[("train", "labels")],
        x_test=arrays[("test", "images")] if has_test else None,
        y_test=arrays[("test", "labels")] if has_test else None,
        sha256=hashes,
        known=known,
    )


def _idx_bytes(f: Path) -> bytes:
    import io
    import zlib

    if not f.name.endswith(".gz"):
        if f.stat().st_size > MAX_IDX_BYTES:
            raise DataError(f"{f}: larger than {MAX_IDX_BYTES >> 30} GiB")
        return f.read_bytes()
    buf = io.BytesIO()
    try:
        with gzip.open(f, "rb") as g:
            fashion._copy_bounded(g, buf, MAX_IDX_BYTES, what=f"{f} (decompressed)")
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{f}: not a readable gzip file ({e})") from None
    return buf.getvalue()
