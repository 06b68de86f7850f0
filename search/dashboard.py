"""optuna-dashboard on the study storage, with the artifact store of kept models attached.

We serve optuna-dashboard's WSGI app ourselves (the threaded wsgiref server its own CLI uses)
instead of calling `run_server`, so that binding the port happens before anything is printed
and a port in use becomes one clear line, and so that requests are not logged one per line.

Every request must name this server in its Host header (check_host_header): a web page on
another site can point its own host name at 127.0.0.1 (DNS rebinding) and then drive a
loopback dashboard, reading studies and, unless --read-only, changing or deleting them; the
browser still sends that page's host name, which is refused here.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Iterable
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


# Host names (beyond this machine's loopback names and any IP address) the dashboard answers
# to, comma-separated: the names it is reached by through a proxy or a DNS entry.
ENV_ALLOWED_HOSTS = "FSEARCH_DASHBOARD_ALLOWED_HOSTS"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def host_name(header: str) -> str:
    """The name in a Host header, without its port or IPv6 brackets, lower case:
    "[::1]:8080" -> "::1", "LocalHost.:80" -> "localhost"."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    if header.count(":") == 1:
        header = header.rsplit(":", 1)[0]
    return header.rstrip(".")


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def allowed_host_names(bound: str, extra: Iterable[str] | None = None) -> frozenset[str]:
    """localhost, 127.0.0.1, ::1, the address the server is bound to, and `extra` (default:
    the names in $FSEARCH_DASHBOARD_ALLOWED_HOSTS)."""
    if extra is None:
        extra = os.environ.get(ENV_ALLOWED_HOSTS, "").split(",")
    names = {*LOOPBACK_NAMES, host_name(bound), *(host_name(e) for e in extra)}
    return frozenset(n for n in names if n)


def check_host_header(app: Callable, allowed: frozenset[str]) -> Callable:
    """The WSGI app, answering only requests whose Host header is one of `allowed` or an IP
    address (any port); anything else gets 403. DNS rebinding needs a host name of the
    attacker's: a page whose address is an IP literal is this server itself."""

    def guarded(environ, start_response):
        name = host_name(environ.get("HTTP_HOST", ""))
        if name in allowed or _is_ip(name):
            return app(environ, start_response)
        body = (
            f"fsearch dashboard: refused a request for host {name[:100] or '(none)'!r}, not this "
            f"server's address (open it by IP address or localhost, or add the name to "
            f"{ENV_ALLOWED_HOSTS})\n"
        ).encode()
        start_response(
            "403 Forbidden",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return guarded


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
    storage,
    artifact_store,
    *,
    host: str,
    port: int,
    read_only_mode: bool = False,
    allowed_hosts: Iterable[str] | None = None,
) -> WSGIServer:
    """A server bound to host:port serving optuna-dashboard; ConfigError if it cannot bind.
    It answers requests for the Host names of allowed_host_names(host, allowed_hosts) and IP
    addresses only (403 otherwise)."""
    from optuna_dashboard import wsgi

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {port}")
    app = wsgi(storage, artifact_store=artifact_store)
    if read_only_mode:
        app = read_only(app)
    app = check_host_header(app, allowed_host_names(host, allowed_hosts))
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
