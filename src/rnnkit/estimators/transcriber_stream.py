"""`LiveTranscriber`: a unidirectional `Transcriber` fed audio as it arrives.

Samples go through `StreamingFeatures` (the same numbers as the whole file), are normalised
as the model does (its running statistics carried, or its fixed ones) and stacked ``stack``
frames to a step; each step goes through
the recurrent layer held in a `Stream` (its state carried) and the output layer; the greedy CTC
decoder emits a character when the likeliest class is neither the blank nor the class of the
step before. Over a whole recording the emitted characters are exactly the offline greedy
transcript (tests/test_speech.py). Each `push` records its compute time in ``timings``.

With test-time warps (``Transcriber(warps=K)``), each of the K warps has its own features
(``StreamingFeatures(front, warp=a)``), statistics, pending frames and recurrent state; a
step's class probabilities are the mean of the K views', as the whole-file path averages them.

An ensemble (``Transcriber(members=N)``) steps each member's recurrent layer (a state per
member and view) and combines the members' per-step posteriors as the whole-file path does
(`rnnkit.ctc_combine.combine_log_probs`), so it too emits the offline greedy transcript. Word
voting (``combine="vote"`` or ``"weighted"``) needs whole transcripts: a stream then averages
probabilities.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..audio.features import FrontEnd, StreamingFeatures
from ..audio.tta import warp_grid
from ..ctc_combine import VOTES, combine_log_probs
from ..errors import InputError
from ..losses import log_softmax
from ..stream import Stream
from .transcriber import Transcriber


class LiveTranscriber:
    """``push(samples)`` -> ``[(character, seconds into the stream), ...]`` emitted now;
    ``flush()`` at the end of the stream; then it starts over. ``paced`` (the default): the
    audio comes at the speed of speech, so each step stays on one core (`Stream`); False for
    audio pushed as fast as it can be read."""

    def __init__(self, model: Transcriber, front: FrontEnd, paced: bool = True) -> None:
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
        factors = warp_grid(getattr(model, "warps", 1), model.warp_spread, "LiveTranscriber")
        self.features = [StreamingFeatures(front, warp=a) for a in factors]
        nets = model.networks
        # per member, a stream of its recurrent layer per view; its Linear output layer
        # paced (live audio, 10 ms apart): each step on one core, as a sleeping second core
        # costs more to wake than it saves (`Stream`); False for audio pushed back to back
        self.member_streams = [[Stream(net[0], paced) for _ in factors] for net in nets]
        self.heads: list[Any] = [net[1] for net in nets]
        self.combine = "prob" if getattr(model, "combine", "prob") in VOTES else model.combine
        self.timings: list[float] = []  # seconds of compute per push
        self.reset()

    def reset(self) -> None:
        for features in self.features:
            features.reset()
        for streams in self.member_streams:
            for stream in streams:
                stream.reset()
        self._pending: list[list[np.ndarray]] = [[] for _ in self.features]  # frames, per view
        self._stats = [self.model.running_stats() for _ in self.features]  # norm="running" only
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
        out = self._frames([features.push(samples) for features in self.features])
        self.timings.append(time.perf_counter() - start)
        return out

    def flush(self) -> list[tuple[str, float]]:
        out = self._frames([features.flush() for features in self.features])
        if self._pending[0]:  # a last partial step, zero-padded as the whole-file path does
            k, F = self.model.stack, self.model.n_inputs_
            steps = []
            for pending in self._pending:
                step = np.zeros(k * F, dtype=np.float32)
                step[: len(pending) * F] = np.concatenate(pending)
                steps.append(step)
            out += self._step(steps)
        self.reset()
        return out

    def _frames(self, frames: list[np.ndarray]) -> list[tuple[str, float]]:
        """The frames now out of each view's features (as many of each), stepped through."""
        out: list[tuple[str, float]] = []
        views = [
            self.model.normalise(f, stats) for f, stats in zip(frames, self._stats, strict=True)
        ]
        for t in range(len(views[0])):
            for pending, normalised in zip(self._pending, views, strict=True):
                pending.append(normalised[t])
            if len(self._pending[0]) == self.model.stack:
                steps = [np.concatenate(pending) for pending in self._pending]
                self._pending = [[] for _ in self.features]
                out += self._step(steps)
        return out

    def _step(self, steps: list[np.ndarray]) -> list[tuple[str, float]]:
        """One recurrent step of each view of each member; the class of the mean of the views'
        probabilities, the members' combined as `Transcriber.log_probs` combines them."""
        members = []
        for streams, head in zip(self.member_streams, self.heads, strict=True):
            logits = []
            for stream, x in zip(streams, steps, strict=True):
                h = stream.step(x)  # (H,)
                logits.append(np.asarray(head(np.asarray(h)[None, None, :]))[0, 0])
            # as `Transcriber.log_probs`: log-softmax in float64, the views' probabilities'
            # mean (with one view and one member, the argmax of the logits is the same)
            lp = log_softmax(np.asarray(logits, dtype=np.float64))  # (views, C)
            members.append(lp[:1] if len(lp) == 1 else np.log(np.exp(lp).mean(axis=0))[None])
        best = int(np.argmax(combine_log_probs(members, self.combine)[0]))
        self._steps += 1
        emitted = best != 0 and best != self._previous
        self._previous = best
        if not emitted:
            return []
        return [(self.model.alphabet_[best - 1], self._steps * self.step_seconds)]
