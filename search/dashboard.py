"""optuna-dashboard on the study storage, with the artifact store of kept models attached.

We serve optuna-dashboard's WSGI app ourselves (the threaded wsgiref server its own CLI uses)
instead of calling `run_server`, so that binding the port happens before anything is printed
and a port in use becomes one clear line, and so that requests are not logged one per line.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from search.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"  # loopback: the dashboard can delete studies and has no login
DEFAULT_PORT = 8080


class _ThreadedServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # Ctrl-C does not wait for open browser connections


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass


REMOTE_WARNING = (
    "warning: the dashboard has no login; everyone who can reach this address can read, edit "
    "and delete the studies in this storage and download their kept models "
    "(--read-only refuses every change)"
)
REMOTE_READ_ONLY_WARNING = (
    "warning: the dashboard has no login; everyone who can reach this address can read the "
    "studies in this storage and download their kept models (changes are refused)"
)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: reachable from this machine only."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, *, allow_remote: bool) -> None:
    """A host other than loopback needs allow_remote: optuna-dashboard's API has no login."""
    if not is_loopback(host) and not allow_remote:
        raise ConfigError(
            f"--host {host} would let anyone who reaches it read, edit and delete studies and "
            "kept models (the dashboard has no login); add --allow-remote if that is meant, "
            "or keep the default 127.0.0.1 and use an SSH tunnel"
        )


def read_only(app: Callable) -> Callable:
    """The WSGI app with every request but GET and HEAD refused (405): optuna-dashboard changes
    studies (notes, deletes, uploads) through POST, PUT, PATCH and DELETE; reading stays."""

    def guarded(environ, start_response):
        if environ.get("REQUEST_METHOD", "GET").upper() in ("GET", "HEAD"):
            return app(environ, start_response)
        body = b"read-only dashboard (fsearch dashboard --read-only): changes are refused\n"
        start_response(
            "405 Method Not Allowed",
            [("Content-Type", "text/plain"), ("Allow", "GET, HEAD"),
             ("Content-Length", str(len(body)))],
        )  # fmt: skip
        return [body]

    return guarded


def make_dashboard_server(
    storage, artifact_store, *, host: str, port: int, read_only_mode: bool = False
) -> WSGIServer:
    """A server bound to host:port serving optuna-dashboard; ConfigError if it cannot bind."""
    from optuna_dashboard import wsgi

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {port}")
    app = wsgi(storage, artifact_store=artifact_store)
    if read_only_mode:
        app = read_only(app)
    try:
        return make_server(
            host, port, app, server_class=_ThreadedServer, handler_class=_QuietHandler
        )
    except socket.gaierror:
        raise ConfigError(f"--host {host!r} is not a known address; use e.g. 127.0.0.1") from None
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is already in use; pass --port N for another port "
                "(or stop the program using it)"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def url_of(server: WSGIServer, host: str) -> str:
    port = server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/dashboard/"


def serve(server: WSGIServer, *, on_stop: Callable[[], None] | None = None) -> None:
    """Serve until Ctrl-C (or SIGTERM raised as KeyboardInterrupt)."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        if on_stop is not None:
            on_stop()
    finally:
        server.server_close()
