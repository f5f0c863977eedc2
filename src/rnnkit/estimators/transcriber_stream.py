"""`LiveTranscriber`: a unidirectional `Transcriber` fed audio as it arrives.

Samples go through `StreamingFeatures` (the same numbers as the whole file), are normalised
as the model does (its running statistics carried, or its fixed ones) and stacked ``stack``
frames to a step; each step goes through
the recurrent layer held in a `Stream` (its state carried) and the output layer; the greedy CTC
decoder emits a character when the likeliest class is neither the blank nor the class of the
step before. Over a whole recording the emitted characters are exactly the offline greedy
transcript (tests/test_speech.py). Each `push` records its compute time in ``timings``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..audio.features import FrontEnd, StreamingFeatures
from ..errors import InputError
from ..stream import Stream
from .transcriber import Transcriber


class LiveTranscriber:
    """``push(samples)`` -> ``[(character, seconds into the stream), ...]`` emitted now;
    ``flush()`` at the end of the stream; then it starts over."""

    def __init__(self, model: Transcriber, front: FrontEnd) -> None:
        model._check_fitted("stream")
        if model.bidirectional:
            raise InputError(
                "LiveTranscriber: the model is bidirectional and needs the whole recording; "
                "train with --no-bidirectional to stream"
            )
        if model.norm == "utterance":
            raise InputError(
                "LiveTranscriber: the model normalises by the whole utterance's statistics and "
                "needs the whole recording; train with norm='running' to stream"
            )
        self.model, self.front = model, front
        self.features = StreamingFeatures(front)
        self.stream = Stream(model.model_[0])
        self.head: Any = model.model_[1]  # the Linear output layer
        self.timings: list[float] = []  # seconds of compute per push
        self.reset()

    def reset(self) -> None:
        self.features.reset()
        self.stream.reset()
        self._pending: list[np.ndarray] = []
        self._stats = self.model.running_stats()  # used by norm="running" only
        self._previous = 0  # the class of the step before (0: blank)
        self._steps = 0

    def warm_up(self) -> None:
        """Run a few steps of low noise and start over: compiling the step kernels is then
        done before the first real frame, and out of ``timings``."""
        rng = np.random.default_rng(0)
        noise = 1e-3 * rng.standard_normal(int(self.front.rate * 0.2))
        self.push(noise)
        self.flush()
        self.timings.clear()

    @property
    def step_seconds(self) -> float:
        return self.model.stack * self.front.hop

    def push(self, samples: np.ndarray) -> list[tuple[str, float]]:
        start = time.perf_counter()
        out = self._frames(self.features.push(samples))
        self.timings.append(time.perf_counter() - start)
        return out

    def flush(self) -> list[tuple[str, float]]:
        out = self._frames(self.features.flush())
        if self._pending:  # a last partial step, zero-padded as the whole-file path does
            k, F = self.model.stack, self.model.n_inputs_
            step = np.zeros(k * F, dtype=np.float32)
            step[: len(self._pending) * F] = np.concatenate(self._pending)
            out += self._step(step)
        self.reset()
        return out

    def _frames(self, frames: np.ndarray) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        for frame in self.model.normalise(frames, self._stats):
            self._pending.append(frame)
            if len(self._pending) == self.model.stack:
                x = np.concatenate(self._pending)
                self._pending = []
                out += self._step(x)
        return out

    def _step(self, x: np.ndarray) -> list[tuple[str, float]]:
        h = self.stream.step(x)  # (H,)
        logits = np.asarray(self.head(np.asarray(h)[None, None, :]))[0, 0]
        best = int(np.argmax(logits))
        self._steps += 1
        emitted = best != 0 and best != self._previous
        self._previous = best
        if not emitted:
            return []
        return [(self.model.alphabet_[best - 1], self._steps * self.step_seconds)]
