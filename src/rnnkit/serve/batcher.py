"""`MicroBatcher`: the steps of streams that arrive together run as one batched step.

A request to step a stream puts its inputs in that stream's queue and gets a future. The first
request of a quiet moment schedules a round with ``loop.call_soon``: the round runs once the
event loop has run what was ready before it (the other requests read in the same pass over the
sockets), takes the next input of every stream with work queued, steps them all in one
`StreamPool.step` (one stream alone: `StreamPool.step_one`, the fused single-stream step), and
resolves each request whose last input it took. A request of several inputs takes one round per
input, so its stream's steps stay in order while other streams are batched beside it. Streams
still waiting after a round (more inputs, or more streams than ``max_batch``) schedule the next.

Rounds run on the event loop's thread, one at a time: a round is microseconds to a few
milliseconds of NumPy, and running it there keeps the pool's states free of any interleaving.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from ..stream import StreamPool


class _Job:
    """The inputs of one request ``(T, ...)``, how many are done, and their outputs."""

    __slots__ = ("xs", "done", "ys", "future")

    def __init__(self, xs: np.ndarray, future: asyncio.Future) -> None:
        self.xs, self.done, self.future = xs, 0, future
        self.ys: list[np.ndarray] = []


class MicroBatcher:
    """Steps streams of one `StreamPool` in batched rounds (``batched=False``: each request
    stepped at once on its own, the baseline a benchmark compares with).

    ``on_round(streams)`` is called after every round with the number of streams it stepped.
    """

    def __init__(
        self,
        pool: StreamPool,
        max_batch: int = 4096,
        batched: bool = True,
        on_round: Callable[[int], None] | None = None,
    ) -> None:
        self.pool, self.max_batch, self.batched = pool, max_batch, batched
        self.on_round = on_round
        self._queues: dict[Hashable, deque[_Job]] = {}
        self._scheduled = False

    def busy(self, stream_id: Hashable) -> bool:
        """Whether the stream has steps queued."""
        return stream_id in self._queues

    def submit(self, stream_id: Hashable, xs: np.ndarray) -> asyncio.Future:
        """Queue ``xs`` ``(T, ...)`` for the stream; the future gives its T outputs in order."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.batched:
            self._at_once(stream_id, xs, future)
            return future
        job = _Job(xs, future)
        queue = self._queues.get(stream_id)
        if queue is None:
            self._queues[stream_id] = deque((job,))
        else:
            queue.append(job)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._round)
        return future

    def _at_once(self, stream_id: Hashable, xs: np.ndarray, future: asyncio.Future) -> None:
        try:
            ys = [self.pool.step_one(stream_id, x) for x in xs]
        except Exception as exc:  # noqa: BLE001 - handed to the request that caused it
            future.set_exception(exc)
            return
        if self.on_round is not None:
            for _ in ys:
                self.on_round(1)
        future.set_result(ys)

    def _round(self) -> None:
        self._scheduled = False
        ids = list(self._queues)[: self.max_batch]
        inputs = {s: (job := self._queues[s][0]).xs[job.done] for s in ids}
        outputs, failed = self._step(inputs)
        for s in ids:
            queue = self._queues.pop(s)
            job = queue[0]
            if s in failed:
                queue.popleft()  # the failing request ends; the stream's later ones go on
                if not job.future.done():
                    job.future.set_exception(failed[s])
            else:
                job.ys.append(outputs[s])
                job.done += 1
                if job.done == len(job.xs):
                    queue.popleft()
                    if not job.future.done():  # (a client that went away cancels its future)
                        job.future.set_result(job.ys)
            if queue:
                self._queues[s] = queue  # to the back: streams beyond max_batch go first next
        if self.on_round is not None:
            self.on_round(len(outputs))
        if self._queues and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._round)

    def _step(self, inputs: dict[Hashable, Any]) -> tuple[dict, dict[Hashable, Exception]]:
        """The outputs by stream; and the exception of each stream that could not step. A
        batch that fails is stepped again one stream at a time, so that one bad stream (closed
        meanwhile, say) fails alone and the others step once, as asked."""
        try:
            if len(inputs) == 1:
                ((s, x),) = inputs.items()
                return {s: self.pool.step_one(s, x)}, {}
            return self.pool.step(inputs), {}
        except Exception:  # noqa: BLE001 - each stream again, alone
            pass
        outputs, failed = {}, {}
        for s, x in inputs.items():
            try:
                outputs[s] = self.pool.step_one(s, x)
            except Exception as exc:  # noqa: BLE001 - handed to the request that caused it
                failed[s] = exc
        return outputs, failed
