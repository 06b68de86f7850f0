"""fsearch dashboard: served from a subprocess, loaded in real headless Chromium; bad input.

The Chromium test needs the Debian packages chromium and chromium-driver (scripts/setup.sh
installs them). Its screenshot is kept in test-artifacts/dashboard.png. In CI (env CI set) a
missing Chromium fails the test; elsewhere it is skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from tests.helpers import FSEARCH, ROOT, create_study, invoke
from tests.tiny_study import N_TRIALS

ARTIFACTS = ROOT / "test-artifacts"
# Headless, and nothing that reaches beyond the loopback server under test.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,900",
    # Let the single-page app fetch the study before the DOM is dumped.
    "--virtual-time-budget=15000",
)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    msg = "Chromium not found: apt-get install chromium chromium-driver (scripts/setup.sh does)"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def listening_url(proc: subprocess.Popen, timeout: float = 60) -> str:
    """The URL `fsearch dashboard --port 0` printed (the OS chose the port: no race with a port
    probed free and released first), checked to accept connections: the printed address is
    the one the server listens on."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline and not line:
        if proc.poll() is not None:
            raise AssertionError(f"dashboard exited with {proc.returncode}: {proc.stderr.read()}")
        if sel.select(timeout=0.5):
            line = proc.stdout.readline()
    match = re.search(r"on (http://127\.0\.0\.1:(\d+)/dashboard/)", line)
    assert match, f"no URL printed within {timeout} s: {line!r}"
    with socket.create_connection(("127.0.0.1", int(match.group(2))), timeout=5):
        pass
    return match.group(1)


def page_text(html: str) -> str:
    html = re.sub(r"<(script|style|svg)\b.*?</\1>", " ", html, flags=re.S | re.I)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_dashboard_shows_the_study_in_chromium(tiny_study, tmp_path):
    chromium()  # skip (or fail in CI) before starting anything
    proc = subprocess.Popen(
        [FSEARCH, "dashboard", "--storage", tiny_study.storage, "--artifacts", tiny_study.artifacts,
         "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        printed = listening_url(proc)
        base = printed.removesuffix("/dashboard/")
        with urllib.request.urlopen(f"{base}/api/studies", timeout=30) as resp:
            studies = json.load(resp)["study_summaries"]
        (study_id,) = [s["study_id"] for s in studies if s["study_name"] == tiny_study.name]
        # The trial list, open at the best trial: the one whose model was kept.
        best = optuna.load_study(
            study_name=tiny_study.name, storage=tiny_study.storage
        ).best_trial.number
        url = f"{base}/dashboard/studies/{study_id}/trials?numbers={best}"

        text = ""
        for attempt in range(3):  # a slow machine may need longer than the virtual budget
            dom = run_chromium(["--dump-dom", url], tmp_path / f"profile-{attempt}")
            assert dom.returncode == 0, dom.stderr[-2000:]
            text = page_text(dom.stdout)
            if f"{N_TRIALS} Trials" in text:
                break
        assert tiny_study.name in text, text[:2000]
        assert f"{N_TRIALS} Trials" in text, text[:2000]
        assert f"Trial {best} (trial_id" in text
        assert "model.keras" in text  # the kept model, from the attached artifact store

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        shot.unlink(missing_ok=True)
        r = run_chromium([f"--screenshot={shot}", url], tmp_path / "profile-shot")
        assert r.returncode == 0, r.stderr[-2000:]
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    finally:
        proc.send_signal(signal.SIGTERM)  # handled like Ctrl-C: a clean stop
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0 and "dashboard stopped" in out


def test_port_in_use_is_one_line(tiny_config):
    create_study(tiny_config)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = invoke("dashboard", "--port", port)
    assert r.exit_code == 2
    assert f"port {port} on 127.0.0.1 is already in use; pass --port N" in r.output
    assert r.output.strip().count("\n") == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite//oops", "is malformed"),
        ("sqlite:///nowhere/fsearch.db", "no study database"),
        ("postgresql+psycopg://u:hunter2@127.0.0.1:9/db", "cannot reach storage"),
    ],
)
def test_bad_storage_is_one_line(workdir, url, message):
    r = invoke("dashboard", "--storage", url, "--port", 0)
    assert r.exit_code == 2 and message in r.output
    assert "hunter2" not in r.output and r.output.strip().count("\n") == 0
    assert not (workdir / "nowhere").exists()


