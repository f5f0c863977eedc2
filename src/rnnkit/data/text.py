"""Text for language models: reading, the built-in corpus, vocabularies and batch streams."""

from __future__ import annotations

import re
import sysconfig
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, InputError

CHAR_UNK = "\ufffd"  # the replacement character stands for characters never seen in training
WORD_UNK = "<unk>"
_WORD_RE = re.compile(r"\w+|[^\w\s]|\n")
_NO_SPACE_BEFORE = set(".,;:!?)]}'\"\n")
_NO_SPACE_AFTER = set("([{\n")


# -- reading ---------------------------------------------------------------------------------
def read_text(path: str | Path) -> str:
    """A UTF-8 text file, or every ``.txt`` file in a folder (sorted by name, ``.TXT`` too),
    concatenated. Line ends are ``\n`` whatever the file had (Windows ``\r\n``, old Mac
    ``\r``), as Python's text mode reads them, so a model never learns a ``\r`` character."""
    path = Path(path)
    if path.is_dir():
        files = visible_files(path, (".txt",))  # not macOS's ._x.txt twins
        if not files:
            raise InputError(f"text: folder {str(path)!r} holds no .txt files")
        return "\n".join(read_text(p) for p in files)
    if not path.is_file():
        raise InputError(f"text: no such file or folder {str(path)!r}")
    text = decode_utf8(path, "text").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise InputError(f"text: {str(path)!r} is empty; expected some text to learn from")
    return text


def hidden(name: str) -> bool:
    """A name to pass over in a user's folder: hidden (``.DS_Store``, macOS's ``._x.wav``
    twins) or the ``__MACOSX`` folder that unzipping an archive made on a Mac leaves."""
    return name.startswith(".") or name == "__MACOSX"


def visible_files(folder: Path, suffixes: tuple[str, ...] | None = None) -> list[Path]:
    """The files under ``folder``, sorted, none hidden or inside a hidden folder (`hidden`);
    only those whose suffix in lower case is one of ``suffixes``, when given."""
    return sorted(
        p
        for p in folder.rglob("*")
        if (suffixes is None or p.suffix.lower() in suffixes)
        and p.is_file()
        and not any(hidden(part) for part in p.relative_to(folder).parts)
    )


