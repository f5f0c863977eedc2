"""Error rates of transcripts: edit distance (Levenshtein) over the reference's length, in
characters (CER) or words (WER), summed over a corpus as speech recognition reports them."""

from __future__ import annotations

from collections.abc import Sequence


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Fewest insertions, deletions and substitutions turning ``hyp`` into ``ref``."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1]


def error_rate(refs: Sequence[str], hyps: Sequence[str], words: bool = True) -> float:
    """Total edits over total reference length (words split on white space, or characters)."""
    edits = length = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        r, h = (ref.split(), hyp.split()) if words else (list(ref), list(hyp))
        edits += edit_distance(r, h)
        length += len(r)
    return edits / max(length, 1)
