"""`MicroBatcher`: opportunistic batching. A step request never waits for company: when
nothing is in flight it is stepped at once; only the requests that come in while a step is in
flight are gathered into one `StreamPool.step`.

Steps run on the event loop's thread, one at a time: a step is microseconds to a few
milliseconds of NumPy, and running it there keeps the pool's states free of any interleaving.
So "in flight" means: from a step until the event loop has run what was ready when it ran. A
request that finds the batcher idle is stepped on the spot (`StreamPool.step_one`, the fused
single-stream step, which gives the numbers of `Stream.step` exactly), and the batcher marks
itself busy with ``loop.call_soon``. The requests that reach it before that mark comes round
(read from the sockets in the same pass of the event loop: they arrived while the step ran)
put their inputs in their stream's queue and get a future; the mark then runs them as one
round: the next input of every stream with work queued, stepped together in one
`StreamPool.step` (one stream alone: `step_one`), each request resolved once its last input
is done. A request of several inputs takes one round per input, so its stream's steps stay in
order while other streams are batched beside it. Streams still waiting after a round (more
inputs, or more streams than ``max_batch``) make the next round; when a round finds no queue,
the batcher is idle again. Under light load every request is stepped at once; under heavy
load the rounds grow with the backlog.
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
    """Steps streams of one `StreamPool`: at once when idle, else in batched rounds
    (``batched=False``: each request stepped at once on its own, never batched).

    ``on_round(streams)`` is called after every step with the number of streams it stepped (1
    for a step at once).
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
        """Step ``xs`` ``(T, ...)`` of the stream, at once if nothing is in flight, else in the
        next round; the future gives its T outputs in order."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.batched:
            self._at_once(stream_id, xs, future)
            return future
        if not self._scheduled:  # idle: no company to wait for
            self._at_once(stream_id, xs, future)
            self._scheduled = True  # busy until the loop has run what is ready now
            loop.call_soon(self._round)
            return future
        job = _Job(xs, future)
        queue = self._queues.get(stream_id)
        if queue is None:
            self._queues[stream_id] = deque((job,))
        else:
            queue.append(job)
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
        if not self._queues:
            return  # nothing came in while the last step was in flight: idle again
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
        # busy again until the loop has run what is ready now (the next round may be empty)
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
