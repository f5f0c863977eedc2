"""Decoding CTC outputs into labels: best path (greedy) and prefix beam search."""

from __future__ import annotations

import numpy as np

from .ctc import NEG_INF, _lengths
from .errors import InputError, ShapeError

__all__ = ["ctc_greedy_decode", "ctc_beam_decode"]


def _check_decode(name: str, log_probs: object, input_lengths: object | None) -> tuple:
    lp = np.asarray(log_probs)
    if lp.ndim != 3:
        raise ShapeError(f"{name}: expected log_probs of shape (T, B, C), got {lp.shape}")
    T, B, _ = lp.shape
    il = (
        np.full(B, T)
        if input_lengths is None
        else _lengths(name, "input_lengths", input_lengths, B)
    )
    if np.any((il < 0) | (il > T)):
        raise InputError(f"{name}: expected input_lengths in [0, {T}], got {il.tolist()}")
    return lp, il


def ctc_greedy_decode(
    log_probs: np.ndarray, input_lengths: np.ndarray | None = None, blank: int = 0
) -> list[list[int]]:
    """Best path: the likeliest class at each step, repeats merged, then blanks removed.

    ``log_probs`` (T, B, C), ``input_lengths`` (B,) (default: all T). One label list per sequence.
    """
    lp, il = _check_decode("ctc_greedy_decode", log_probs, input_lengths)
    best = np.argmax(lp, axis=-1)  # (T, B)
    out = []
    for b in range(lp.shape[1]):
        path = best[: il[b], b]
        keep = np.ones(path.shape, dtype=bool)
        keep[1:] = path[1:] != path[:-1]  # merge repeats
        out.append([int(c) for c in path[keep] if c != blank])
    return out


def ctc_beam_decode(
    log_probs: np.ndarray,
    input_lengths: np.ndarray | None = None,
    blank: int = 0,
    beam: int = 8,
) -> list[list[int]]:
    """Prefix beam search (Hannun et al., 2014), without a language model.

    Each prefix keeps two log-probabilities: of the paths ending in a blank (``p_b``) and of
    those ending in its last label (``p_nb``). At step ``t`` with ``y = lp_t``::

        blank:            p_b'(l)    += (p_b(l) + p_nb(l)) * y(_)
        repeat last c:    p_nb'(l)   += p_nb(l) * y(c)             (merged into the same prefix)
        new label c:      p_nb'(l+c) += (p_b(l) if c == last(l) else p_b(l) + p_nb(l)) * y(c)

    then the ``beam`` best prefixes by ``p_b + p_nb`` go on. One label list per sequence.
    """
    name = "ctc_beam_decode"
    lp, il = _check_decode(name, log_probs, input_lengths)
    if beam < 1:
        raise InputError(f"{name}: expected beam >= 1, got {beam}")
    out = []
    for b in range(lp.shape[1]):
        beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
        for t in range(il[b]):
            y = lp[t, b].astype(np.float64)
            nxt: dict[tuple[int, ...], list[float]] = {}
            for prefix, (p_b, p_nb) in beams.items():
                total = np.logaddexp(p_b, p_nb)
                _add(nxt, prefix, 0, total + y[blank])
                last = prefix[-1] if prefix else None
                for c in range(lp.shape[2]):
                    if c == blank:
                        continue
                    if c == last:
                        _add(nxt, prefix, 1, p_nb + y[c])
                        _add(nxt, prefix + (c,), 1, p_b + y[c])
                    else:
                        _add(nxt, prefix + (c,), 1, total + y[c])
            ranked = sorted(nxt.items(), key=lambda kv: -np.logaddexp(kv[1][0], kv[1][1]))
            beams = {prefix: (p[0], p[1]) for prefix, p in ranked[:beam]}
        best = max(beams.items(), key=lambda kv: np.logaddexp(kv[1][0], kv[1][1]))[0]
        out.append(list(best))
    return out


def _add(
    beams: dict[tuple[int, ...], list[float]], prefix: tuple[int, ...], i: int, value: float
) -> None:
    """``beams[prefix][i] = logaddexp(beams[prefix][i], value)`` (0: ends in blank, 1: not)."""
    entry = beams.setdefault(prefix, [NEG_INF, NEG_INF])
    entry[i] = float(np.logaddexp(entry[i], value))
