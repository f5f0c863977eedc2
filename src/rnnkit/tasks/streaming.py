"""`rnnkit stream`: a checkpoint served line by line from stdin, state kept across lines.

Numeric models (an `RNN`/`LSTM`/`GRU` layer or a `SequenceRegressor`) read one step per line as
comma-separated numbers and write their output for that step as comma-separated numbers. A
language model reads a line of text, feeds its tokens and a newline, and writes one JSON object:
the mean loss of the line in nats per token, and the likeliest next token with its probability.
Each output line is flushed at once; memory is the model and its state, however long it runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from ..data.text import Vocabulary
from ..errors import InputError
from ..io.checkpoint import load_checkpoint
from ..losses import log_softmax
from ..models.language import LanguageModel
from ..stream import Stream


class LineError(InputError):
    """One input line could not be read."""


@dataclass
class StreamReport:
    lines: int = 0
    errors: int = 0


class LineServer:
    """Turns input lines into output lines for one model and its carried state."""

    def __init__(self, checkpoint: str | Path, quantize: str | None = None) -> None:
        ckpt = load_checkpoint(checkpoint)
        model = ckpt.model
        if quantize:
            from ..quantize import quantize as to_quantized

            model = to_quantized(model, quantize)
        self.stream = Stream(model)
        self.vocab = None
        if isinstance(ckpt.model, LanguageModel):
            self.vocab = Vocabulary(
                tuple(ckpt.metadata["vocab"]), ckpt.metadata.get("level", "char")
            )
        self.width = None if self.vocab else int(getattr(model, "input_size", 0))
        self.last_logp: np.ndarray | None = None

    def handle(self, line: str) -> str:
        return self._text(line) if self.vocab is not None else self._numbers(line)

    def _numbers(self, line: str) -> str:
        fields = line.strip().split(",")
        try:
            x = np.array([float(f) for f in fields], dtype=np.float32)
        except ValueError:
            raise LineError(
                f"expected {self.width} comma-separated numbers, got {line.strip()!r}"
            ) from None
        if x.shape[0] != self.width:
            raise LineError(f"expected {self.width} comma-separated numbers, got {x.shape[0]}")
        if not np.all(np.isfinite(x)):
            raise LineError(f"expected finite numbers, got {line.strip()!r}")
        y = self.stream.step(x)
        return ",".join(f"{v:.6g}" for v in np.ravel(y))

    def _text(self, line: str) -> str:
        assert self.vocab is not None
        ids = self.vocab.encode(line.rstrip("\n") + "\n")
        logp = log_softmax(self.stream.feed(ids).astype(np.float64))  # (T, V) after each token
        nll = [-float(logp[t, ids[t + 1]]) for t in range(len(ids) - 1)]
        if self.last_logp is not None:  # the previous line's end predicted this line's start
            nll.insert(0, -float(self.last_logp[ids[0]]))
        self.last_logp = logp[-1]
        nxt = int(np.argmax(logp[-1, 1:]) + 1)  # never the unknown token
        return json.dumps(
            {
                "tokens": int(ids.size),
                "nll": round(float(np.mean(nll)), 6) if nll else None,
                "next": self.vocab.tokens[nxt],
                "p_next": round(math.exp(float(logp[-1, nxt])), 6),
            }
        )


def serve(
    server: LineServer, lines: Iterable[str], out: IO[str], err: IO[str], on_error: str = "stop"
) -> StreamReport:
    """Answer each line at once; malformed lines are reported on ``err`` with their number."""
    report = StreamReport()
    for number, line in enumerate(lines, start=1):
        try:
            answer = server.handle(line)
        except LineError as exc:
            report.errors += 1
            if on_error == "stop":  # the caller reports it, as its one line
                raise LineError(f"line {number}: {exc}") from None
            err.write(f"rnnkit stream: line {number}: {exc}\n")
            err.flush()
            continue
        out.write(answer + "\n")
        out.flush()
        report.lines += 1
    return report
