"""Labelled text in the formats text classification already uses.

- a CSV or TSV file with a header row, one example per row: a text column and a label column
  (``text`` and ``label`` unless named); ``.tsv``/``.tab`` files are tab-separated, so are
  files of other names but ``.csv`` whose header line holds a tab; the rest comma-separated
  unless their header line holds no comma but tabs or semicolons;
- a folder with one subfolder per label, whose ``.txt`` files hold one example per line.

Audio (`rnnkit.audio`) comes in the same two shapes: a folder with one subfolder per label of
``.wav`` files (Keras' ``audio_dataset_from_directory``), or a CSV/TSV manifest with a ``path``
column (relative paths are read from the manifest's folder; DeepSpeech's ``wav_filename`` and
NeMo's ``audio_filepath`` name it too) and the label column. Then
``texts`` holds the files' paths and ``audio`` is true; a manifest's ``speaker`` column, if it
has one, is read into ``speakers`` (per-speaker normalisation, `rnnkit.audio.norm`).

Labels are compared in Unicode's composed form (NFC): a folder named ``zwölf`` on macOS, which
stores names decomposed (``o`` and a combining diaeresis), is the same label as ``zwölf`` typed
into a CSV elsewhere.

Each problem ends in one `InputError` line naming the file and the line: a missing column, an
empty file, a row with more or fewer fields than the header, text that is not UTF-8.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .dialect import column_index, csv_rows, delimiter_of, header_again
from .text import decode_utf8, hidden, lines_of, visible_files


@dataclass(frozen=True)
class Labelled:
    """Examples read from ``source``: texts, their labels, and where each came from
    (``'file' line N``, for messages)."""

    texts: list[str]
    labels: list[str]
    where: list[str]
    source: str
    audio: bool = False
    speakers: list[str] | None = None  # an audio manifest's 'speaker' column, if it has one

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: np.ndarray) -> Labelled:
        pick = [int(i) for i in index]
        return Labelled(
            [self.texts[i] for i in pick],
            [self.labels[i] for i in pick],
            [self.where[i] for i in pick],
            self.source,
            self.audio,
            None if self.speakers is None else [self.speakers[i] for i in pick],
        )


def read_labelled(
    path: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    what: str = "data",
    naming: str = "--text-column/--label-column",
    label: str = "label",
) -> Labelled:
    """The examples of a CSV/TSV file or a folder of one subfolder per label (module docstring).
    ``naming``: the options that name the columns, and ``label`` what a label is called (a
    transcript), for messages."""
    path = Path(path)
    if path.is_dir():
        data = _read_folder(path, what)
    elif not path.is_file():
        raise InputError(f"{what}: no such file or folder {str(path)!r}")
    else:
        data = _read_table(path, text_column, label_column, what, naming, label)
    labels = [unicodedata.normalize("NFC", label) for label in data.labels]
    return Labelled(data.texts, labels, data.where, data.source, data.audio, data.speakers)


def _delimiter(path: Path, header: str) -> str:
    """Tab for ``.tsv``/``.tab``, and for a file of another name (``.txt``) whose header holds
    a tab (as before semicolons were read: ``text<TAB>label (pos, neg)``); else as
    `rnnkit.data.dialect.delimiter_of` tells."""
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab") or (suffix != ".csv" and "\t" in header):
        return "\t"
    return delimiter_of(header)


def _read_table(
    path: Path, text_column: str, label_column: str, what: str, naming: str, noun: str
) -> Labelled:
    text = decode_utf8(path, what)
    name = repr(str(path))
    if not text.strip():
        raise InputError(f"{what}: {name} is empty; expected a header row and examples")
    delimiter = _delimiter(path, text.split("\n", 1)[0])
    reader = csv_rows(io.StringIO(text, newline=""), delimiter)
    try:
        header = [h.strip() for h in next(reader)]
        as_written = list(header)
        header = _named_as_asked(header, (text_column, label_column, AUDIO_COLUMN))
        if AUDIO_COLUMN not in header and text_column not in header:  # another tool's name
            for alias in AUDIO_ALIASES:
                if alias in header:
                    header[header.index(alias)] = AUDIO_COLUMN
                    break
        for column in (text_column, label_column):
            if column == text_column and AUDIO_COLUMN in header:
                continue  # an audio manifest
            if column not in header:
                raise InputError(
                    f"{what}: {name} line 1 (the header) has no column {column!r}; found "
                    f"{header[:8]} "
                    + (
                        f"(name the columns with {naming})"
                        if column != AUDIO_COLUMN
                        else "(not a manifest of audio files, which names them in a column 'path')"
                    )
                )
        audio = AUDIO_COLUMN in header and (
            text_column == AUDIO_COLUMN or text_column not in header
        )
        ti = header.index(AUDIO_COLUMN if audio else text_column)
        li = header.index(label_column)
        si = header.index(SPEAKER_COLUMN) if audio and SPEAKER_COLUMN in header else None
        texts, labels, where, speakers = [], [], [], []
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            if header_again(row, as_written, f"{what}: {name} line {line}"):
                continue  # was an example labelled with the label column's name
            if len(row) != len(header):
                sep = {"\t": "tab", ";": "semicolon"}.get(delimiter, "comma")
                raise InputError(
                    f"{what}: {name} line {line} has {len(row)} fields, expected "
                    f"{len(header)} like the header (a stray {sep} or an unclosed quote?)"
                )
            label = row[li].strip()
            if not label:
                raise InputError(f"{what}: {name} line {line} has an empty {noun}")
            if audio:
                file = _audio_file(path, row[ti].strip(), f"{what}: {name} line {line}")
                texts.append(file)
                if si is not None:
                    speaker = row[si].strip()
                    if not speaker:
                        raise InputError(
                            f"{what}: {name} line {line} has an empty {SPEAKER_COLUMN!r}; "
                            "expected the recording's speaker (or drop the column)"
                        )
                    speakers.append(speaker)
            else:
                texts.append(row[ti])
            labels.append(label)
            where.append(f"{name} line {line}")
    except csv.Error as exc:
        raise InputError(
            f"{what}: {name} line {reader.line_num} is malformed CSV ({exc})"
        ) from None
    if not texts:
        raise InputError(f"{what}: {name} has a header but no examples")
    return Labelled(texts, labels, where, str(path), audio, speakers if si is not None else None)


AUDIO_COLUMN = "path"  # the column of a manifest of audio files
SPEAKER_COLUMN = "speaker"  # an audio manifest's optional column: who speaks (Kaldi's utt2spk)
# what other tools call it: DeepSpeech/Coqui (wav_filename), NeMo (audio_filepath), others
AUDIO_ALIASES = ("wav_filename", "audio_filepath", "audio_path", "filepath", "file_path")


def _named_as_asked(header: list[str], columns: tuple[str, ...]) -> list[str]:
    """The header with a column named in another case (``Text``, ``Label``) renamed to the
    name asked for, when it is the only such column (`rnnkit.data.dialect.column_index`)."""
    header = list(header)
    for column in columns:
        index = column_index(header, column)
        if index is not None:
            header[index] = column
    return header


def _audio_file(manifest: Path, value: str, where: str) -> str:
    """The path of a manifest row's file, relative to the manifest's folder; it must exist."""
    file = Path(value)
    if not file.is_absolute():
        file = manifest.parent / file
    if "\\" in value and not file.is_file():  # a manifest written on Windows: audio\a.wav
        return _audio_file(manifest, value.replace("\\", "/"), where)
    if value and not file.is_file():  # written where case does not matter: Audio/A.WAV
        file = _in_any_case(file) or file
    if not value or not file.is_file():
        hint = ""
        if value and not Path(value).is_absolute():
            hint = f" (a relative path is read from the manifest's folder {str(manifest.parent)!r}"
            hint += (
                f"; {value!r} exists from the current folder: write it relative to the "
                "manifest's folder, or absolute)"
                if Path(value).is_file()
                else ")"
            )
        raise InputError(f"{where}: no such audio file {str(file)!r}{hint}")
    if file.suffix.lower() != ".wav":
        raise InputError(f"{where}: {str(file)!r} is not a .wav file; expected WAV audio")
    return str(file)


def _in_any_case(file: Path) -> Path | None:
    """The one existing file whose path differs from ``file`` only in case (a manifest written
    on Windows or macOS, whose disks ignore case, read where they do not); else None."""
    found = Path(file.anchor) if file.is_absolute() else Path()
    for part in file.parts[1:] if file.is_absolute() else file.parts:
        if (found / part).exists() or part in (".", ".."):
            found = found / part
            continue
        try:
            same = [p for p in found.iterdir() if p.name.lower() == part.lower()]
        except OSError:
            return None
        if len(same) != 1:
            return None
        found = same[0]
    return found if found.is_file() else None


def _read_folder(path: Path, what: str) -> Labelled:
    name = repr(str(path))
    folders = sorted(p for p in path.iterdir() if p.is_dir() and not hidden(p.name))
    if not folders:
        raise InputError(
            f"{what}: folder {name} has no subfolders; expected one subfolder per label holding "
            ".txt files with one example per line"
        )
    texts, labels, where = [], [], []
    wavs = [p for f in folders for p in visible_files(f) if p.suffix.lower() == ".wav"]
    # audio, one folder per label (a notes.txt beside the recordings does not make it text)
    if wavs and len(wavs) >= sum(_is_txt(p) for f in folders for p in visible_files(f)):
        for file in wavs:
            texts.append(str(file))
            labels.append(file.relative_to(path).parts[0])
            where.append(repr(str(file)))
        return Labelled(texts, labels, where, str(path), audio=True)
    for folder in folders:
        for file in (p for p in visible_files(folder) if _is_txt(p)):
            for number, line in enumerate(lines_of(decode_utf8(file, what)), start=1):
                if line.strip():
                    texts.append(line)
                    labels.append(folder.name)
                    where.append(f"{str(file)!r} line {number}")
    if not texts:
        raise InputError(
            f"{what}: folder {name} holds no examples; expected .txt files with one example "
            "per line (or .wav files) in its subfolders (one per label)"
        )
    return Labelled(texts, labels, where, str(path))


def _is_txt(path: Path) -> bool:
    """A text file of examples: ``.txt`` in any case (``notes.TXT`` too)."""
    return path.suffix.lower() == ".txt" and path.is_file()


def check_classes(data: Labelled, what: str = "data") -> None:
    """At least two classes, or one line naming the file."""
    counts = Counter(data.labels)
    if len(counts) < 2:
        label = next(iter(counts))
        raise InputError(
            f"{what}: {data.source!r} has one class only ({len(data)} examples labelled "
            f"{label!r}, e.g. {data.where[0]}); expected at least two labels"
        )


def check_known_labels(data: Labelled, classes: list[str], what: str = "data") -> None:
    """Every label of ``data`` is one the model knows, or one line naming the first other."""
    known = set(classes)
    for label, where in zip(data.labels, data.where, strict=True):
        if label not in known:
            raise InputError(
                f"{what}: {where} has the label {label!r}, which the model never saw; "
                f"expected one of {classes[:10]}"
            )


def stratified_split(
    labels: list, fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a training and a held-out part, ``fraction`` of each class held out (at
    least one example of a class with two or more), in a random order fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray([str(x) for x in labels])
    held: list[int] = []
    for label in sorted(set(labels_arr.tolist())):
        members = np.flatnonzero(labels_arr == label)
        rng.shuffle(members)
        n = int(round(fraction * len(members)))
        if len(members) >= 2:
            n = max(n, 1)
        held.extend(members[:n].tolist())
    mask = np.zeros(len(labels_arr), dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def stratified_folds(labels: list, k: int, seed: int = 0) -> list[np.ndarray]:
    """``k`` disjoint held-out index sets covering every example, each class dealt round-robin
    over the folds in a random order fixed by ``seed`` (scikit-learn's ``StratifiedKFold``
    with shuffling, in spirit). Every class needs at least ``k`` examples."""
    labels_arr = np.asarray([str(x) for x in labels])
    counts = Counter(labels_arr.tolist())
    if k < 2:
        raise InputError(f"--cv: expected at least 2 folds, got {k}")
    label, fewest = min(counts.items(), key=lambda kv: (kv[1], kv[0]))
    if fewest < k:
        raise InputError(
            f"--cv {k}: the class {label!r} has {fewest} example(s); expected at least {k} "
            "per class (use a smaller --cv)"
        )
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels_arr), dtype=np.int64)
    start = 0  # rotate where each class starts, so the folds differ in size by at most one
    for label in sorted(counts):
        members = np.flatnonzero(labels_arr == label)
        rng.shuffle(members)
        fold_of[members] = (start + np.arange(len(members))) % k
        start = (start + len(members)) % k
    return [np.flatnonzero(fold_of == f) for f in range(k)]
