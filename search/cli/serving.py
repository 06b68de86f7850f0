"""`proxy`: the study database served to many workers over gRPC."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from search.cli.common import DebugOpt, StorageOpt, app, out, user_errors


@app.command()
def proxy(
    storage: StorageOpt = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 for workers on other machines.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 13000,
    debug: DebugOpt = False,
) -> None:
    """Serve the study database to many workers over gRPC (Optuna's storage proxy): workers
    then take `--storage grpc://HOST:PORT`. No login or TLS: keep it on a private network."""
    with user_errors(debug):
        from search import proxy as px
        from search import storage as st
        from search.workers import interrupts_caught

        # Ctrl-C, `kill` or `docker stop`: in-flight calls finish, then it stops.
        with contextlib.suppress(KeyboardInterrupt), interrupts_caught() as stop:
            px.serve(
                storage,
                host=host,
                port=port,
                stop_requested=stop.is_set,
                on_start=lambda where: out.print(
                    f"storage proxy for {st.mask(st.resolve_url(storage))} on {where} "
                    "(Ctrl-C to stop)",
                    markup=False,
                ),
            )
        out.print("storage proxy stopped", markup=False)