def lines_of(text: str) -> list[str]:
    """The lines of ``text``, split at ``\n``, ``\r\n`` and ``\r`` only: not at the other
    characters `str.splitlines` takes for line ends (U+0085, U+2028, form feed), which occur
    inside sentences of scraped or mis-decoded text (U+0085 is cp1252's "..." read as Latin-1)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return lines[:-1] if lines and not lines[-1] else lines


def decode_utf8(path: Path, what: str) -> str:
    """The text of a UTF-8 file (a leading byte-order mark dropped), or of a UTF-16 file that
    starts with its byte-order mark (what Windows PowerShell and Notepad's "Unicode" write);
    else a one-line error naming ``what``, the file and the line of the first bad byte."""
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise InputError(
                f"{what}: {str(path)!r} starts as UTF-16 but is not valid UTF-16; expected "
                "UTF-8 text"
            ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{what}: {str(path)!r} is not valid UTF-8 (line {line}, byte {exc.start}); "
            "expected UTF-8 text (convert it, e.g. with iconv -f latin1 -t utf-8)"
        ) from None


def default_corpus(max_chars: int = 2_000_000) -> tuple[str, str]:
    """The built-in corpus: the Python standard library's own source code.

    Every machine with Python has it, so nothing is downloaded. Files are taken in sorted path
    order (tests and vendored packages left out), each headed by a ``# file:`` comment, up to
    ``max_chars`` characters. Returns the text and a one-line description.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo", "__pycache__"}
    parts, total = [], 0
    for path in sorted(root.rglob("*.py")):
        if skip.intersection(path.relative_to(root).parts):
            continue
        try:
            source = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        piece = f"# file: {path.relative_to(root)}\n{source}\n"
        parts.append(piece)
        total += len(piece)
        if total >= max_chars:
            break
    if not parts:
        raise InputError(
            f"text: no Python sources found under {str(root)!r} for the default corpus"
        )
    text = "".join(parts)[:max_chars]
    return (
        text,
        f"Python {sysconfig.get_python_version()} standard library source "
        f"({len(text):,} characters)",
    )


def split_validation(text: str, fraction: float = 0.1) -> tuple[str, str]:
    """The last ``fraction`` of the text is the validation split."""
    cut = int(len(text) * (1.0 - fraction))
    return text[:cut], text[cut:]


# -- vocabularies ----------------------------------------------------------------------------
def word_tokens(text: str) -> list[str]:
    """Words, single punctuation marks and newlines; other whitespace separates."""
    return _WORD_RE.findall(text)


@dataclass(frozen=True)
class Vocabulary:
    """Tokens by id; id 0 is the unknown token. ``level`` is ``"char"`` or ``"word"``."""

    tokens: tuple[str, ...]
    level: str = "char"

    @classmethod
    def build(
        cls,
        text: str | Iterable[str],
        level: str = "char",
        max_size: int | None = None,
        min_count: int = 1,
    ) -> Vocabulary:
        """From training text (one string, or many counted together): every character, or the
        ``max_size`` most frequent words; symbols seen fewer than ``min_count`` times are left
        to the unknown token."""
        if level not in ("char", "word"):
            raise InputError(f"Vocabulary: level must be 'char' or 'word', got {level!r}")
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise InputError(f"Vocabulary: min_count must be a positive integer, got {min_count!r}")
        counts: Counter[str] = Counter()
        for piece in [text] if isinstance(text, str) else text:
            counts.update(piece if level == "char" else word_tokens(piece))
        unk = CHAR_UNK if level == "char" else WORD_UNK
        counts.pop(unk, None)
        ranked = sorted(
            (t for t in counts if counts[t] >= min_count), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            ranked = ranked[: max_size - 1]
        ordered = sorted(ranked) if level == "char" else ranked
        return cls((unk, *ordered), level)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, object], size: int, source: str) -> Vocabulary:
        """The vocabulary a language-model checkpoint records (``vocab``, ``level``), checked
        before use: distinct non-empty strings, as many as the model's ``size`` (its embedding
        rows and head outputs), level "char" or "word". Else `CheckpointError` naming
        ``source`` (the component and the file)."""
        tokens, level = metadata.get("vocab"), metadata.get("level", "char")
        if tokens is None:
            raise CheckpointError(
                f"{source} has no vocabulary in its metadata; expected a language model "
                "trained by 'rnnkit train lm'"
            )
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
            raise CheckpointError(
                f"{source}: expected its vocabulary to be a list of non-empty strings, "
                f"got {_describe(tokens)}"
            )
        if len(set(tokens)) != len(tokens):
            repeated = sorted(t for t, n in Counter(tokens).items() if n > 1)[:5]
            raise CheckpointError(
                f"{source}: expected distinct tokens in its vocabulary, got repeats of {repeated}"
            )
        if len(tokens) != size:
            raise CheckpointError(
                f"{source}: its vocabulary has {len(tokens)} tokens, expected {size} "
                "(the model's embedding rows); the metadata does not belong to these weights"
            )
        if level not in ("char", "word"):
            raise CheckpointError(f"{source}: expected level 'char' or 'word', got {level!r}")
        return cls(tuple(tokens), str(level))

    @property
    def unk(self) -> str:
        return self.tokens[0]

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    def split(self, text: str) -> list[str]:
        return list(text) if self.level == "char" else word_tokens(text)

    def encode(self, text: str) -> np.ndarray:
        """Token ids (int64); symbols outside the vocabulary become id 0, the unknown token."""
        index = self.index
        return np.fromiter((index.get(t, 0) for t in self.split(text)), dtype=np.int64)

    def encode_many(self, texts: Iterable[str]) -> list[np.ndarray]:
        """`encode` of each text, the index built once; an empty text is one unknown token."""
        index = self.index
        out = []
        for text in texts:
            ids = np.fromiter((index.get(t, 0) for t in self.split(text)), dtype=np.int64)
            out.append(ids if len(ids) else np.zeros(1, dtype=np.int64))
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Text from ids; at word level, spaces go between words but not before punctuation."""
        pieces = [self.tokens[int(i)] for i in ids]
        if self.level == "char":
            return "".join(pieces)
        out: list[str] = []
        for p in pieces:
            if out and p[0] not in _NO_SPACE_BEFORE and out[-1][-1] not in _NO_SPACE_AFTER:
                out.append(" ")
            out.append(p)
        return "".join(out)

    def decode_next(self, previous: int | None, token: int) -> str:
        """The text that one more token adds after ``previous`` (for printing as it comes)."""
        if previous is None:
            return self.decode([token])
        return self.decode([previous, token])[len(self.decode([previous])) :]


def _describe(value: object) -> str:
    """A short description of a malformed metadata value, for an error message."""
    if isinstance(value, list):
        bad = next((t for t in value if not (isinstance(t, str) and t)), None)
        return f"a list holding {bad!r}"
    return type(value).__name__


# -- batches of parallel streams -------------------------------------------------------------
class TokenStreams:
    """``B`` parallel streams through a token sequence, read ``bptt`` steps at a time.

    The sequence is cut into B contiguous streams; chunk ``k`` holds steps ``k*bptt`` to
    ``(k+1)*bptt`` of every stream, so the hidden state at the end of chunk k is the right
    state to start chunk k+1 with (truncated BPTT with carried state). Inputs and targets are
    time-major ``(T, B)``; targets are inputs shifted by one.
    """

    def __init__(self, ids: np.ndarray, batch: int, bptt: int) -> None:
        length = (len(ids) - 1) // batch
        if length < 1:
            raise InputError(
                f"TokenStreams: {len(ids)} tokens are too few for {batch} streams; "
                "expected at least batch + 1 tokens"
            )
        self.batch, self.bptt, self.length = batch, bptt, length
        used = ids[: length * batch + 1]
        self.inputs = used[:-1].reshape(batch, length).T.copy()  # (L, B)
        self.targets = used[1:].reshape(batch, length).T.copy()  # (L, B)

    def __len__(self) -> int:
        """Chunks per pass over the data."""
        return -(-self.length // self.bptt)

    def chunk(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Chunk ``k`` (taken modulo the number of chunks): inputs and targets ``(T, B)``."""
        k %= len(self)
        sl = slice(k * self.bptt, (k + 1) * self.bptt)
        return self.inputs[sl], self.targets[sl]
