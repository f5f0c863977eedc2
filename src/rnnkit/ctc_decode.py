"""Decoding CTC outputs into labels: best path (greedy) and prefix beam search."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from .ctc import NEG_INF, _lengths
from .errors import InputError, ShapeError

__all__ = ["ctc_greedy_decode", "ctc_beam_decode", "ctc_lexicon_beam_decode"]


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
    labels = [c for c in range(lp.shape[2]) if c != blank]
    out = []
    for b in range(lp.shape[1]):
        beams = _prefix_beam(lp[: il[b], b], beam, blank, lambda p: [(c, p + (c,)) for c in labels])
        out.append(list(max(beams.items(), key=_total)[0]))
    return out


Beams = dict[tuple[int, ...], tuple[float, float]]  # prefix -> (p_b, p_nb)


def _prefix_beam(
    lp: np.ndarray,
    beam: int,
    blank: int,
    moves: Callable[[tuple[int, ...]], Iterable[tuple[int, tuple[int, ...]]]],
) -> Beams:
    """The ``beam`` best prefixes after the prefix beam search over ``lp`` (T, C) (the updates
    in `ctc_beam_decode`'s docstring); ``moves(prefix)``: each label ``c`` the prefix may grow
    by, with the grown prefix (``prefix + (c,)``, or with a separator put in before ``c``)."""
    beams: Beams = {(): (0.0, NEG_INF)}
    for step in lp:
        y = step.astype(np.float64)
        nxt: dict[tuple[int, ...], list[float]] = {}
        for prefix, (p_b, p_nb) in beams.items():
            total = np.logaddexp(p_b, p_nb)
            _add(nxt, prefix, 0, total + y[blank])
            last = prefix[-1] if prefix else None
            if last is not None:  # the last label again, merged into the same prefix
                _add(nxt, prefix, 1, p_nb + y[last])
            for c, grown in moves(prefix):
                # a repeat of the last label needs a blank between (p_b); else any path
                _add(nxt, grown, 1, (p_b if c == last else total) + y[c])
        ranked = sorted(nxt.items(), key=lambda kv: -np.logaddexp(kv[1][0], kv[1][1]))
        beams = {prefix: (p[0], p[1]) for prefix, p in ranked[:beam]}
    return beams


def _total(kv: tuple[tuple[int, ...], tuple[float, float]]) -> float:
    """A beam's log-probability, ``logaddexp(p_b, p_nb)``."""
    return float(np.logaddexp(kv[1][0], kv[1][1]))


def _add(
    beams: dict[tuple[int, ...], list[float]], prefix: tuple[int, ...], i: int, value: float
) -> None:
    """``beams[prefix][i] = logaddexp(beams[prefix][i], value)`` (0: ends in blank, 1: not)."""
    entry = beams.setdefault(prefix, [NEG_INF, NEG_INF])
    entry[i] = float(np.logaddexp(entry[i], value))


def ctc_lexicon_beam_decode(
    log_probs: np.ndarray,
    words: list[list[int]],
    separator: int | None = None,
    input_lengths: np.ndarray | None = None,
    blank: int = 0,
    beam: int = 8,
) -> list[list[int]]:
    """Prefix beam search whose prefixes spell words of a closed vocabulary only.

    ``words``: each word as its labels (say the characters of "seven"), held in a trie; a
    prefix is a run of whole words and a partial word, and it may only grow by a label the
    trie allows after the partial word. ``separator`` (the space's label, or None when the
    labels are words themselves): it may follow a whole word only, and after a whole word a
    new word may also start without it (the separator is then put in, so that the output
    spells its words apart). The scores are those of `ctc_beam_decode`; at the end the best
    prefix that ends on a whole word (or is empty) wins. One label list per sequence."""
    name = "ctc_lexicon_beam_decode"
    lp, il = _check_decode(name, log_probs, input_lengths)
    if beam < 1:
        raise InputError(f"{name}: expected beam >= 1, got {beam}")
    trie = _Trie(words, name, lp.shape[2], blank, separator)
    out = []
    for b in range(lp.shape[1]):
        node: dict[tuple[int, ...], int] = {(): 0}  # each prefix's trie node (partial word)
        beams = _prefix_beam(lp[: il[b], b], beam, blank, trie.walk(node))
        ended = [kv for kv in beams.items() if trie.ends(node[kv[0]])]
        if not ended:  # no prefix in the beam ends on a word: the best, cut to its whole words
            out.append(trie.whole(max(beams.items(), key=_total)[0]))
            continue
        out.append(trie.strip(max(ended, key=_total)[0]))
    return out


class _Trie:
    """The words' labels as a trie: ``children[n]`` maps a label to the next node, ``final``
    the nodes where a word ends; node 0 is the root (no partial word)."""

    def __init__(
        self, words: list[list[int]], name: str, C: int, blank: int, separator: int | None
    ) -> None:
        self.children: list[dict[int, int]] = [{}]
        self.final: set[int] = set()
        self.separator = separator
        for w in words:
            labels = [int(c) for c in w]
            if not labels or any(c in (blank, separator) or not 0 <= c < C for c in labels):
                raise InputError(
                    f"{name}: expected each word as labels in [0, {C}) other than the blank "
                    f"{blank} and the separator {separator}, got {labels}"
                )
            n = 0
            for c in labels:
                n = self.children[n].setdefault(c, len(self.children))
                if n == len(self.children):
                    self.children.append({})
            self.final.add(n)
        if not self.final:
            raise InputError(f"{name}: expected at least one word, got none")

    def ends(self, n: int) -> bool:
        return n == 0 or n in self.final

    def moves(self, prefix: tuple[int, ...], n: int) -> list[tuple[int, tuple[int, ...], int]]:
        """``(label, grown prefix, its node)`` for each label allowed after ``prefix``."""
        out = [(c, prefix + (c,), child) for c, child in self.children[n].items()]
        if n in self.final:  # a word ends here: the separator, or the next word at once
            if self.separator is not None:
                out.append((self.separator, prefix + (self.separator,), 0))
                out += [
                    (c, prefix + (self.separator, c), child)
                    for c, child in self.children[0].items()
                ]
            else:
                out += [(c, prefix + (c,), child) for c, child in self.children[0].items()]
        return out

    def walk(
        self, node: dict[tuple[int, ...], int]
    ) -> Callable[[tuple[int, ...]], Iterator[tuple[int, tuple[int, ...]]]]:
        """`moves` for `_prefix_beam`, keeping each grown prefix's node in ``node``."""

        def moves(prefix: tuple[int, ...]) -> Iterator[tuple[int, tuple[int, ...]]]:
            for c, grown, child in self.moves(prefix, node[prefix]):
                node[grown] = child
                yield c, grown

        return moves

    def strip(self, prefix: tuple[int, ...]) -> list[int]:
        """The labels without a trailing separator."""
        labels = list(prefix)
        while labels and labels[-1] == self.separator:
            labels.pop()
        return labels

    def whole(self, prefix: tuple[int, ...]) -> list[int]:
        """The labels up to the end of the last whole word."""
        n, cut = 0, 0
        for i, c in enumerate(prefix):
            if c == self.separator:
                n, cut = 0, i
                continue
            n = self.children[n].get(c, 0)
            if n in self.final:
                cut = i + 1
        return self.strip(prefix[:cut])