def test_a_host_beyond_loopback_is_refused_without_allow_remote(tiny_config):
    create_study(tiny_config)
    with socket.socket() as busy:  # were it not refused, it would fail to bind, not serve
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        r = invoke("dashboard", "--host", "0.0.0.0", "--port", busy.getsockname()[1])
    assert r.exit_code == 2 and "the dashboard has no login); add --allow-remote" in r.output
    assert r.output.strip().count("\n") == 0


def test_bad_host_and_port(tiny_config):
    create_study(tiny_config)
    r = invoke("dashboard", "--host", "no-such-host.invalid", "--allow-remote")
    assert r.exit_code == 2 and "is not a known address" in r.output
    r = invoke("dashboard", "--port", "70000")
    assert r.exit_code == 2 and "--port must be between 0 and 65535" in r.output


def test_read_only_dashboard_serves_reads_and_refuses_every_change(tiny_study):
    """The WSGI app behind --read-only, served for real on loopback: GET reaches
    optuna-dashboard's API; POST, PUT, PATCH and DELETE are refused with 405 and change
    nothing."""
    import threading
    import urllib.error

    from search import dashboard as dash
    from search import storage as st
    from search.artifacts import open_artifact_store

    storage = st.open_storage(tiny_study.storage, must_exist=True)
    server = dash.make_dashboard_server(
        storage, open_artifact_store(tiny_study.artifacts, create=False),
        host="127.0.0.1", port=0, read_only_mode=True,
    )  # fmt: skip
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/api/studies", timeout=30) as resp:
            (study,) = json.load(resp)["study_summaries"]
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            request = urllib.request.Request(
                f"{base}/api/studies/{study['study_id']}", data=b"{}", method=method
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == 405, method
        with urllib.request.urlopen(f"{base}/api/studies", timeout=30) as resp:
            assert [s["study_name"] for s in json.load(resp)["study_summaries"]] == ["tiny-grid"]
    finally:
        server.shutdown()
        server.server_close()


def _status_for_host(port: int, host: str | None) -> tuple[int, str]:
    """GET /api/studies on 127.0.0.1:port with this Host header (None: no Host header)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if host is None:
            conn.putrequest("GET", "/api/studies", skip_host=True)
            conn.endheaders()
        else:
            conn.request("GET", "/api/studies", headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def test_requests_naming_another_host_get_403_and_this_servers_names_200(tiny_study, monkeypatch):
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 reaches the
    loopback dashboard, but its requests carry Host: evil.example, and are refused."""
    import threading

    from search import dashboard as dash
    from search import storage as st
    from search.artifacts import open_artifact_store

    monkeypatch.setenv(dash.ENV_ALLOWED_HOSTS, "dash.example.org, Other.Example")
    storage = st.open_storage(tiny_study.storage, must_exist=True)
    server = dash.make_dashboard_server(
        storage, open_artifact_store(tiny_study.artifacts, create=False),
        host="127.0.0.1", port=0,
    )  # fmt: skip
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        for host in ("evil.example", f"evil.example:{port}", "localhost.evil.example",
                     f"127.0.0.1.evil.example:{port}", "example.org", None):  # fmt: skip
            status, body = _status_for_host(port, host)
            assert status == 403, (host, status)
            assert "refused a request for host" in body and len(body) < 300
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}",
                     "10.1.2.3:8080", "dash.example.org:8080", "other.example"):  # fmt: skip
            status, body = _status_for_host(port, host)
            assert status == 200, (host, status, body[:200])
            assert "tiny-grid" in body
    finally:
        server.shutdown()
        server.server_close()
