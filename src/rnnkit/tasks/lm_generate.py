"""Generation from a language model checkpoint: `load_lm` (the model and its vocabulary),
`generate` (text piece by piece from a prime, the state carried by a `Stream`) and the
sampling of each next token (temperature, top-k).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..data.text import Vocabulary
from ..errors import CheckpointError, InputError, RnnkitWarning
from ..io.checkpoint import load_checkpoint
from ..losses import log_softmax
from ..models.language import LanguageModel
from ..stream import Stream


def load_lm(path: str | Path) -> tuple[LanguageModel, Vocabulary]:
    """A language model checkpoint: the model and its vocabulary."""
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt.model, LanguageModel):
        raise CheckpointError(
            f"generate: {str(path)!r} holds a {type(ckpt.model).__name__}, "
            "expected a language model trained by 'rnnkit train lm'"
        )
    source = f"generate: {str(path)!r}"
    return ckpt.model, Vocabulary.from_metadata(ckpt.metadata, ckpt.model.vocab_size, source)


def generate(
    model: LanguageModel,
    vocab: Vocabulary,
    prime: str = "",
    length: int = 500,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
) -> Iterator[str]:
    """Text piece by piece: the prime is read once, then each new token is one step from
    the carried state. ``temperature=0`` is greedy; ``top_k`` keeps the k likeliest.

    The arguments are checked, and symbols of the prime the model never saw are reported as
    an `RnnkitWarning`, when it is called, before the first piece is asked for."""
    if temperature < 0 or not math.isfinite(temperature):
        raise InputError(f"generate: temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise InputError(f"generate: top_k must be a positive integer, got {top_k}")
    if length < 0:
        raise InputError(f"generate: length must be >= 0, got {length}")
    _warn_unseen(vocab, prime)
    ids = vocab.encode(prime) if prime else np.zeros(0, dtype=np.int64)
    if len(ids) == 0:  # start from a newline when it is known, else from the unknown token
        ids = vocab.encode("\n") if "\n" in vocab.index else np.zeros(1, dtype=np.int64)
    return _pieces(model, vocab, ids, length, temperature, top_k, np.random.default_rng(seed))


def _pieces(
    model: LanguageModel,
    vocab: Vocabulary,
    ids: np.ndarray,
    length: int,
    temperature: float,
    top_k: int | None,
    rng: np.random.Generator,
) -> Iterator[str]:
    stream = Stream(model)
    last = stream.feed(ids)[-1]  # the whole prime in one pass: (T, V), then its last step
    previous = int(ids[-1])
    for _ in range(length):
        token = _sample(last, temperature, top_k, rng)
        yield vocab.decode_next(previous, token)
        previous = token
        last = stream.step(token)  # one step from the carried state: (V,)


def _warn_unseen(vocab: Vocabulary, prime: str, show: int = 5) -> None:
    """Warn when the prime holds symbols the model never saw: they are read as unknown."""
    index = vocab.index
    unseen = list(dict.fromkeys(t for t in vocab.split(prime) if t not in index or t == vocab.unk))
    if not unseen:
        return
    listed = ", ".join(repr(t) for t in unseen[:show])
    more = f" and {len(unseen) - show} more" if len(unseen) > show else ""
    noun = "symbol" if len(unseen) == 1 else "symbols"
    warnings.warn(
        f"generate: the prime has {len(unseen)} {noun} the model never saw ({listed}{more}); "
        f"they are read as the unknown token {vocab.unk!r}",
        RnnkitWarning,
        stacklevel=3,  # the caller of generate
    )


def _sample(
    logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator
) -> int:
    logits = logits.astype(np.float64)
    logits[0] = -np.inf  # never emit the unknown token (id 0): it stands for unseen symbols
    if top_k is not None and top_k < len(logits) - 1:
        cutoff = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits < cutoff, -np.inf, logits)
    if temperature == 0:
        return int(np.argmax(logits))
    p = np.exp(log_softmax(logits / temperature))
    return int(rng.choice(len(p), p=p / p.sum()))
