from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from search.config import DataSettings
from search.data import fashion
from search.errors import DataError


def _idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def test_parse_idx_round_trip():
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(fashion.parse_idx(_idx_bytes(arr)), arr)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00", "bad magic"),
        (b"\x00\x00\x08\x03\x00\x00", "header is truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "header promises 5"),
    ],
)
def test_parse_idx_rejects_bad_files(raw, message):
    with pytest.raises(DataError, match=message):
        fashion.parse_idx(raw, source="f")


def test_stratified_indices_keep_class_shares():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000])
    idx = fashion.stratified_indices(labels, 550, rng)
    assert len(idx) == 550 and len(set(idx)) == 550
    counts = np.bincount(labels[idx], minlength=10)
    np.testing.assert_allclose(counts, np.arange(1, 11) * 10, atol=1)


def test_split_sizes_stratification_and_determinism(real_data_dir):
    s = DataSettings(validation_size=1000, train_size=3000, seed=3)
    a = fashion.load_split(s, real_data_dir)
    assert a.x_train.shape == (3000, 784) and a.x_val.shape == (1000, 784)
    assert a.x_train.dtype == np.float32 and 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    assert np.bincount(a.y_val, minlength=10).tolist() == [100] * 10
    assert np.bincount(a.y_train, minlength=10).tolist() == [300] * 10
    b = fashion.load_split(
        DataSettings(validation_size=1000, train_size=3000, seed=3), real_data_dir
    )
    assert b is a  # loaded once per process


def test_full_split_holds_out_10000_and_never_touches_test(real_data_dir):
    s = fashion.load_split(DataSettings(), real_data_dir)
    assert len(s.y_val) == 10000 and len(s.y_train) == 50000
    assert np.bincount(s.y_val).tolist() == [1000] * 10
    # No validation image is also a training image (indices are disjoint by construction;
    # check content on a sample to catch a broken split).
    train_rows = {row.tobytes() for row in s.x_train[:2000]}
    assert not any(row.tobytes() in train_rows for row in s.x_val[:2000])
    x_test, y_test = fashion.load_test(DataSettings(), real_data_dir)
    assert x_test.shape == (10000, 784) and np.bincount(y_test).tolist() == [1000] * 10


def _copy_data(src, dst):
    dst.mkdir()
    for name in fashion.FILES:
        shutil.copy(src / name, dst / name)
    return dst


def test_truncated_gz_is_named(real_data_dir, tmp_path):
    d = _copy_data(real_data_dir, tmp_path / "d")
    f = d / "train-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-200])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz is not a readable gzip"):
        fashion.read_raw(d)


def test_altered_content_fails_checksum_naming_the_file(real_data_dir, tmp_path):
    d = _copy_data(real_data_dir, tmp_path / "d")
    f = d / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(f.read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # one label changed, a perfectly valid gzip
    f.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: checksum mismatch"):
        fashion.read_raw(d)


def test_explicit_data_dir_must_hold_the_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        fashion.find_data_dir(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="lacks train-images-idx3-ubyte.gz"):
        fashion.find_data_dir(tmp_path / "empty")


def test_download_failure_without_network_says_how_to_fix(tmp_path, monkeypatch):
    # Port 9 on loopback refuses connections: a machine with no route to the mirror.
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        fashion.download_dataset(tmp_path / "cache", mirrors=("http://127.0.0.1:9/",), timeout=2)
    assert not any((tmp_path / "cache").iterdir())  # nothing half-written


def test_download_verifies_and_installs(real_data_dir, tmp_path):
    """The download path, served from a local HTTP server holding the real files."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(real_data_dir))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        dest = fashion.download_dataset(tmp_path / "cache", mirrors=("http://127.0.0.1:9/", base))
    finally:
        server.shutdown()
    assert sorted(p.name for p in dest.iterdir()) == sorted(fashion.FILES)
    assert fashion.read_raw(dest).train_y.shape == (60000,)


def test_missing_everywhere_falls_back_to_download(monkeypatch, tmp_path):
    monkeypatch.setattr(fashion, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("FSEARCH_DATA_DIR", raising=False)
    monkeypatch.setattr(fashion, "MIRRORS", ("http://127.0.0.1:9/",))
    with pytest.raises(DataError, match="not on this machine and the download"):
        fashion.find_data_dir()


def test_mirrors_try_https_first():
    assert fashion.MIRRORS[0].startswith("https://")


def test_a_mirror_sending_too_much_is_cut_off_and_nothing_is_left(tmp_path, monkeypatch):
    import io

    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            b[:] = b"\0" * len(b)
            return len(b)

        def __exit__(self, *exc) -> None:
            pass

    monkeypatch.setattr(fashion, "MAX_DOWNLOAD_BYTES", 3 * 2**20)
    monkeypatch.setattr(fashion.urllib.request, "urlopen", lambda *a, **k: Endless())
    with pytest.raises(DataError, match=r"sent more than 3 MiB"):
        fashion.download_dataset(tmp_path / "cache", mirrors=("https://mirror.invalid/",))
    assert not any((tmp_path / "cache").iterdir())


def test_a_gzip_bomb_is_refused_while_decompressing(tmp_path, monkeypatch):
    import gzip

    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(bomb, "wb") as f:
        for _ in range(8):
            f.write(b"\0" * 2**20)
    monkeypatch.setattr(fashion, "MAX_DECOMPRESSED_BYTES", 4 * 2**20)
    with pytest.raises(DataError, match="decompressed.*more than 4 MiB"):
        fashion._verified_bytes(bomb)


def test_run_trials_best_report_and_reseed_never_parse_the_test_images(
    workdir, real_data_dir, monkeypatch
):
    from tests.helpers import invoke
    from tests.tiny_study import build_tiny_study

    real_parse = fashion.parse_idx

    def parse_train_only(raw, *, source="<bytes>"):
        if "t10k" in source:
            raise AssertionError(f"{source} was parsed before export")
        return real_parse(raw, source=source)

    monkeypatch.setattr(fashion, "parse_idx", parse_train_only)
    fashion._read.cache_clear()  # a file read by an earlier test is parsed again under the patch
    fashion._split.cache_clear()
    study = build_tiny_study(workdir / "s", real_data_dir)  # `fsearch run --no-export`
    where = ["--study", study.name, "--storage", study.storage]
    for args in (["trials"], ["best"], ["report", "--out", workdir / "r"]):
        r = invoke(*args, *where)
        assert r.exit_code == 0, r.output
    r = invoke(
        "report", *where, "--out", workdir / "r2", "--reseed", 1, "--data-dir", real_data_dir
    )
    assert r.exit_code == 0, r.output
