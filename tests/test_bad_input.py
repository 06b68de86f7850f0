"""Bad data files get one line, exit 2 and nothing written (search/data/: readers.py, task.py,
tables.py, fashion.py...; issue #21, "Bad input"). Each file here is built byte by byte or
from a few rows."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from search import datasets
from search.config import DataSettings
from search.data import init_toml, readers
from search.errors import DataError
from tests.helpers import DEFAULT_DB, invoke

BIG_INT = 2**53 + 1  # the first integer float64 cannot hold


def _csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def _rows(n: int, make) -> list[str]:
    return [make(i) for i in range(n)]


def assert_one_line_exit_2(r, message: str) -> None:
    """`fsearch ...` stopped as a user error: exit 2, one `error:` line holding message, no
    traceback, no study database."""
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], r.output
    assert "Traceback" not in r.output
    assert not DEFAULT_DB.exists()


def _study_toml(path: Path, data_lines: str) -> Path:
    path.write_text(
        '[study]\nname = "bad"\nseed = 1\npruner = "none"\n\n'
        f'[data]\n{data_lines}\n\n[space]\nlayers = 1\nwidth = 8\nactivation = "relu"\n'
        'optimizer = "adam"\nlearning_rate = 0.01\nmomentum = 0.0\nregularizer = "none"\n'
        "reg_strength = 0.0\ndropout = 0.0\nbatch_size = 8\nepochs = 1\n"
    )
    return path


# ---------------------------------------------------------------------------- tables


def test_a_dropped_integer_column_above_2_53_is_never_converted(workdir):
    _csv(workdir / "ids.csv", "id,x,y", _rows(40, lambda i: f"{BIG_INT + i},{i * 0.5},{i % 2}"))
    s = datasets.load_split(
        DataSettings(source="ids.csv", target="y", drop=("id",), validation_fraction=0.25)
    )
    assert [f.name for f in s.preprocessing.features] == ["x"]


def test_a_kept_integer_column_above_2_53_exits_2_with_one_line_and_data_runs_drop_it(workdir):
    _csv(workdir / "ids.csv", "id,x,y", _rows(40, lambda i: f"{BIG_INT + i},{i * 0.5},{i % 2}"))
    made = invoke("init", "--data", "ids.csv", "--target", "y")
    assert made.exit_code == 0 and 'drop = ["id"]' in made.output, made.output
    # A config that keeps the column (init's, its drop line taken out) stops with one line.
    toml = made.output[made.output.index("# A study of") :]  # the notes come first
    kept = [ln for ln in toml.splitlines() if not ln.startswith("drop = ")]
    (workdir / "ids.toml").write_text("\n".join(kept))
    r = invoke("run", "--config", "ids.toml", "--trials", 1, "--no-export")
    assert_one_line_exit_2(r, "column 'id' holds numbers a float cannot hold exactly")
    # Without a config, the study made for the file leaves it out and says so.
    r = invoke("run", "--data", "ids.csv", "--target", "y", "--trials", 1, "--no-export")
    assert r.exit_code == 0, r.output
    assert "column 'id' left out (drop = [...] in [data]): numbers a float cannot" in r.output


def test_a_column_named_twice_exits_2_naming_it(workdir):
    _csv(workdir / "dup.csv", "a,a,y", _rows(40, lambda i: f"{i},{-i},{i % 2}"))
    r = invoke("run", "--data", "dup.csv", "--target", "y", "--trials", 1, "--no-export")
    assert_one_line_exit_2(r, "column 'a' appears 2 times in the header")


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_a_damaged_csv_gz_exits_2_with_one_line(workdir, damage):
    raw = gzip.compress(b"x,y\n" + b"".join(b"%d,%d\n" % (i, i % 2) for i in range(2000)))
    if damage == "corrupt":  # a flipped byte in the first deflate block: zlib.error
        raw = raw[:12] + bytes([raw[12] ^ 0xFF]) + raw[13:]
    else:  # cut inside the first 4 KiB: EOFError
        raw = raw[:40]
    (workdir / "t.csv.gz").write_bytes(raw)
    r = invoke("run", "--data", "t.csv.gz", "--target", "y", "--trials", 1, "--no-export")
    assert_one_line_exit_2(r, "t.csv.gz")


def test_an_infinite_regression_target_exits_2_naming_the_rows(workdir):
    rows = _rows(40, lambda i: f"{i * 0.37},{'inf' if i % 4 == 0 else i * 1.5 + 0.25}")
    _csv(workdir / "r.csv", "x,y", rows)
    r = invoke("run", "--data", "r.csv", "--target", "y", "--trials", 1, "--no-export")
    assert_one_line_exit_2(r, "target 'y' is infinite in")


def test_infinity_in_a_categorical_number_column_exits_2_with_one_line(workdir):
    rows = _rows(40, lambda i: f"{'inf' if i == 7 else i % 3},{i * 0.5},{i % 2}")
    _csv(workdir / "c.csv", "c,x,y", rows)
    cfg = _study_toml(
        workdir / "c.toml",
        'source = "c.csv"\ntarget = "y"\ncategorical = ["c"]\nvalidation_fraction = 0.25',
    )
    r = invoke("run", "--config", cfg, "--trials", 1, "--no-export")
    assert_one_line_exit_2(r, "column 'c' has 1 infinite values")


def test_a_text_target_with_30000_labels_exits_2_saying_the_cap(workdir):
    _csv(workdir / "ids.csv", "x,y", _rows(30_000, lambda i: f"{i % 7},user{i}"))
    r = invoke("run", "--data", "ids.csv", "--target", "y", "--trials", 1, "--no-export")
    assert_one_line_exit_2(r, f"at most {datasets.MAX_CLASSES:,} classes")


def test_columns_named_like_the_models_own_layers_export_and_predict(workdir):
    import keras

    # The preprocessing layers' names, the network's (an ensemble's) and its inner layers'.
    names = ("features", "target_units", "scale_a", "a", "onehot_c", "c", "ensemble_of_3")
    names += ("x", "dense_1", "classes", "target", "refit")

    rng = np.random.default_rng(0)
    n = 60
    cols = {
        name: (rng.choice(["u", "v", "w"], n) if name in ("c", "target") else rng.normal(size=n))
        for name in names
    }
    cols["y"] = rng.normal(size=n) * 10 + 50
    header = ",".join(cols)
    _csv(workdir / "t.csv", header, [",".join(str(cols[k][i]) for k in cols) for i in range(n)])
    st = DataSettings(source="t.csv", target="y", validation_fraction=0.25)
    split = datasets.load_split(st)
    inp = keras.Input(shape=(split.input_dim,), name="x")
    hidden = keras.layers.Dense(4, name="dense_1")(inp)
    # The network named as the exporter names an ensemble: a column of the same name exists.
    core = keras.Model(inp, keras.layers.Dense(1, name="target")(hidden), name="ensemble_of_3")
    model = datasets.inference_model(core, split)
    model.save(workdir / "m.keras")
    loaded = keras.saving.load_model(workdir / "m.keras")
    x_test, y_test = datasets.load_test(st)
    assert sorted(x_test) == sorted(names)
    assert {i.name for i in loaded.inputs} == set(names)
    pred = np.asarray(loaded.predict(x_test, verbose=0)).reshape(-1)
    want = np.asarray(model.predict(x_test, verbose=0)).reshape(-1)
    assert pred.shape == y_test.shape and np.allclose(pred, want)
    assert core.name == "ensemble_of_3"  # the caller's network keeps its name


def test_a_column_named_with_the_reserved_prefix_exits_2_with_one_line(workdir):
    _csv(workdir / "p.csv", "fsearch_features,y", _rows(40, lambda i: f"{i * 0.5},{i % 2}"))
    r = invoke("run", "--data", "p.csv", "--target", "y", "--trials", 1, "--no-export")
    assert_one_line_exit_2(r, "names beginning with 'fsearch_' are kept")


def test_init_writes_valid_toml_for_a_path_and_target_with_emoji_and_quotes(workdir):
    import tomllib

    name, target = 'd"a\\ta 😀.csv', 'lab"el 😀'
    rows = _rows(40, lambda i: f"{i * 0.5},{'yes' if i % 2 else 'no'}")
    _csv(workdir / name, f'x,"{target.replace(chr(34), chr(34) * 2)}"', rows)
    r = invoke("init", "--data", name, "--target", target)
    assert r.exit_code == 0, r.output
    text = r.stdout[r.stdout.index("# A study of") :]
    cfg = tomllib.loads(text)
    assert cfg["data"]["source"] == name and cfg["data"]["target"] == target


@pytest.mark.parametrize("text", ["plain", 'q"uote', "back\\slash", "tab\tnew\nline\x7f", "😀é"])
def test_toml_strings_round_trip_through_tomllib(text):
    import tomllib

    assert tomllib.loads(f"v = {init_toml._toml_str(text)}")["v"] == text


# ---------------------------------------------------------------------------- NPZ


def _npz(path: Path, members: dict[str, bytes], *, compress: bool = False) -> Path:
    how = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", how) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _npy_header_only(shape: tuple[int, ...], body: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    return buf.getvalue() + body  # the writer puts the magic string first


Y = _npy(np.arange(4) % 2)


@pytest.mark.parametrize(
    ("x_member", "message"),
    [
        (b"this is not an array", "'x_train' has no NPY header"),
        (_npy_header_only((10**6, 10**6), b"\0" * 32), "header promises 8,000,000,000,000 bytes"),
    ],
    ids=["no-npy-header", "header-claims-10^12-values"],
)
def test_npz_members_that_are_not_plain_arrays_exit_2_with_one_line(workdir, x_member, message):
    _npz(workdir / "a.npz", {"x_train.npy": x_member, "y_train.npy": Y})
    r = invoke("run", "--data", "a.npz", "--trials", 1, "--no-export")
    assert_one_line_exit_2(r, message)


def test_npz_member_in_an_unknown_compression_method_exits_2_with_one_line(workdir):
    with zipfile.ZipFile(workdir / "m.npz", "w") as z:
        z.writestr("x_train.npy", _npy(np.zeros((4, 2))))
        z.writestr("y_train.npy", Y)
        z.filelist[0].compress_type = 99  # what the central directory says; zipfile has no 99
    r = invoke("run", "--data", "m.npz", "--trials", 1, "--no-export")
    assert_one_line_exit_2(r, "compression method is not supported")


def test_npz_that_decompresses_past_the_bound_is_refused(workdir, monkeypatch):
    monkeypatch.setattr(readers, "MAX_NPZ_BYTES", 2**20)
    x = np.zeros((512, 512))  # 2 MiB of zeros: a few KiB compressed
    _npz(workdir / "bomb.npz", {"x_train.npy": _npy(x), "y_train.npy": Y}, compress=True)
    assert (workdir / "bomb.npz").stat().st_size < 2**16
    with pytest.raises(DataError, match="decompress to 2 MiB, over the 1 MiB"):
        readers.read_npz(workdir / "bomb.npz")


# ---------------------------------------------------------------------------- IDX


def test_idx_header_whose_dimensions_overflow_int64_exits_2_with_one_line(workdir):
    d = workdir / "idx"
    d.mkdir()
    # 65,536^4 = 2^64: np.prod wraps to 0 in int64, which an empty body would match.
    (d / "train-images-idx3-ubyte").write_bytes(
        bytes([0, 0, 8, 4]) + (65536).to_bytes(4, "big") * 4
    )
    labels = bytes([0, 0, 8, 1]) + (4).to_bytes(4, "big") + bytes([0, 1, 0, 1])
    (d / "train-labels-idx1-ubyte").write_bytes(labels)
    r = invoke("run", "--data", d, "--trials", 1, "--no-export")
    assert_one_line_exit_2(r, "header promises 18,446,744,073,709,551,616")
