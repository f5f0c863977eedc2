"""`rnnkit stream`: a checkpoint served line by line from stdin, state kept across lines.

Numeric models (an `RNN`/`LSTM`/`GRU` layer or a `SequenceRegressor`) read one step per line as
comma-separated numbers and write their output for that step as comma-separated numbers. A
language model reads a line of text, feeds its tokens and a newline, and writes one JSON object:
the mean loss of the line in nats per token, the likeliest next token with its probability, and
how many of the line's tokens the model never saw (read as the unknown token).

Memory is bounded whatever the input: stdin is read at most `PIECE` characters at a time, a
language model is fed at most `chunk_tokens` tokens at once (the loss summed as it goes), and a
numeric line longer than any valid one is dropped as it is read and reported as an error.

SIGTERM and SIGINT (`StopSignal`) stop the server after the line being answered; while it waits
for input they stop it at once. Each output line is flushed as soon as it is written.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from ..data.text import Vocabulary
from ..errors import InputError
from ..io.checkpoint import load_checkpoint
from ..losses import log_softmax
from ..models.language import LanguageModel
from ..signals import Stopped, StopSignal
from ..stream import Stream

PIECE = 65536  # characters read from the input at once
LOGIT_CELLS = 1 << 22  # tokens fed at once x vocabulary size: 32 MB of float64 log-probabilities
MAX_TOKENS = 4096  # tokens fed at once, at most
CHARS_PER_NUMBER = 64  # a numeric line longer than this per feature cannot be valid
_TRAILING_WORD = re.compile(r"\w+\Z")  # at word level, the only token a cut can split


class LineError(InputError):
    """One input line could not be read."""


@dataclass
class StreamReport:
    lines: int = 0
    errors: int = 0
    signal: int | None = None  # the signal that stopped the server, if one did


class LineServer:
    """Turns input lines into output lines for one model and its carried state.

    A line is given whole to `handle`, or in pieces: `begin`, `add` for each piece (the text
    without its newline), `end` for the answer. Pieces keep memory bounded on long lines.
    """

    def __init__(
        self, checkpoint: str | Path, quantize: str | None = None, paced: bool = False
    ) -> None:
        ckpt = load_checkpoint(checkpoint)
        model = ckpt.model
        self.vocab: Vocabulary | None = None
        if isinstance(model, LanguageModel):
            source = f"stream: {str(checkpoint)!r}"
            self.vocab = Vocabulary.from_metadata(ckpt.metadata, model.vocab_size, source)
        if quantize:
            from ..quantize import quantize as to_quantized

            model = to_quantized(model, quantize)
        self.stream = Stream(model, paced)  # paced: lines that come live (`Stream`)
        self.width = None if self.vocab else int(getattr(model, "input_size", 0))
        self.last_logp: np.ndarray | None = None  # the next-token log-probabilities so far
        if self.vocab is not None:
            self._index = self.vocab.index
            self._longest = max(len(t) for t in self.vocab.tokens)
            self.chunk_tokens = max(1, min(MAX_TOKENS, LOGIT_CELLS // len(self.vocab)))
        self.begin()

    # -- a whole line ----------------------------------------------------------------------
    def handle(self, line: str) -> str:
        self.begin()
        self.add(line.rstrip("\n"))
        return self.end()

    # -- a line in pieces ------------------------------------------------------------------
    def begin(self) -> None:
        """Start a new line."""
        self._chars: list[str] = []  # numeric: the text so far
        self._length = 0
        self._carry = ""  # text: the start of a word a piece boundary cut
        self._pending = np.zeros(0, np.int64)  # text: ids not fed yet
        self._tokens = self._unknown = self._count = 0
        self._nll = 0.0

    def add(self, piece: str) -> None:
        """A piece of the current line, without its newline."""
        if self.vocab is None:
            self._add_numbers(piece)
        else:
            self._add_text(piece, last=False)

    def end(self) -> str:
        """The answer to the current line; `LineError` when it is malformed."""
        return self._numbers() if self.vocab is None else self._text()

    # -- numeric models --------------------------------------------------------------------
    def _add_numbers(self, piece: str) -> None:
        assert self.width is not None
        self._length += len(piece)
        if self._length <= CHARS_PER_NUMBER * self.width:
            self._chars.append(piece)
        else:  # drop it as it comes: no valid line is this long
            self._chars = []

    def _numbers(self) -> str:
        assert self.width is not None
        if self._length > CHARS_PER_NUMBER * self.width:
            raise LineError(
                f"expected {self.width} comma-separated numbers, got a line of "
                f"{self._length} characters"
            )
        line = "".join(self._chars)
        fields = line.strip().split(",")
        try:
            x = np.array([float(f) for f in fields], dtype=np.float32)
        except ValueError:
            raise LineError(
                f"expected {self.width} comma-separated numbers, got {_clip(line.strip())!r}"
            ) from None
        if x.shape[0] != self.width:
            raise LineError(f"expected {self.width} comma-separated numbers, got {x.shape[0]}")
        if not np.all(np.isfinite(x)):
            raise LineError(f"expected finite numbers, got {_clip(line.strip())!r}")
        y = self.stream.step(x)
        return ",".join(f"{v:.6g}" for v in np.ravel(y))

    # -- language models -------------------------------------------------------------------
    def _add_text(self, piece: str, last: bool) -> None:
        assert self.vocab is not None
        text = self._carry + piece
        self._carry = ""
        if self.vocab.level == "word" and not last:  # a word may go on in the next piece
            cut = _TRAILING_WORD.search(text)
            if cut is not None:
                # a word longer than every token is unknown however it goes on: keep a bounded start
                self._carry = text[cut.start() :][: self._longest + 1]
                text = text[: cut.start()]
        ids = self._encode(text)
        self._unknown += int(np.count_nonzero(ids == 0))
        self._queue(ids, last=False)

    def _encode(self, text: str) -> np.ndarray:
        assert self.vocab is not None
        index = self._index
        return np.fromiter((index.get(t, 0) for t in self.vocab.split(text)), dtype=np.int64)

    def _queue(self, ids: np.ndarray, last: bool) -> None:
        """Feed the queued ids in chunks of `chunk_tokens`; on the last piece, all of them."""
        self._tokens += ids.size
        pending = np.concatenate([self._pending, ids])
        size = self.chunk_tokens
        while pending.size >= size or (last and pending.size):
            self._score(pending[:size])
            pending = pending[size:]
        self._pending = pending

    def _score(self, ids: np.ndarray) -> None:
        """Feed ``ids``; add the loss of each token given what came before it."""
        if self.last_logp is not None:  # the previous step predicted this chunk's first token
            self._nll -= float(self.last_logp[ids[0]])
            self._count += 1
        logp = log_softmax(self.stream.feed(ids).astype(np.float64))  # (T, V) after each token
        self._nll -= float(logp[np.arange(ids.size - 1), ids[1:]].sum())
        self._count += ids.size - 1
        self.last_logp = logp[-1].copy()

    def _text(self) -> str:
        assert self.vocab is not None
        self._add_text("", last=True)
        self._queue(self._encode("\n"), last=True)
        assert self.last_logp is not None
        logp = self.last_logp
        nxt = int(np.argmax(logp[1:]) + 1)  # never the unknown token
        return json.dumps(
            {
                "tokens": self._tokens,
                "nll": round(self._nll / self._count, 6) if self._count else None,
                "next": self.vocab.tokens[nxt],
                "p_next": round(math.exp(float(logp[nxt])), 6),
                "unknown": self._unknown,
            }
        )


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# -- the loop ----------------------------------------------------------------------------------
def serve(
    server: LineServer,
    lines: IO[str],
    out: IO[str],
    err: IO[str],
    on_error: str = "stop",
    stop: StopSignal | None = None,
) -> StreamReport:
    """Answer each line at once; malformed lines are reported on ``err`` with their number.
    ``lines`` is read with ``readline(PIECE)``; ``stop`` ends the loop between lines."""
    stop = stop or StopSignal()
    report = StreamReport()
    try:
        with stop.armed():  # a second signal during a line: at once
            _answer_lines(server, lines, out, err, on_error, stop, report)
    except Stopped:
        pass
    report.signal = stop.signum
    return report


def _answer_lines(
    server: LineServer,
    lines: IO[str],
    out: IO[str],
    err: IO[str],
    on_error: str,
    stop: StopSignal,
    report: StreamReport,
) -> None:
    number = 0
    while not stop.requested and _read_line(server, lines, stop):
        number += 1
        try:
            answer = server.end()
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


def _read_line(server: LineServer, lines: IO[str], stop: StopSignal) -> bool:
    """Give the next line to ``server`` piece by piece; False at the end of the input."""
    server.begin()
    started = False
    while True:
        with stop.waiting():
            piece = lines.readline(PIECE)
        if not piece:  # the end: a last line without a newline ends here
            return started
        started = True
        if piece.endswith("\n"):
            server.add(piece[:-1])
            return True
        server.add(piece)
