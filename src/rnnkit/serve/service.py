"""`StreamService`: the streams of one model, opened, stepped, read, reset, closed and saved;
what the web routes call, with no web framework in it.

Every stream lives in one `StreamPool` while it is in memory, stepped by the `MicroBatcher`. With
a store (`DirectoryStore`, `RedisStore`), a stream not stepped for ``idle_seconds`` is saved
there and leaves memory, every stream is saved at shutdown, and a stream that is not in memory
is resumed from the store when a request names it: after a restart, or on another server
process sharing a Redis store.

Inputs are checked here, before they reach the pool, so that a bad request fails alone and
never takes a batch of other streams' steps down with it. Each check failure is a `ServeError`
with the HTTP status it answers with and a one-line message.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CheckpointError, RnnkitError
from ..stream import Stream, StreamPool
from .batcher import MicroBatcher
from .config import ServeConfig
from .store import STREAM_ID, Store


class ServeError(RnnkitError):
    """A request the server refuses: ``status`` is its HTTP status, the message one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Counts:
    """What the service has done since it started (read by the metrics)."""

    steps: int = 0
    rounds: int = 0
    opened: int = 0
    closed: int = 0
    saved: int = 0
    resumed: int = 0
    evicted: int = 0


class StreamService:
    """The streams of ``model`` (anything `Stream` takes) for a server."""

    def __init__(
        self,
        model: Any,
        store: Store | None = None,
        config: ServeConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or ServeConfig()
        self.model, self.store, self.clock = model, store, clock
        self.pool = StreamPool(model, self.config.paced)
        self._codec = Stream(model)  # states to and from bytes
        self.takes_ids = self._codec.takes_ids
        self.dtype = np.dtype(_parts(model.initial_state(1))[0].dtype)
        if self.takes_ids:
            self.vocab_size = int(model.vocab_size)
            self.step_shape: tuple[int, ...] = ()
        else:
            if not hasattr(model, "input_size"):
                raise CheckpointError(f"serve: {type(model).__name__} has no input_size to serve")
            self.step_shape = (int(model.input_size),)
        self.last_used: dict[str, float] = {}  # the streams in memory, by id
        self.counts = Counts()
        self.on_round: Callable[[int], None] | None = None  # metrics' hook
        self.batcher = MicroBatcher(
            self.pool, self.config.max_batch, self.config.batch, on_round=self._round_done
        )

    def warm_up(self) -> None:
        """Step a scratch pool once alone and once batched, so that the first requests do not
        wait for the step kernels to compile or load."""
        pool = StreamPool(self.model, self.config.paced)
        x = np.zeros(self.step_shape, self.dtype) if not self.takes_ids else np.int64(0)
        pool.join(0)
        pool.join(1)
        pool.step_one(0, x)
        pool.step({0: x, 1: x})

    def _round_done(self, streams: int) -> None:
        self.counts.steps += streams
        self.counts.rounds += 1
        if self.on_round is not None:
            self.on_round(streams)

    def describe(self) -> dict[str, Any]:
        """The model and its inputs, for `/health` and clients."""
        out: dict[str, Any] = {"model": type(self.model).__name__}
        if self.takes_ids:
            out["input"] = {"kind": "token id", "vocab_size": self.vocab_size}
        else:
            out["input"] = {"kind": "vector", "size": self.step_shape[0]}
        out["streams"] = len(self.last_used)
        out["store"] = self.store.describe() if self.store is not None else None
        return out

    # -- inputs ----------------------------------------------------------------------------
    def read_inputs(self, body: Any) -> tuple[np.ndarray, bool]:
        """``(T, ...)`` inputs from a request's JSON, and whether it asked for several steps
        (``{"xs": [...]}``) rather than one (``{"x": ...}``)."""
        if not isinstance(body, dict) or ("x" in body) == ("xs" in body):
            raise ServeError(
                422, "expected a JSON object with 'x' (one step) or 'xs' (a list of steps)"
            )
        many = "xs" in body
        raw = body["xs"] if many else [body["x"]]
        if not isinstance(raw, list) or not raw:
            raise ServeError(422, "expected 'xs' to be a non-empty list of steps")
        return self._array(raw, "xs" if many else "x", body["xs" if many else "x"]), many

    def read_binary(self, data: bytes) -> np.ndarray:
        """``(T, ...)`` inputs from a binary WebSocket message: T steps of little-endian
        float32 numbers (``input_size`` of them each) or, for a language model, of int32
        token ids, one each."""
        width = 4 * (self.step_shape[0] if self.step_shape else 1)
        if not data or len(data) % width:
            what = "int32 token ids" if self.takes_ids else f"{self._what()} (float32)"
            raise ServeError(
                422,
                f"expected a binary message of whole steps of {what}, {width} bytes each, "
                f"got {len(data)} bytes",
            )
        if self.takes_ids:
            ids = np.frombuffer(data, "<i4").astype(np.int64)
            if ids.min() < 0 or ids.max() >= self.vocab_size:
                raise ServeError(
                    422, f"expected token ids in [0, {self.vocab_size}), got {_clip(ids.tolist())}"
                )
            return ids
        xs = np.frombuffer(data, "<f4").reshape(-1, *self.step_shape).astype(self.dtype)
        if not np.isfinite(xs).all():
            raise ServeError(422, "expected finite numbers in the message, got NaN or infinity")
        return xs

    def _array(self, raw: list, name: str, given: Any) -> np.ndarray:
        if self.takes_ids:
            if not all(type(v) is int for v in raw):
                raise ServeError(422, f"expected '{name}' to hold integer token ids")
            ids = np.array(raw, dtype=np.int64) if _fits_int64(raw) else None
            if ids is None or ids.min() < 0 or ids.max() >= self.vocab_size:
                raise ServeError(
                    422, f"expected token ids in [0, {self.vocab_size}), got {_clip(given)}"
                )
            return ids
        try:
            xs = np.array(raw, dtype=np.float64)
        except (TypeError, ValueError):
            raise ServeError(
                422, f"expected '{name}' to hold {self._what()}, got {_clip(given)}"
            ) from None
        if xs.shape[1:] != self.step_shape:
            got = xs.shape if name == "xs" else xs.shape[1:]
            raise ServeError(422, f"expected '{name}' to hold {self._what()}, got shape {got}")
        with np.errstate(over="ignore"):
            xs = xs.astype(self.dtype)
        if not np.isfinite(xs).all():
            raise ServeError(422, f"expected finite numbers in '{name}', got NaN or infinity")
        return xs

    def _what(self) -> str:
        return f"vectors of {self.step_shape[0]} numbers"

    # -- the streams -----------------------------------------------------------------------
    def open(self, stream_id: str | None = None) -> str:
        """A new stream from zeros; its id (``stream_id``, or a fresh one)."""
        if stream_id is None:
            stream_id = uuid.uuid4().hex
        else:
            check_id(stream_id)
            if stream_id in self.last_used or (
                self.store is not None and self.store.get(stream_id) is not None
            ):
                raise ServeError(409, f"stream {stream_id!r} exists already")
        self._make_room()
        if self.store is not None and not self.store.acquire(stream_id):
            raise ServeError(409, f"stream {stream_id!r} is held by another server process")
        self.pool.join(stream_id)
        self.last_used[stream_id] = self.clock()
        self.counts.opened += 1
        return stream_id

    def hold(self, stream_id: str) -> None:
        """Make sure the stream is in memory: there already, or resumed from the store."""
        if stream_id in self.last_used:
            self.last_used[stream_id] = self.clock()
            return
        check_id(stream_id)
        if self.store is None:
            raise ServeError(404, f"no stream {stream_id!r}")
        if not self.store.acquire(stream_id):
            raise ServeError(
                409, f"stream {stream_id!r} is held by another server process; retry later"
            )
        data = self.store.get(stream_id)
        if data is None:
            self.store.release([stream_id])
            raise ServeError(404, f"no stream {stream_id!r}")
        try:
            self._codec.load_state_bytes(data, source=f"saved stream {stream_id!r}")
        except RnnkitError as exc:
            self.store.release([stream_id])
            raise ServeError(409, str(exc)) from None
        self._make_room()
        self.pool.join(stream_id, self._codec.state)
        self.last_used[stream_id] = self.clock()
        self.counts.resumed += 1

    async def step(self, stream_id: str, xs: np.ndarray) -> list[np.ndarray]:
        """The outputs of the T steps ``xs`` of the stream, in order."""
        self.hold(stream_id)
        try:
            return await self.batcher.submit(stream_id, xs)
        except RnnkitError as exc:  # closed while its steps waited, say
            raise ServeError(409, f"stream {stream_id!r}: {exc}") from None

    def state(self, stream_id: str) -> list[np.ndarray]:
        """The stream's state: one array per part (LSTM: h, c), ``(layers, hidden)`` each."""
        self.hold(stream_id)
        return [p[:, 0] for p in _parts(self.pool.state(stream_id))]

    def reset(self, stream_id: str) -> None:
        """Back to zeros."""
        self.hold(stream_id)
        self._idle_only(stream_id, "reset")
        self.pool.leave(stream_id)
        self.pool.join(stream_id)

    def close(self, stream_id: str) -> None:
        """Forget the stream, in memory and in the store."""
        if stream_id not in self.last_used:
            self.hold(stream_id)  # 404 when there is no such stream anywhere
        self._idle_only(stream_id, "close")
        self.pool.leave(stream_id)
        del self.last_used[stream_id]
        if self.store is not None:
            self.store.delete(stream_id)
            self.store.release([stream_id])
        self.counts.closed += 1

    def _idle_only(self, stream_id: str, what: str) -> None:
        if self.batcher.busy(stream_id):
            raise ServeError(409, f"cannot {what} stream {stream_id!r} while it has steps queued")

    def _make_room(self) -> None:
        if len(self.last_used) < self.config.max_streams:
            return
        if self.store is not None:  # the least recently used go to the store
            oldest = sorted(self.last_used, key=self.last_used.__getitem__)
            self._save_and_drop([s for s in oldest if not self.batcher.busy(s)][:1])
        if len(self.last_used) >= self.config.max_streams:
            raise ServeError(
                503, f"the server holds {len(self.last_used)} streams, its most (--max-streams)"
            )

    # -- saving ----------------------------------------------------------------------------
    def save(self, stream_ids: list[str]) -> None:
        """Write these streams' states to the store (they stay in memory)."""
        assert self.store is not None
        for s in stream_ids:
            self._codec.state = self.pool.state(s)
            self.store.put(s, self._codec.state_bytes())
            self.counts.saved += 1

    def _save_and_drop(self, stream_ids: list[str]) -> None:
        self.save(stream_ids)
        for s in stream_ids:
            self.pool.leave(s)
            del self.last_used[s]
        assert self.store is not None
        self.store.release(stream_ids)
        self.counts.evicted += len(stream_ids)

    def sweep(self) -> int:
        """Save the streams idle for ``idle_seconds`` and let them leave memory; renew the
        leases of the others. How many left."""
        if self.store is None:
            return 0
        limit = self.clock() - self.config.idle_seconds
        idle = [s for s, t in self.last_used.items() if t <= limit and not self.batcher.busy(s)]
        self._save_and_drop(idle)
        self.store.renew(list(self.last_used))
        return len(idle)

    def save_all(self) -> int:
        """At shutdown: every stream's state to the store, their leases released. How many."""
        if self.store is None:
            return 0
        held = list(self.last_used)
        self.save(held)
        self.store.release(held)
        return len(held)


def check_id(stream_id: str) -> None:
    if not STREAM_ID.fullmatch(stream_id):
        raise ServeError(
            422,
            f"expected a stream id of 1-128 letters, digits, '_', '-' or '.' (not first), "
            f"got {_clip(stream_id)}",
        )


def _parts(state: Any) -> tuple[np.ndarray, ...]:
    return state if isinstance(state, tuple) else (state,)


def _fits_int64(values: list[int]) -> bool:
    return all(-(1 << 63) <= v < (1 << 63) for v in values)


def _clip(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
