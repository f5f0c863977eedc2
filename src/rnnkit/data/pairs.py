"""Sentence pairs for translation: reading, tokens, vocabularies and held-out splits.

The public API, in the order a translation run uses it::

    pairs = read_pairs("eng-fra.txt", reverse=False)     # [(source, target), ...]
    split = split_pairs(pairs, seed=0)                   # train / valid / test, by source
    tok = Tokenizer()                                    # word level, lower case, punct. split
    src_vocab = Vocab.build([tok.tokenize(s) for s, _ in split.train], min_count=1)
    ids = src_vocab.encode(tok.tokenize("Go now."))      # int64 ids, <eos> appended
    text = tok.detokenize(src_vocab.decode(ids))         # "go now."
    reference = tok.normalize("Va-t'en !")               # what BLEU compares against

**Files** (`read_pairs`) are Tatoeba/Anki lines ``source<TAB>target``: columns after the second
are ignored (Anki's attribution), and tatoeba.org's own download of pairs,
``id<TAB>source<TAB>id<TAB>target`` (every line but a cut-off last one so), is read without its
sentence numbers; a first line that is a header (``1<TAB>2``, ``source<TAB>target``, two
language codes such as ``en<TAB>fr`` or names such as ``English<TAB>French``) is skipped, and
so are the ``#separator:tab``, ``#html:true``, ... lines an export from Anki starts with. A
``.csv`` file with no tab in it is CSV (`_csv_pairs`: a header row, then ``source,target``). CRLF
line ends, a byte-order mark and blank lines are accepted. A last line that was cut off when
the file was made (no tab and no final line end, or a target ending in a space, as in the Anki
eng-fra file) is dropped with a `RnnkitWarning`.
Each problem ends in one `InputError` line naming the file and the line: a line without a tab,
an empty source or target, an empty file, bytes that are not UTF-8. ``reverse=True`` swaps the
columns (``target<TAB>source`` files, or translating the other way).

**Tokens** (`Tokenizer`): word level by default, lower-cased and with punctuation split from the
words (``"Don't go!"`` -> ``don ' t go !``), each of the two switchable off (then words are
split at white space only); or character level (``level="char"``). Non-breaking spaces (U+00A0,
U+202F, used before French ``! ? : ;``) count as plain spaces. `Tokenizer.detokenize` joins
tokens back into text for sacreBLEU (no space before closing punctuation, none around
apostrophes and hyphens); `Tokenizer.normalize` sends a reference through the same
tokenize-then-detokenize, so hypotheses and references are compared in one form (lower-cased
when the model is).

**Vocabularies** (`Vocab`): ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3, then the
tokens seen at least ``min_count`` times, most frequent first (ties by first appearance), at
most ``max_size`` in all. ``to_metadata``/``from_metadata`` store one in a checkpoint as JSON.

**Splits** (`split_pairs`): without given valid/test files, held-out sets are carved from the
pairs by a fixed seed, grouped by source sentence (all translations of one sentence fall in the
same part, so no test source is seen in training); ``Split.describe`` says what was done.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, InputError, RnnkitWarning
from .dialect import delimiter_of
from .text import decode_utf8, lines_of

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")

_HEADER_WORDS = {"source", "target", "src", "tgt", "input", "output", "text", "translation"}
_LANG_CODES = set(
    "en eng fr fra fre de deu ger es spa it ita pt por nl nld ru rus ja jpn zh zho cmn tr tur "
    "pl pol sv swe fi fin ar ara he heb ko kor".split()
)
_LANG_NAMES = set(  # a header such as English<TAB>French
    "english french german spanish italian portuguese dutch russian japanese chinese turkish "
    "polish swedish finnish arabic hebrew korean".split()
)
_ANKI_HEADER = re.compile(r"#[a-z ]+:", re.IGNORECASE)  # the lines Anki's export starts with
_SPACES = re.compile(r"[\u00a0\u202f\u2009\u2007]")
_WORD_PUNCT = re.compile(r"\w+|[^\w\s]")
_NO_SPACE_BEFORE = set(".,;:!?)]}%»…")
_NO_SPACE_AFTER = set("([{¿¡«")
_JOINERS = set("'’-/")


# -- reading ---------------------------------------------------------------------------------
def read_pairs(
    path: str | Path, reverse: bool = False, what: str = "pairs"
) -> list[tuple[str, str]]:
    """The ``(source, target)`` pairs of a tab-separated file (module docstring); ``reverse``
    swaps the two columns. Sides are stripped of surrounding white space."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what}: no such file {str(path)!r}; expected source<TAB>target lines")
    name = repr(str(path))
    text = decode_utf8(path, what)
    if path.suffix.lower() == ".csv" and "\t" not in text:
        return _csv_pairs(text, name, reverse, what)
    lines = lines_of(text)
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if not numbered:
        raise InputError(f"{what}: {name} is empty; expected lines of source<TAB>target")
    extra = _anki_columns(numbered, f"{what}: {name}")  # and those lines taken off
    if numbered and _is_header(numbered[0][1]):
        header = numbered[0][1].strip()
        again = [number for number, line in numbered[1:] if line.strip() == header]
        if again:  # files joined, each with its header
            warnings.warn(
                f"{what}: {name} line {again[0]} repeats the header (files joined, each with "
                "its header?); passed over",
                RnnkitWarning,
                stacklevel=2,
            )
        numbered = [(number, line) for number, line in numbered[1:] if line.strip() != header]
    # tatoeba.org's own download of pairs: id<TAB>sentence<TAB>id<TAB>translation
    with_ids = bool(numbered) and all(_with_ids(line) for _, line in numbered[:-1] or numbered)
    src, tgt = [k for k in range(len(extra) + 2) if k not in extra][:2]
    if with_ids and not extra:
        src, tgt = 1, 3
    last = numbered[-1][1] if numbered else ""
    cut = not _with_ids(last) if with_ids else _cut_off(last, text.endswith(("\n", "\r")))
    if numbered and cut:
        number, line = numbered.pop()
        warnings.warn(
            f"{what}: {name} line {number} looks cut off ({line.strip()[:40]!r}); left out",
            RnnkitWarning,
            stacklevel=2,
        )
    if not numbered:
        raise InputError(f"{what}: {name} holds no pairs; expected lines of source<TAB>target")
    pairs = []
    for number, line in numbered:
        fields = line.split("\t")
        if len(fields) < 2:
            raise InputError(
                f"{what}: {name} line {number} has no tab; expected source<TAB>target "
                f"(got {line.strip()[:40]!r})"
            )
        if len(fields) <= tgt:
            raise InputError(
                f"{what}: {name} line {number} has {len(fields)} columns; expected the target "
                f"in column {tgt + 1} (got {line.strip()[:40]!r})"
            )
        source, target = fields[src].strip(), fields[tgt].strip()
        sides = (f"source (column {src + 1})", f"target (column {tgt + 1})")
        for side, value in zip(sides, (source, target), strict=True):
            if not value:
                raise InputError(f"{what}: {name} line {number} has an empty {side}")
        pairs.append((target, source) if reverse else (source, target))
    return pairs


