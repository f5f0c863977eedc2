"""`rnnkit serve MODEL`: the app under uvicorn, until SIGTERM or SIGINT.

The socket is bound before uvicorn starts, so the line that says where the server listens names
the real port (``--port 0``: any free one). uvicorn takes SIGTERM and SIGINT, finishes the
requests in flight, closes the WebSockets and runs the app's shutdown, which saves every stream
to the store; then the command exits with 128 + the signal's number, as shells do.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import signal
import socket
import sys
from pathlib import Path
from typing import IO, Any

from ..errors import InputError
from ..io.checkpoint import load_checkpoint
from .config import ServeConfig
from .service import StreamService
from .store import DirectoryStore, RedisStore, Store


def load_model(checkpoint: str | os.PathLike, quantize: str | None = None) -> Any:
    model = load_checkpoint(checkpoint).model
    if quantize:
        from ..quantize import quantize as to_quantized

        model = to_quantized(model, quantize)
    return model


def make_store(config: ServeConfig) -> Store | None:
    if config.redis and config.state_dir:
        raise InputError("serve: give --state-dir or --redis, not both")
    if config.redis:
        owner = f"{socket.gethostname()}:{os.getpid()}"
        return RedisStore.from_url(
            config.redis, owner, lease_seconds=max(30.0, config.idle_seconds)
        )
    if config.state_dir:
        return DirectoryStore(config.state_dir)
    return None


def bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InputError(f"--host/--port: cannot listen on {host}:{port} ({reason})") from None
    sock.set_inheritable(True)
    return sock


def serve(checkpoint: str | os.PathLike, config: ServeConfig, log: IO[str] = sys.stderr) -> int:
    """Serve until stopped; the signal that stopped the server (0 if none did)."""
    try:
        import uvicorn

        from .app import create_app
    except ImportError as exc:
        raise InputError(
            f"serve: {exc.name} is not installed; pip install 'rnnkit[serve]'"
        ) from None
    model = load_model(checkpoint, config.quantize)
    service = StreamService(model, make_store(config), config)
    service.warm_up()
    app = create_app(service, log)
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    loop, http = _fastest("uvloop", "asyncio"), _fastest("httptools", "h11")
    settings = uvicorn.Config(
        app,
        loop=loop,
        http=http,
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # the app never reads the client's address
        ws_max_size=config.max_body,
        timeout_graceful_shutdown=10,
        backlog=4096,
    )
    settings.load()  # uvicorn's protocols imported now, before the freeze
    # What exists now (modules, compiled kernels, the app: some 150,000 objects) is left out of
    # the garbage collector's full passes, which it would otherwise scan in a stall of about
    # 100 ms every so often while streams are stepped; streams add almost none.
    gc.collect()
    gc.freeze()
    server = uvicorn.Server(settings)
    store = service.store.describe() if service.store is not None else "memory only"
    print(
        f"rnnkit serve: {Path(checkpoint).name} on http://{host}:{port} (states: {store}; "
        f"{loop}, {http})",
        file=log,
        flush=True,
    )
    caught: list[int] = []  # uvicorn raises the signal again once it has shut down
    previous = {s: signal.signal(s, lambda n, f: caught.append(n)) for s in _signals()}
    try:
        server.run(sockets=[sock])
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()
    return caught[0] if caught else 0


def _fastest(compiled: str, fallback: str) -> str:
    """uvloop and httptools (in ``uvicorn[standard]``) when installed, else the pure-Python
    event loop and HTTP parser."""
    return compiled if importlib.util.find_spec(compiled) is not None else fallback


def _signals() -> tuple[int, ...]:
    return (signal.SIGINT, signal.SIGTERM)
