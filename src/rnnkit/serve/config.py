"""`ServeConfig`: the options of `rnnkit serve`, declared once (the CLI is generated from it)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import nonneg_int, option, positive_float, positive_int

MIB = 1 << 20


@dataclass(frozen=True)
class ServeConfig:
    host: str = option("127.0.0.1", help="address to listen on")
    port: int = option(8000, help="TCP port to listen on, 0 for any free one", type=nonneg_int)
    state_dir: str | None = option(
        None,
        help="folder where idle streams and, at shutdown (SIGTERM, SIGINT), every stream's "
        "state are saved, and from where a restarted server resumes them",
        metavar="DIR",
        default_help="none: states live in memory only",
    )
    redis: str | None = option(
        None,
        help="Redis URL (redis://host:6379/0) to save states in instead of --state-dir, so "
        "that several server processes share streams",
        metavar="URL",
        default_help="none",
    )
    idle_seconds: float = option(
        60.0,
        help="a stream not stepped for this long is saved to the store and leaves memory "
        "(with --state-dir or --redis)",
        type=positive_float,
    )
    max_body: int = option(
        MIB, help="largest request body or WebSocket message, in bytes", type=positive_int
    )
    max_streams: int = option(
        100_000, help="most streams held in memory at once", type=positive_int
    )
    max_batch: int = option(
        4096, help="most streams stepped in one batched step", type=positive_int
    )
    batch: bool = option(
        True,
        help="step the requests that come in while a step is in flight together, in one "
        "batched step; a request that finds the server idle is stepped at once (--no-batch: "
        "each request on its own, never batched)",
    )
    paced: bool = option(
        True,
        help="step a request that finds the server idle on one core: between requests the "
        "second core's thread falls asleep, and waking it can cost more than a large layer's "
        "split step saves (--no-paced: split large layers between the cores, as back to back)",
    )
    front: bool = option(
        True,
        help="serve step requests and WebSocket messages on the lean raw-ASGI path in front of "
        "FastAPI (--no-front: through FastAPI's routing, the benchmark's baseline)",
    )
    quantize: str | None = option(
        None,
        help="store the weights as int8 (per-row scale) or bfloat16",
        choices=("int8", "bfloat16"),
        default_help="as saved",
    )