def _is_header(line: str) -> bool:
    fields = [f.strip().lower() for f in line.split("\t")[:2]]
    if len(fields) < 2:
        return False
    if all(f.isdigit() for f in fields):
        return True
    return (
        all(f in _HEADER_WORDS for f in fields)
        or all(f in _LANG_CODES for f in fields)
        or all(f in _LANG_NAMES for f in fields)
    )


def _csv_pairs(text: str, name: str, reverse: bool, what: str) -> list[tuple[str, str]]:
    """The pairs of a ``.csv`` file without a tab (as Kaggle's English-French set comes): its
    first row the header, then ``source,target`` rows (quoted as spreadsheets write them;
    semicolons when the header holds no comma); more columns are ignored."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter_of(text.split("\n")[0]))
    pairs = []
    try:
        if next(reader, None) is None:
            raise InputError(f"{what}: {name} is empty; expected a header and source,target rows")
        for row in reader:
            number = reader.line_num
            if not row or all(not f.strip() for f in row):
                continue
            if len(row) < 2:
                raise InputError(
                    f"{what}: {name} line {number} has one column; expected source,target"
                )
            source, target = row[0].strip(), row[1].strip()
            for side, value in (("source (column 1)", source), ("target (column 2)", target)):
                if not value:
                    raise InputError(f"{what}: {name} line {number} has an empty {side}")
            pairs.append((target, source) if reverse else (source, target))
    except csv.Error as exc:
        raise InputError(
            f"{what}: {name} line {reader.line_num} is malformed CSV ({exc})"
        ) from None
    if not pairs:
        raise InputError(f"{what}: {name} holds no pairs; expected source,target rows")
    return pairs


def _anki_columns(numbered: list[tuple[int, str]], where: str) -> set[int]:
    """Take off the lines an export from Anki starts with (``#separator:tab``, ``#html:true``,
    ``#deck column:1``); the columns (from 0) they say hold no sentence: note type, deck, tags,
    guid. A separator other than tab is one line."""
    extra: set[int] = set()
    while numbered and _ANKI_HEADER.match(numbered[0][1]):
        number, line = numbered.pop(0)
        key, value = (part.strip().lower() for part in line[1:].split(":", 1))
        if key == "separator" and value != "tab":
            raise InputError(
                f"{where} line {number} says {line.strip()!r}; expected tab-separated pairs "
                "(export with the separator Tab)"
            )
        if key.endswith(" column") and value.isdigit() and int(value) > 0:
            extra.add(int(value) - 1)
    return extra


def _with_ids(line: str) -> bool:
    """A line of tatoeba.org's download of pairs: a sentence and its translation, each after
    its number (``1276<TAB>Let's try something.<TAB>77<TAB>Lass uns etwas versuchen!``)."""
    fields = line.split("\t")
    return len(fields) >= 4 and fields[0].strip().isdigit() and fields[2].strip().isdigit()


def _cut_off(line: str, ended: bool) -> bool:
    """Whether the last line was cut off: no tab and no final line end, or two columns whose
    target ends in white space (no sentence of Tatoeba's does)."""
    fields = line.split("\t")
    if len(fields) < 2:
        return not ended
    return len(fields) == 2 and fields[1] != fields[1].rstrip() and bool(fields[1].strip())


# -- tokens ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tokenizer:
    """Text to tokens and back (module docstring). ``level`` is ``"word"`` or ``"char"``."""

    level: str = "word"
    lowercase: bool = True
    split_punctuation: bool = True

    def __post_init__(self) -> None:
        if self.level not in ("word", "char"):
            raise InputError(f"Tokenizer: level must be 'word' or 'char', got {self.level!r}")

    def _clean(self, text: str) -> str:
        text = _SPACES.sub(" ", text).strip()
        return text.lower() if self.lowercase else text

    def tokenize(self, text: str) -> list[str]:
        """The tokens of one sentence."""
        text = self._clean(text)
        if self.level == "char":
            return list(" ".join(text.split()))
        if self.split_punctuation:
            return _WORD_PUNCT.findall(text)
        return text.split()

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Tokens joined back into a sentence (the form that sacreBLEU scores)."""
        if self.level == "char":
            return "".join(tokens)
        if not self.split_punctuation:
            return " ".join(tokens)
        out: list[str] = []
        glue = True  # no space before the next token
        quotes = 0
        for token in tokens:
            if token == '"':
                quotes += 1
                opening = quotes % 2 == 1
                out.append(token if glue or not opening else " " + token)
                glue = opening
                continue
            joined = glue or token in _NO_SPACE_BEFORE or token in _JOINERS
            out.append(token if joined else " " + token)
            glue = token in _NO_SPACE_AFTER or token in _JOINERS
        return "".join(out)

    def normalize(self, text: str) -> str:
        """A reference in the form the model writes: tokenized, then detokenized."""
        return self.detokenize(self.tokenize(text))

    def to_metadata(self) -> dict[str, object]:
        return {
            "level": self.level,
            "lowercase": self.lowercase,
            "split_punctuation": self.split_punctuation,
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, object]) -> Tokenizer:
        try:
            return cls(
                str(metadata["level"]),
                bool(metadata["lowercase"]),
                bool(metadata["split_punctuation"]),
            )
        except KeyError as exc:
            raise CheckpointError(f"tokenizer metadata lacks {exc.args[0]!r}") from None


# -- vocabularies ----------------------------------------------------------------------------
class Vocab:
    """Tokens and their ids: the four specials first (module docstring)."""

    def __init__(self, tokens: Sequence[str]) -> None:
        if tuple(tokens[:4]) != SPECIALS:
            raise CheckpointError(f"Vocab: expected the specials {SPECIALS} first")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(
        cls, sentences: Iterable[Sequence[str]], min_count: int = 1, max_size: int | None = None
    ) -> Vocab:
        """A vocabulary of the tokens in ``sentences`` (lists of tokens)."""
        counts: Counter[str] = Counter()
        for tokens in sentences:
            counts.update(tokens)
        kept = [t for t, c in counts.most_common() if c >= min_count and t not in SPECIALS]
        if max_size is not None:
            kept = kept[: max(0, max_size - len(SPECIALS))]
        return cls([*SPECIALS, *kept])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str], eos: bool = True) -> np.ndarray:
        """Ids (int64) of ``tokens``, unknown ones as ``<unk>``, ``<eos>`` appended."""
        ids = [self.index.get(t, UNK) for t in tokens]
        if eos:
            ids.append(EOS)
        return np.array(ids, dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """The tokens of ``ids`` up to the first ``<eos>``; ``<pad>`` and ``<bos>`` left out."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            out.append(self.tokens[i])
        return out

    def to_metadata(self) -> list[str]:
        return list(self.tokens)

    @classmethod
    def from_metadata(cls, tokens: object) -> Vocab:
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise CheckpointError("vocabulary metadata is not a list of tokens")
        return cls(tokens)


# -- splits ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """Training, validation and test pairs, and a sentence saying where the held-out ones
    came from."""

    train: list[tuple[str, str]]
    valid: list[tuple[str, str]]
    test: list[tuple[str, str]]
    describe: str


def _count(part: float | int, n: int, cap: int | None) -> int:
    if isinstance(part, float):  # a fraction: at least one when above 0
        k = max(1, int(round(part * n))) if part > 0 else 0
    else:
        k = int(part)
    return min(k, cap) if cap is not None and isinstance(part, float) else k


def split_pairs(
    pairs: Sequence[tuple[str, str]],
    seed: int = 0,
    valid: float | int = 0.05,
    test: float | int = 0.05,
    cap: int | None = 1000,
    source: str = "the pairs",
) -> Split:
    """Held-out ``valid`` and ``test`` parts of ``pairs``: each a fraction of the distinct
    source sentences (at most ``cap`` of them) or a count; grouped by source sentence and
    drawn with ``seed``, so the same file and seed give the same split on every machine.
    ``0`` leaves a part empty."""
    groups: dict[str, list[int]] = {}
    for i, (s, _) in enumerate(pairs):
        groups.setdefault(s, []).append(i)
    keys = list(groups)
    n = len(keys)
    n_valid, n_test = _count(valid, n, cap), _count(test, n, cap)
    if n_valid + n_test >= n:
        raise InputError(
            f"pairs: {source} has {n} distinct source sentences, too few to hold out "
            f"{n_valid} for validation and {n_test} for test"
        )
    order = np.random.default_rng(seed).permutation(n)
    parts: list[list[tuple[str, str]]] = [[], [], []]
    for rank, k in enumerate(order):
        part = 0 if rank < n_valid else 1 if rank < n_valid + n_test else 2
        parts[part].extend(pairs[i] for i in groups[keys[int(k)]])
    valid_pairs, test_pairs, train = parts
    describe = (
        f"held out from {source} (seed {seed}, grouped by source sentence): "
        f"{len(valid_pairs)} validation pairs, {len(test_pairs)} test pairs, "
        f"{len(train)} training pairs"
    )
    return Split(train, valid_pairs, test_pairs, describe)
