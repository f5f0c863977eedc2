"""`Stream` and `StreamPool`: a model's state held between inputs, one step at a time.

A streamable model has ``initial_state(batch)`` and ``stream_forward(x, state) -> (y, state)``
on time-major input: features ``(T, B, F)`` or token ids ``(T, B)``. `Stream` only holds the
carry (Keras ``stateful``); stepping is calling the model on one step with it. Memory is the
state, whatever the length of the stream.

    >>> import numpy as np, rnnkit
    >>> gru = rnnkit.GRU(3, 8, seed=0)
    >>> s = rnnkit.Stream(gru)
    >>> y1 = s.step(np.ones(3)); y2 = s.step(np.zeros(3))   # (8,) each, state carried
    >>> s.reset()
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..errors import CheckpointError, InputError, ShapeError
from ..files import digest, write_bytes_atomic
from .steps import build_plan

STATE_FORMAT = "rnnkit-state"
STATE_VERSION = "1"

Module = Any  # a streamable model: initial_state(batch) and stream_forward(x, state)

State = Any  # an array (L*D, B, H) or a tuple of them (LSTM: h, c)

StreamId = TypeVar("StreamId", bound=Hashable)  # what a `StreamPool` names its streams by


def _parts(state: State) -> tuple[np.ndarray, ...]:
    return state if isinstance(state, tuple) else (state,)


def _pack(parts: tuple[np.ndarray, ...], like: State) -> State:
    return parts if isinstance(like, tuple) else parts[0]


def _fingerprint(model: Module) -> str:
    return json.dumps(
        {"class": type(model).__name__, "config": dataclasses.asdict(model.config)}, sort_keys=True
    )


class Stream:
    """One model's state, stepped one input at a time, for one stream or a batch of them.

    One Stream, one thread: it takes no lock (a step is a few microseconds). Streams served
    from several threads share a `StreamPool`, which does lock.

    ``paced=True`` is for inputs that arrive at the pace of the world (live audio, a sensor)
    rather than back to back: every step then stays on one core. A large layer's step is
    otherwise shared between the cores, which is faster back to back, but between paced steps
    the second core's thread falls asleep and waking it can cost milliseconds.
    """

    def __init__(self, model: Module, paced: bool = False) -> None:
        if not hasattr(model, "stream_forward"):
            raise InputError(f"Stream: {type(model).__name__} cannot stream (no stream_forward)")
        if getattr(model, "bidirectional", False):
            raise InputError(
                "Stream: a bidirectional layer needs the whole sequence; it cannot stream"
            )
        self.model = model
        self.takes_ids = bool(getattr(model, "takes_ids", False))
        self._state: State | None = None
        self._single: bool | None = None
        self.paced = paced
        self._plan = build_plan(model, paced)  # the fused step paths, where the model has them

    # -- inputs ----------------------------------------------------------------------------
    def _as_batch(self, x: Any, steps: bool) -> tuple[np.ndarray, bool]:
        """(T, B, ...) from one step or a chunk, for one stream or a batch; and `single`."""
        try:
            arr = np.asarray(x)
        except ValueError:  # a ragged list
            raise ShapeError(
                f"Stream: expected an array of numbers, got a ragged {type(x).__name__}"
            ) from None
        base = 0 if self.takes_ids else 1  # rank of one step of one stream
        rank = arr.ndim - (1 if steps else 0)
        if rank not in (base, base + 1):
            what = "token id" if self.takes_ids else f"vector of {self.model.input_size} features"
            raise ShapeError(
                f"Stream: expected {'a chunk of ' if steps else ''}one {what} or a batch of them, "
                f"got shape {arr.shape}"
            )
        single = rank == base
        if single:
            arr = arr[..., None] if self.takes_ids else arr[..., None, :]
        if not steps:
            arr = arr[None]
        return arr, single

    def _start(self, batch: int, single: bool) -> None:
        if self._state is None:
            self._state = self.model.initial_state(batch)
            self._single = single
        elif _parts(self._state)[0].shape[1] != batch:
            have = _parts(self._state)[0].shape[1]
            raise ShapeError(
                f"Stream: this stream holds {have} streams, got an input for {batch}; "
                "call reset() to start over with another batch size"
            )

    # -- stepping --------------------------------------------------------------------------
    def step(self, x: Any) -> np.ndarray:
        """One step: ``x`` is ``(F,)`` (or a token id) for one stream, ``(B, F)`` for B."""
        plan = self._plan
        if plan is not None:  # the fused paths; None: the general path below decides
            ndim = x.ndim if type(x) is np.ndarray else _ndim(x)
            if ndim == (0 if self.takes_ids else 1):  # one stream
                done = plan.step(x, self._state) if self._single is not False else None
                if done is not None:
                    y, self._state = done
                    self._single = True
                    return y
            elif self._single is not True:  # a batch of streams
                done = plan.step_many(x, self._state)
                if done is not None:
                    y, self._state = done
                    self._single = False
                    return y
        arr, single = self._as_batch(x, steps=False)
        self._start(arr.shape[1], single)
        y, self._state = self.model.stream_forward(arr, self._state)
        return y[0, 0] if single else y[0]

    def feed(self, xs: Any) -> np.ndarray:
        """Several steps at once, ``(T, F)`` or ``(T, B, F)`` (ids: ``(T,)`` or ``(T, B)``);
        the same outputs as stepping through them one by one."""
        arr, single = self._as_batch(xs, steps=True)
        self._start(arr.shape[1], single)
        y, self._state = self.model.stream_forward(arr, self._state)
        return y[:, 0] if single else y

    def reset(self) -> None:
        """Forget the state; the next input starts from zeros."""
        self._state = None
        self._single = None

    # -- the state -------------------------------------------------------------------------
    @property
    def state(self) -> State | None:
        """The carried state, shaped as the model returns it (``None`` before the first step)."""
        return self._state

    @state.setter
    def state(self, value: State | None) -> None:
        if value is None:
            self.reset()
            return
        want = _parts(self.model.initial_state(1))
        got = _parts(value) if isinstance(value, (tuple, np.ndarray)) else ()
        if len(got) != len(want):
            raise ShapeError(f"Stream: expected a state of {len(want)} arrays, got {len(got)}")
        batch = np.asarray(got[0]).shape[1] if np.ndim(got[0]) == 3 else -1
        parts = []
        for w, g in zip(want, got, strict=True):
            g = np.asarray(g, dtype=w.dtype)
            if (
                g.ndim != 3
                or g.shape[0] != w.shape[0]
                or g.shape[2] != w.shape[2]
                or (g.shape[1] != batch)
            ):
                raise ShapeError(
                    f"Stream: expected state arrays of shape ({w.shape[0]}, B, {w.shape[2]}), "
                    f"got {g.shape}"
                )
            if not np.all(np.isfinite(g)):
                raise InputError("Stream: the state contains NaN or infinity")
            parts.append(g.copy())
        self._state = _pack(tuple(parts), self.model.initial_state(1))

    def state_bytes(self) -> bytes:
        """The state as bytes (safetensors), tagged with the model's class and config and
        sealed with a checksum (`rnnkit.files.digest`)."""
        from safetensors.numpy import save

        if self._state is None:
            raise InputError("Stream: no state yet: step the stream first")
        tensors = {f"state{i}": np.ascontiguousarray(p) for i, p in enumerate(_parts(self._state))}
        meta = {
            "format": STATE_FORMAT,
            "format_version": STATE_VERSION,
            "model": _fingerprint(self.model),
        }
        meta["checksum"] = digest(tensors, meta)
        return bytes(save(tensors, metadata=meta))

    def load_state_bytes(self, data: bytes, source: str = "Stream") -> None:
        """Restore a state saved by `state_bytes`; refuses a damaged one, or one saved from
        another model. ``source`` names it in errors (the file it came from)."""
        from safetensors import SafetensorError
        from safetensors.numpy import load

        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InputError(
                f"{source}: expected the bytes of a saved state, got {type(data).__name__}"
            )
        data = bytes(data)
        try:
            tensors = load(data)
            meta = _read_metadata(data)
        except (SafetensorError, ValueError, OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{source}: not a saved stream state ({exc})") from None
        if "format" in meta:  # states saved before checksums have none: read as they are
            if meta.get("format") != STATE_FORMAT or meta.get("format_version") != STATE_VERSION:
                raise CheckpointError(
                    f"{source}: expected a stream state of format {STATE_FORMAT} version "
                    f"{STATE_VERSION}, got {meta.get('format')} {meta.get('format_version')}"
                )
            if meta.get("checksum") != digest(tensors, meta):
                raise CheckpointError(
                    f"{source}: the state is damaged: its data does not match its checksum"
                )
        if meta.get("model") != _fingerprint(self.model):
            raise CheckpointError(
                f"{source}: this state was saved from a different model "
                f"({meta.get('model', 'no model recorded')})"
            )
        names = [f"state{i}" for i in range(len(tensors))]
        if sorted(tensors) != sorted(names):
            raise CheckpointError(f"{source}: expected state arrays {names}, got {sorted(tensors)}")
        try:
            self.state = _pack(tuple(tensors[k] for k in names), self.model.initial_state(1))
        except (ShapeError, InputError) as exc:
            raise CheckpointError(f"{source}: {exc}") from None

    def save_state(self, path: str | os.PathLike) -> None:
        """Write the state to ``path`` atomically (temporary file, then rename)."""
        _check_path(path, "Stream.save_state")
        write_bytes_atomic(path, self.state_bytes(), "Stream.save_state")

    def load_state(self, path: str | os.PathLike) -> None:
        _check_path(path, "Stream.load_state")
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"Stream: no such state file {str(path)!r}")
        self.load_state_bytes(path.read_bytes(), f"Stream: state file {str(path)!r}")


def _ndim(x: Any) -> int:
    try:
        return int(np.ndim(x))
    except ValueError:  # a ragged list
        raise ShapeError(
            f"Stream: expected an array of numbers, got a ragged {type(x).__name__}"
        ) from None


def _check_path(path: Any, who: str) -> None:
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"{who}: expected a file path, got {type(path).__name__}")


def _read_metadata(data: bytes) -> dict[str, str]:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    meta = header.get("__metadata__", {}) if isinstance(header, dict) else {}
    return meta if isinstance(meta, dict) else {}


class StreamPool:
    """Many independent streams served by one model: each `step` call advances every stream
    that has a new input with a single batched step.

        pool = StreamPool(model)
        pool.join("sensor-17"); pool.join("sensor-42")
        outputs = pool.step({"sensor-17": x17, "sensor-42": x42})   # {id: output}
        pool.leave("sensor-17")

    The states live in one array per state part, a column (slot) per stream, so a step gathers
    the active columns, runs the model once on them and scatters the new states back: the
    Python work per step does not grow with the number of streams beyond reading the inputs.
    ``paced=True``: `step_one` (one stream alone) never shares a layer between the cores, as
    `Stream`'s ``paced`` (a server's requests come at the pace of its clients); the batched
    `step` runs on one core either way.

    Thread-safe: `step`, `join`, `leave`, `state` and the queries hold one lock, so calls from
    several threads run one at a time and never lose or mix the states of streams (a step
    that grows the store, or a column reused after `leave`, is never seen half done).
    """

    def __init__(self, model: Module, paced: bool = False) -> None:
        self._stream = Stream(model, paced)  # its input checks, model and `step_one`'s plan
        self.model = model
        self._like = model.initial_state(1)
        self._store = [np.zeros((p.shape[0], 0, p.shape[2]), p.dtype) for p in _parts(self._like)]
        self._slot: dict[Hashable, int] = {}  # stream id -> its column in the store
        self._free: list[int] = []
        self._lock = threading.Lock()

    def _take_slot(self) -> int:
        if not self._free:  # double the store
            have = self._store[0].shape[1]
            more = max(8, have)
            self._store = [
                np.concatenate([p, np.zeros((p.shape[0], more, p.shape[2]), p.dtype)], axis=1)
                for p in self._store
            ]
            self._free = list(range(have + more - 1, have - 1, -1))
        return self._free.pop()

    def join(self, stream_id: Hashable, state: State | None = None) -> None:
        """Add a stream, from zeros or from a state of batch 1."""
        if stream_id in self._slot:
            raise InputError(f"StreamPool: stream {stream_id!r} has already joined")
        if state is None:
            parts = _parts(self.model.initial_state(1))
        else:
            probe = Stream(self.model)
            probe.state = state  # checks shapes and values
            parts = _parts(probe.state)
            if parts[0].shape[1] != 1:
                raise ShapeError(
                    f"StreamPool: a joining stream's state has batch 1, got {parts[0].shape[1]}"
                )
        with self._lock:
            if stream_id in self._slot:  # joined by another thread meanwhile
                raise InputError(f"StreamPool: stream {stream_id!r} has already joined")
            slot = self._take_slot()
            for store, part in zip(self._store, parts, strict=True):
                store[:, slot] = part[:, 0]
            self._slot[stream_id] = slot

    def leave(self, stream_id: Hashable) -> None:
        with self._lock:
            if stream_id not in self._slot:
                raise InputError(f"StreamPool: no stream {stream_id!r}")
            self._free.append(self._slot.pop(stream_id))

    def __contains__(self, stream_id: Hashable) -> bool:
        with self._lock:
            return stream_id in self._slot

    def __len__(self) -> int:
        with self._lock:
            return len(self._slot)

    def state(self, stream_id: Hashable) -> State:
        """One stream's state, batch 1, as a `Stream` holds it (a copy)."""
        with self._lock:
            if stream_id not in self._slot:
                raise InputError(f"StreamPool: no stream {stream_id!r}")
            slot = self._slot[stream_id]
            return _pack(tuple(p[:, slot : slot + 1].copy() for p in self._store), self._like)

    def step(self, inputs: Mapping[StreamId, Any]) -> dict[StreamId, np.ndarray]:
        """Advance the streams named in ``inputs`` by one step, batched; their outputs by id."""
        if not inputs:
            return {}
        ids = list(inputs)
        try:
            x = np.stack([np.asarray(inputs[k]) for k in ids])  # (B, F) or (B,) ids
        except ValueError:
            shapes = sorted({np.shape(inputs[k]) for k in ids})
            raise ShapeError(
                f"StreamPool: every input must have the same shape, got shapes {shapes}"
            ) from None
        with self._lock:  # from reading the slots to writing the new states back
            return self._step_locked(ids, x)

    def step_one(self, stream_id: Hashable, x: Any) -> np.ndarray:
        """Advance one stream by one step; its output: ``step({stream_id: x})[stream_id]``,
        on the single-stream fused step where the model has one (one kernel call per layer,
        instead of the batched step's gather, products and scatter: several times faster at
        small hidden sizes, where a server answers one stream's input at a time)."""
        plan = self._stream._plan
        with self._lock:
            slot = self._slot.get(stream_id)
            if slot is None:
                raise InputError(f"StreamPool: no stream {stream_id!r}; join it first")
            if plan is not None:
                state = _pack(tuple(p[:, slot : slot + 1].copy() for p in self._store), self._like)
                done = plan.step(x, state)
                if done is not None:
                    y, new = done
                    for store, part in zip(self._store, _parts(new), strict=True):
                        store[:, slot] = part[:, 0]
                    return y
            return self._step_locked([stream_id], np.asarray(x)[None])[stream_id]

    def _step_locked(self, ids: list, x: np.ndarray) -> dict:
        try:
            slots = np.fromiter((self._slot[k] for k in ids), np.intp, len(ids))
        except KeyError as exc:
            raise InputError(f"StreamPool: no stream {exc.args[0]!r}; join it first") from None
        state = _pack(tuple(p[:, slots] for p in self._store), self._like)  # gathered copies
        plan = self._stream._plan
        done = plan.step_many(x, state) if plan is not None else None
        if done is not None:
            y, new = done
        else:  # the general path, which also reports bad input
            arr, _ = self._stream._as_batch(x, steps=False)
            ys, new = self.model.stream_forward(arr, state)
            y = ys[0]
        for store, part in zip(self._store, _parts(new), strict=True):
            store[:, slots] = part
        return dict(zip(ids, y, strict=True))
