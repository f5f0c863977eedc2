"""The standing suite of bad input: every command, every case issue 18 found, one table.

Each row is a command line a user could type, the exit status and the one line on stderr a
trustworthy tool gives, and the files that must come out of it byte for byte unchanged. New
tasks add their rows here (bad paths, damaged files, impossible options), so the guarantees
hold for every command: no file destroyed, no traceback for a user's mistake, no silent wrong
result. Finer tests of each guarantee live next to it: tests/test_reliability_train.py,
test_reliability_stream.py, test_reliability_api.py, test_reliability_properties.py.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import rnnkit
from rnnkit.cli import main
from rnnkit.files import digest

TEXT = (
    "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 30
)
TINY = ["--hidden", "8", "--layers", "1", "--embedding", "4", "--batch", "2", "--bptt", "8"]
TINY += ["--eval-every", "5", "--sample", "0"]


@dataclass
class Files:
    """The files a case runs on, made fresh in its own folder."""

    root: Path
    made: dict[str, Path] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Path:
        return self.made[name]

    def text(self, name: str, data: str | bytes) -> Path:
        path = self.root / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        self.made[name] = path
        return path


def _run(argv: list[str], capsys, stdin: str = "") -> tuple[int, str]:
    """Exit status and stderr of ``rnnkit argv`` run in this process."""
    import sys

    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own errors
            code = int(exc.code or 0)
    finally:
        sys.stdin = old
    return code, capsys.readouterr().err


def _train(f: Files, *extra: str, out: str = "lm.safetensors") -> list[str]:
    return ["train", "lm", "--text", str(f["t.txt"]), *TINY, "--out", str(f.root / out), *extra]


def _trained(f: Files, capsys, *extra: str) -> Path:
    """A small language-model checkpoint (and its .last) trained for a few steps."""
    code, err = _run(_train(f, "--steps", "6", *extra), capsys)
    assert code == 0, err
    return f.root / "lm.safetensors"


LABELLED = "text,label\n" + "a fine film,pos\na dull film,neg\n" * 20


def _classify(f: Files, train: Path, out: str = "c.safetensors") -> list[str]:
    return ["train", "classify", "--train", str(train), "--out", str(f.root / out), "--epochs", "1"]


def _classifier_trained(f: Files, capsys) -> None:
    """A classifier trained into ``c.safetensors`` (and its ``.last``), both registered."""
    _run(_classify(f, f.text("l.csv", LABELLED)), capsys)
    for name in ("c.safetensors", "c.last.safetensors"):
        f.made[name] = f.root / name


CHORALES = '{"train": [[[60, 64], [62, 65], [64, 67]], [[60], [59, 62], [60, 64]]], ' + (
    '"valid": [[[60, 64], [62, 65]]], "test": [[[64, 67], [60, 64]]]}'
)


def _music(f: Files, data: Path, out: str = "m.safetensors") -> list[str]:
    argv = ["train", "music", "--data", str(data), "--out", str(f.root / out)]
    return [*argv, "--hidden", "4", "--epochs", "1"]


def _music_trained(f: Files, capsys) -> Path:
    """A tiny music model trained for one epoch into ``m.safetensors``."""
    code, err = _run(_music(f, f.text("jsb.json", CHORALES)), capsys)
    assert code == 0, err
    return f.root / "m.safetensors"


def _with(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag``'s value replaced (or the flag added)."""
    if flag not in argv:
        return [*argv, flag, value]
    i = argv.index(flag)
    return [*argv[: i + 1], value, *argv[i + 2 :]]


def _flip_data_byte(path: Path) -> None:
    """Flip one byte in the tensor data of a safetensors file (after its JSON header)."""
    data = bytearray(path.read_bytes())
    n = int.from_bytes(data[:8], "little")
    data[8 + n + (len(data) - 8 - n) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _reseal(path: Path, edit: Callable[[dict[str, str]], None]) -> None:
    """Rewrite a checkpoint's metadata with ``edit`` and a valid checksum (a deliberate edit, to
    reach the checks behind the checksum)."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="numpy") as fh:
        meta = dict(fh.metadata())
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    edit(meta)
    meta["checksum"] = digest(tensors, meta)
    save_file(tensors, str(path), metadata=meta)


def _truncate_vocab(meta: dict[str, str]) -> None:
    import json

    extra = json.loads(meta["extra"])
    extra["vocab"] = extra["vocab"][:3]
    meta["extra"] = json.dumps(extra)


SERIES = "timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,2\n"


def _detect(f: Files, text: str) -> list[str]:
    return ["detect", "--csv", str(f.text("s.csv", text)), "--out", str(f.root / "scores.csv")]


def _wav(f: Files, name: str, seconds: float = 0.3) -> Path:
    """A short 16-bit WAV file of a tone (speech commands' input)."""
    from scipy.io import wavfile

    t = np.arange(int(8000 * seconds)) / 8000
    path = f.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, 8000, (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16))
    f.made[name] = path
    return path


def _manifest(f: Files, name: str, rows: str) -> list[str]:
    _wav(f, "a.wav")
    return ["train", "transcribe", "--train", str(f.text(name, rows)), "--epochs", "1"] + [
        "--out",
        str(f.root / "t.safetensors"),
    ]


def _classify_audio(f: Files) -> list[str]:
    """``train classify`` on a folder per label of WAV files."""
    for name in ("w/low/a.wav", "w/low/b.wav", "w/high/a.wav", "w/high/b.wav"):
        _wav(f, name)
    out = str(f.root / "c.safetensors")
    return ["train", "classify", "--train", str(f.root / "w"), "--epochs", "1", "--out", out]


def _classify_manifest(f: Files, rows: str) -> list[str]:
    """``train classify`` on a manifest of WAV files (``a.wav``, ``b.wav``)."""
    for name in ("a.wav", "b.wav"):
        _wav(f, name)
    out = str(f.root / "c.safetensors")
    return ["train", "classify", "--train", str(f.text("m.csv", rows)), "--epochs", "1",
            "--out", out]  # fmt: skip


def _classify_text(f: Files) -> list[str]:
    """``train classify`` on a CSV of texts."""
    rows = "text,label\n" + "".join(f"good {i},pos\nbad {i},neg\n" for i in range(6))
    out = str(f.root / "c.safetensors")
    return ["train", "classify", "--train", str(f.text("c.csv", rows)), "--epochs", "1",
            "--out", out]  # fmt: skip


# -- the table -------------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    argv: Callable[[Files, object], list[str]]  # the command, given the files (and capsys)
    status: int
    message: str  # a piece of the one stderr line
    intact: tuple[str, ...] = ()  # files that must be unchanged
    stdin: str = ""


CASES = [
    # files destroyed or lost work
    Case(
        "out is the training text",
        lambda f, c: _train(f, "--steps", "3", out="t.txt"),
        2,
        "is also an input of this run",
        intact=("t.txt",),
    ),
    Case(
        "out is a file that is not a checkpoint",
        lambda f, c: _train(f, "--steps", "3", out="notes.txt"),
        2,
        "exists and is not an rnnkit checkpoint file",
        intact=("notes.txt",),
    ),
    Case(
        "out is a folder",
        lambda f, c: _train(f, "--steps", "3", out="sub"),
        2,
        "is a folder",
    ),
    Case(
        "out under /sys",
        lambda f, c: _with(_train(f, "--steps", "3"), "--out", "/sys/x.safetensors"),
        2,
        "cannot write in '/sys'",
    ),
    Case(
        "out under /proc",
        lambda f, c: _with(_train(f, "--steps", "3"), "--out", "/proc/x/y.safetensors"),
        2,
        "--out",
    ),
    Case(
        "stream state in a folder that cannot exist",
        lambda f, c: ["stream", str(f["gru.safetensors"]), "--state", "/proc/nodir/x.state"],
        2,
        "--state",
        stdin="1,2,3\n",
    ),
    Case(
        "stream state onto a text file",
        lambda f, c: ["stream", str(f["gru.safetensors"]), "--state", str(f["notes.txt"])],
        2,
        "notes.txt",
        intact=("notes.txt",),
        stdin="1,2,3\n",
    ),
    Case(
        "translation pairs file is the out",
        lambda f, c: [
            "train",
            "translate",
            "--pairs",
            str(f.text("p.tsv", "Go.\tVa !\nHi.\tSalut.\n")),
            "--out",
            str(f["p.tsv"]),
        ],
        2,
        "is also an input of this run",
        intact=("p.tsv",),
    ),
    Case(
        "translation pairs without a tab",
        lambda f, c: [
            "train",
            "translate",
            "--pairs",
            str(f.text("np.txt", "no tabs here\n")),
            "--out",
            str(f.root / "m.safetensors"),
        ],
        2,
        "np.txt' line 1 has no tab",
    ),
    Case(
        "detect on an unknown engine",
        lambda f, c: [*_detect(f, SERIES), "--engine", "spark"],
        2,
        "--engine",
    ),
    Case(
        "music with negative weight noise",
        lambda f, c: [*_music(f, f.text("jsb.json", CHORALES)), "--weight-noise", "-1"],
        2,
        "--weight-noise",
    ),
    # silent wrong results
    Case(
        "divergence during warm-up",
        lambda f, c: _train(f, "--steps", "30", "--lr", "1e6", "--warmup", "50"),
        1,
        "diverged",
    ),
    Case(
        "resume with another text",
        lambda f, c: (
            _trained(f, c),
            _with(_train(f, "--steps", "6", "--resume"), "--text", str(f.text("u", TEXT[::-1]))),
        )[1],
        2,
        "--text",
    ),
    Case(
        "resume with a longer budget",
        lambda f, c: (_trained(f, c), _train(f, "--steps", "12", "--resume"))[1],
        2,
        "--steps",
    ),
    Case(
        "resume with another batch",
        lambda f, c: (_trained(f, c), _with(_train(f, "--steps", "6", "--resume"), "--batch", "3"))[
            1
        ],
        2,
        "--batch",
    ),
    Case(
        "flipped byte in a checkpoint",
        lambda f, c: (
            _flip_data_byte(_trained(f, c)),
            ["generate", str(f.root / "lm.safetensors"), "--length", "5"],
        )[1],
        2,
        "damaged",
    ),
    Case(
        "flipped byte in a stream state",
        lambda f, c: (
            _flip_data_byte(f["gru.state"]),
            ["stream", str(f["gru.safetensors"]), "--state", str(f["gru.state"])],
        )[1],
        2,
        "gru.state",
        intact=("gru.state",),
        stdin="1,2,3\n",
    ),
    Case(
        "checkpoint of a future format",
        lambda f, c: (
            _reseal(_trained(f, c), lambda m: m.update(format_version="99")),
            ["generate", str(f.root / "lm.safetensors"), "--length", "5"],
        )[1],
        2,
        "format version '99'",
    ),
    Case(
        "validation text in another alphabet",
        lambda f, c: _train(f, "--steps", "3", "--valid", str(f.text("greek.txt", "αβγδ" * 99))),
        0,
        "rnnkit: warning:",
    ),
    Case(
        "prime the model never saw",
        lambda f, c: ["generate", str(_trained(f, c)), "--prime", "ΩΨ", "--length", "5"],
        0,
        "rnnkit: warning:",
    ),
    # tracebacks instead of errors
    Case(
        "a 298 GiB model",
        lambda f, c: _with(_train(f, "--steps", "3"), "--hidden", "100000"),
        2,
        "--hidden",
    ),
    Case(
        "truncated vocabulary metadata",
        lambda f, c: (
            _reseal(_trained(f, c), _truncate_vocab),
            ["generate", str(f.root / "lm.safetensors"), "--length", "5"],
        )[1],
        2,
        "vocab",
    ),
    Case(
        "negative warm-up", lambda f, c: _train(f, "--steps", "3", "--warmup", "-1"), 2, "--warmup"
    ),
    # text classification
    Case(
        "classify: out is the training file",
        lambda f, c: _classify(f, f.text("l.csv", LABELLED), out="l.csv"),
        2,
        "is also an input of this run",
        intact=("l.csv",),
    ),
    Case(
        "classify: a ragged row",
        lambda f, c: _classify(f, f.text("r.csv", LABELLED + "one,two,three\n")),
        2,
        "line 42",
    ),
    Case(
        "classify: no label column",
        lambda f, c: _classify(f, f.text("n.csv", LABELLED.replace("label", "tag"))),
        2,
        "label",
    ),
    Case(
        "classify: one class only",
        lambda f, c: _classify(f, f.text("o.csv", LABELLED.replace(",neg", ",pos"))),
        2,
        "class",
    ),
    Case(
        "classify: not UTF-8",
        lambda f, c: _classify(f, f.text("u.csv", LABELLED.encode() + b"caf\xe9,pos\n")),
        2,
        "u.csv",
    ),
    Case(
        "classify: one fold",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--cv", "1"],
        2,
        "--cv",
    ),
    Case(
        "classify: --vtlp out of range",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--vtlp", "0.7"],
        2,
        "[0, 0.5)",
    ),
    Case(
        "classify: --speed out of range",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--speed", "0.7"],
        2,
        "--speed: expected a number in [0, 0.5), got '0.7'",
    ),
    Case(
        "classify: an unknown --features",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--features", "plp"],
        2,
        "argument --features: invalid choice: 'plp'",
    ),
    Case(
        "classify: --features on text",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--features", "logmel"],
        2,
        "--features: chooses audio features; --train holds text",
    ),
    Case(
        "classify: --cepstra of 0",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--cepstra", "0"],
        2,
        "--cepstra: expected a positive integer",
    ),
    Case(
        "classify: --cepstra on text",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--cepstra", "10"],
        2,
        "--cepstra: chooses audio features; --train holds text",
    ),
    Case(
        "classify: --mixup out of range",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--mixup", "11"],
        2,
        "--mixup: expected a number in [0, 10], got '11'",
    ),
    Case(
        "classify: --ema out of range",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--ema", "1"],
        2,
        "--ema: expected a number in [0, 1), got '1'",
    ),
    Case(
        "classify: --ensemble 0",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--ensemble", "0"],
        2,
        "--ensemble: expected a positive integer, got '0'",
    ),
    Case(
        "classify: --ensemble not an integer",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--ensemble", "2.5"],
        2,
        "--ensemble: expected a positive integer, got '2.5'",
    ),
    Case(
        "classify: --tta-warps even",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--tta-warps", "4"],
        2,
        "--tta-warps: expected an odd integer >= 1, got '4'",
    ),
    Case(
        "classify: --tta-vtlp out of range",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--tta-vtlp", "0.7"],
        2,
        "--tta-vtlp: expected a number in [0, 0.5), got '0.7'",
    ),
    Case(
        "classify: test-time VTLP on text",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--tta-vtlp", "0.1"],
        2,
        "--tta-vtlp: warps audio at prediction; --train holds text",
    ),
    Case(
        "classify: --tta-pick unknown",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--tta-pick", "median"],
        2,
        "argument --tta-pick: invalid choice: 'median'",
    ),
    Case(
        "classify: --tta-pick on text",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--tta-pick", "confident"],
        2,
        "--tta-pick: picks among warped audio views; --train holds text",
    ),
    Case(
        "classify: --pooling unknown",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--pooling", "meanmaxx"],
        2,
        "argument --pooling: invalid choice: 'meanmaxx'",
    ),
    Case(
        "classify: --label-smoothing out of range",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--label-smoothing", "1.5"],
        2,
        "--label-smoothing: expected a number in [0, 1), got '1.5'",
    ),
    Case(
        "translate: a negative --weight-decay",
        lambda f, c: [
            "train",
            "translate",
            "--pairs",
            str(f.text("p.tsv", "Go.\tVa !\nHi.\tSalut.\n")),
            "--out",
            str(f.root / "m.safetensors"),
            "--weight-decay",
            "-1",
        ],
        2,
        "--weight-decay: expected a finite number >= 0, got '-1'",
    ),
    Case(
        "translate: --label-smoothing out of range",
        lambda f, c: [
            "train",
            "translate",
            "--pairs",
            str(f.text("p.tsv", "Go.\tVa !\nHi.\tSalut.\n")),
            "--out",
            str(f.root / "m.safetensors"),
            "--label-smoothing",
            "1.5",
        ],
        2,
        "--label-smoothing: expected a probability in [0, 1), got '1.5'",
    ),
    Case(
        "classify: an audio augmentation on text",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--vtlp", "0.1"],
        2,
        "augments audio",
    ),
    Case(
        "transcribe: unknown --units",
        lambda f, c: [*_manifest(f, "m.csv", "path,transcript\na.wav,one\n"), "--units", "x"],
        2,
        "--units",
    ),
    Case(
        "transcribe: unknown --select",
        lambda f, c: [*_manifest(f, "m.csv", "path,transcript\na.wav,one\n"), "--select", "bleu"],
        2,
        "--select",
    ),
    Case(
        "transcribe: an even --warps",
        lambda f, c: [*_manifest(f, "m.csv", "path,transcript\na.wav,one\n"), "--warps", "2"],
        2,
        "--warps: expected an odd number >= 1, got '2'",
    ),
    Case(
        "transcribe: a negative number of masks",
        lambda f, c: [*_manifest(f, "m.csv", "path,transcript\na.wav,one\n"), "--time-masks", "-1"],
        2,
        "--time-masks",
    ),
    Case(
        "classify: resume without a saved run",
        lambda f, c: [*_classify(f, f.text("l.csv", LABELLED)), "--resume"],
        2,
        "no checkpoint",
    ),
    Case(
        "classify: resume with other data",
        lambda f, c: (
            _classifier_trained(f, c),
            [*_classify(f, f.text("l2.csv", LABELLED + LABELLED.splitlines()[1])), "--resume"],
        )[1],
        2,
        "training data has changed",
        intact=("c.safetensors", "c.last.safetensors"),
    ),
    Case(
        "evaluate: plot onto a file rnnkit did not write",
        lambda f, c: (
            _run(_classify(f, f.text("l.csv", LABELLED)), c),
            ["evaluate", str(f.root / "c.safetensors"), "--test", str(f["l.csv"])]
            + ["--plot", str(f["notes.txt"])],
        )[1],
        2,
        "not an rnnkit png file",
        intact=("notes.txt",),
    ),
    Case(
        "predict: explain without attention",
        lambda f, c: (
            _run(_classify(f, f.text("l.csv", LABELLED)), c),
            ["predict", str(f.root / "c.safetensors"), "--explain", str(f.root / "a.png")],
        )[1],
        2,
        "attention",
        stdin="a fine film\n",
    ),
    # rnnkit detect
    Case(
        "detect: no value column",
        lambda f, c: _detect(f, "timestamp,val\n2014-01-01 00:00:00,1\n"),
        2,
        "no column 'value' in the header",
    ),
    Case(
        "detect: a value that is not a number",
        lambda f, c: _detect(f, SERIES + "2014-01-01 00:10:00,abc\n"),
        2,
        "row 4, column 'value': expected a finite number, got 'abc'",
    ),
    Case(
        "detect: NaN",
        lambda f, c: _detect(f, SERIES + "2014-01-01 00:10:00,nan\n"),
        2,
        "row 4, column 'value': expected a finite number, got 'nan'",
    ),
    Case(
        "detect: timestamps out of order",
        lambda f, c: _detect(f, SERIES + "2014-01-01 00:01:00,3\n"),
        2,
        "row 4, column 'timestamp': timestamp '2014-01-01 00:01:00' comes before",
    ),
    Case(
        "detect: dates day first and month first in one column",
        lambda f, c: _detect(f, "timestamp,value\n13/01/2024,1\n01/14/2024,2\n"),
        2,
        "column 'timestamp': dates written day first ('13/01/2024') and month first",
    ),
    Case(
        "detect: a repeated timestamp",
        lambda f, c: _detect(f, SERIES + "2014-01-01 00:05:00,3\n"),
        2,
        "repeats the previous one",
    ),
    Case(
        "detect: an unknown --time-order",
        lambda f, c: [*_detect(f, SERIES), "--time-order", "sorted"],
        2,
        "argument --time-order: invalid choice: 'sorted'",
    ),
    Case(
        "detect: a negative --learn-every",
        lambda f, c: [*_detect(f, SERIES), "--learn-every", "-1"],
        2,
        "--learn-every: expected 0 (fixed) or a positive row count, got -1",
    ),
    Case(
        "detect: --network-weight above 1",
        lambda f, c: [*_detect(f, SERIES), "--network-weight", "1.5"],
        2,
        "--network-weight: expected a weight in (0, 1], got 1.5",
    ),
    Case(
        "detect: an unknown --surprise",
        lambda f, c: [*_detect(f, SERIES), "--surprise", "median"],
        2,
        "argument --surprise: invalid choice: 'median'",
    ),
    Case(
        "detect: an unknown --transform",
        lambda f, c: [*_detect(f, SERIES), "--transform", "log"],
        2,
        "argument --transform: invalid choice: 'log'",
    ),
    Case(
        "detect: --short-window of 0 rows",
        lambda f, c: [*_detect(f, SERIES), "--short-window", "0"],
        2,
        "--short-window: expected a positive row count, got 0",
    ),
    Case(
        "detect: a negative --long-window",
        lambda f, c: [*_detect(f, SERIES), "--long-window", "-5"],
        2,
        "--long-window: expected a positive row count, got -5",
    ),
    Case(
        "detect: --learn-steps of 0",
        lambda f, c: [*_detect(f, SERIES), "--learn-steps", "0"],
        2,
        "--learn-steps: expected a positive count, got 0",
    ),
    Case(
        "detect: --learn-lr of 0",
        lambda f, c: [*_detect(f, SERIES), "--learn-lr", "0"],
        2,
        "--learn-lr: expected a positive learning rate, got 0.0",
    ),
    Case(
        "detect: --season that is not a period",
        lambda f, c: [*_detect(f, SERIES), "--season", "daily"],
        2,
        "argument --season: expected 'auto' or a period in rows (0: none), got 'daily'",
    ),
    Case(
        "detect: a value given to the flag --level-log",
        lambda f, c: [*_detect(f, SERIES), "--level-log", "yes"],
        2,
        "unrecognized arguments: yes",
    ),
    Case(
        "detect: --season-rise=no (a flag; --no-season-rise)",
        lambda f, c: [*_detect(f, SERIES), "--season-rise=no"],
        2,
        "argument --season-rise/--no-season-rise: ignored explicit argument 'no'",
    ),
    Case(
        "detect: no members",
        lambda f, c: [*_detect(f, SERIES), "--members", "0"],
        2,
        "--members: expected a positive count, got 0",
    ),
    Case(
        "detect: a negative --range-check",
        lambda f, c: [*_detect(f, SERIES), "--range-check", "-0.1"],
        2,
        "--range-check: expected 0 or more, or off, got -0.1",
    ),
    Case(
        "detect: a negative --familiar",
        lambda f, c: [*_detect(f, SERIES), "--familiar", "-0.1"],
        2,
        "--familiar: expected a positive share of the range, or off, got -0.1",
    ),
    Case(
        "detect: --familiar-jump of 0",
        lambda f, c: [*_detect(f, SERIES), "--familiar-jump", "0"],
        2,
        "--familiar-jump: expected a positive share of the range, got 0.0",
    ),
    Case(
        "detect: --echo of 0",
        lambda f, c: [*_detect(f, SERIES), "--echo", "0"],
        2,
        "--echo: expected a positive number of standard deviations, or off, got 0.0",
    ),
    Case(
        "detect: an --echo that is not a number",
        lambda f, c: [*_detect(f, SERIES), "--echo", "loud"],
        2,
        "argument --echo: invalid float value: 'loud'",
    ),
    Case(
        "detect: a negative --resolution",
        lambda f, c: [*_detect(f, SERIES), "--resolution", "-0.2"],
        2,
        "--resolution: expected a positive share of the range, or off, got -0.2",
    ),
    Case(
        "detect: a --network-resolution of 0",
        lambda f, c: [*_detect(f, SERIES), "--network-resolution", "0"],
        2,
        "--network-resolution: expected a positive share of the range, or off, got 0.0",
    ),
    Case(
        "detect: a --familiar that is not a number",
        lambda f, c: [*_detect(f, SERIES), "--familiar", "wide"],
        2,
        "argument --familiar: invalid float value: 'wide'",
    ),
    Case(
        "detect: --alarm above 1",
        lambda f, c: [*_detect(f, SERIES), "--alarm", "2"],
        2,
        "--alarm: expected a score in (0, 1], or off, got 2.0",
    ),
    Case(
        "detect: --rest that is not a number",
        lambda f, c: [*_detect(f, SERIES), "--rest", "long"],
        2,
        "argument --rest: invalid int value: 'long'",
    ),
    Case(
        "detect: out is a file rnnkit did not write",
        lambda f, c: [*_detect(f, SERIES)[:-1], str(f["notes.txt"])],
        2,
        "exists and is not an rnnkit scores file",
        intact=("notes.txt",),
    ),
    Case(
        "detect: a bad line on the stream",
        lambda f, c: ["detect", "--stream"],
        2,
        "stdin line 2, column 'value'",
        stdin="2014-01-01 00:00:00,1\n2014-01-01 00:05:00,x\n",
    ),
    Case(
        "detect: day-first then month-first dates on the stream",
        lambda f, c: ["detect", "--stream"],
        2,
        "stdin line 2, column 'timestamp': '02/13/2024' is not a date written day first",
        stdin="31/01/2024,1\n02/13/2024,2\n",
    ),
    # music
    Case(
        "music: JSON of the wrong shape",
        lambda f, c: _music(f, f.text("w.json", '{"train": [[60, 64, 67]]}')),
        2,
        "w.json' train[0] step 0: expected a list of MIDI pitches",
    ),
    Case(
        "music: a pitch off the keyboard",
        lambda f, c: _music(f, f.text("p.json", CHORALES.replace("[59, 62]", "[59, 120]"))),
        2,
        "pitch 120 is outside the piano",
    ),
    Case(
        "music: an empty MIDI file",
        lambda f, c: _music(f, f.text("e.mid", b"")),
        2,
        "e.mid' is not a readable MIDI file",
    ),
    Case(
        "music: out is the data",
        lambda f, c: _music(f, f.text("jsb.json", CHORALES), out="jsb.json"),
        2,
        "is also an input of this run",
        intact=("jsb.json",),
    ),
    Case(
        "generate: --midi with a language model",
        lambda f, c: ["generate", str(_trained(f, c)), "--midi", str(f.root / "o.mid")],
        2,
        "--midi applies to music models",
    ),
    Case(
        "generate: --midi onto a file rnnkit did not write",
        lambda f, c: ["generate", str(_music_trained(f, c)), "--midi", str(f["notes.txt"])],
        2,
        "not an rnnkit midi file",
        intact=("notes.txt",),
    ),
    Case(
        "generate: a corrupt MIDI prime",
        lambda f, c: [
            "generate",
            str(_music_trained(f, c)),
            "--prime",
            str(f.text("c.mid", b"MThd\x00\x00\x00\x06garbage")),
        ],
        2,
        "c.mid' is not a readable MIDI file",
    ),
    Case(
        "generate: --top-k with a music model",
        lambda f, c: ["generate", str(_music_trained(f, c)), "--top-k", "3"],
        2,
        "--top-k applies to language models",
    ),
    # speech (issue 22)
    Case(
        "classify: audio manifest row to a missing file",
        lambda f, c: (
            _wav(f, "a.wav"),
            _classify(f, f.text("m.csv", "path,label\na.wav,x\nb.wav,y\n")),
        )[1],
        2,
        "line 3: no such audio file",
    ),
    Case(
        "classify: a .wav that is not WAV",
        lambda f, c: (
            _wav(f, "x/one/a.wav"),
            _wav(f, "x/two/b.wav").write_text("plain text"),
            _classify(f, f.root / "x"),
        )[2],
        2,
        "is not a WAV file",
    ),
    Case(
        "train transcribe: a manifest of text, not audio",
        lambda f, c: _manifest(f, "m.csv", "text,transcript\nhello,one\n"),
        2,
        "not a manifest of audio files",
    ),
    Case(
        "train transcribe: empty WAV file",
        lambda f, c: (f.text("e.wav", b""), _manifest(f, "m.csv", "path,transcript\ne.wav,one\n"))[
            1
        ],
        2,
        "is empty",
    ),
    Case(
        "transcribe: not a transcriber",
        lambda f, c: ["transcribe", str(f["gru.safetensors"]), str(_wav(f, "a.wav"))],
        2,
        "holds no transcriber",
    ),
    Case(
        "stream --audio: not a transcriber",
        lambda f, c: ["stream", str(f["gru.safetensors"]), "--audio", str(_wav(f, "a.wav"))],
        2,
        "holds no transcriber",
    ),
    Case(
        "data fsdd: no recordings folder",
        lambda f, c: ["data", "fsdd", "--recordings", str(f.root / "none"), "--out", str(f.root)],
        2,
        "no such folder",
    ),
    Case(
        "data fsdd: --test-strings 0",
        lambda f, c: ["data", "fsdd", "--test-strings", "0", "--out", str(f.root)],
        2,
        "--test-strings",
    ),
    Case(
        "data fsdd: --gain -3",
        lambda f, c: ["data", "fsdd", "--gain", "-3", "--out", str(f.root)],
        2,
        "--gain",
    ),
    Case(
        "data fsdd: no --extra-recordings folder",
        lambda f, c: [
            "data",
            "fsdd",
            "--recordings",
            str(_wav(f, "rec/0_ann_0.wav").parent),
            "--test-speaker",
            "ann",
            "--extra-recordings",
            str(f.root / "none"),
            "--out",
            str(f.root / "out"),
        ],
        2,
        "--extra-recordings: no such folder",
    ),
    Case(
        "data fsdd: --extra-strings without --extra-recordings",
        lambda f, c: [
            "data",
            "fsdd",
            "--recordings",
            str(_wav(f, "rec/0_ann_0.wav").parent),
            "--test-speaker",
            "ann",
            "--extra-strings",
            "5",
            "--out",
            str(f.root / "out"),
        ],
        2,
        "--extra-strings: expected --extra-recordings too",
    ),
    Case(
        "data voices: --voices 0",
        lambda f, c: ["data", "voices", "--voices", "0", "--out", str(f.root / "v")],
        2,
        "--voices",
    ),
    Case(
        "data voices: unknown engine",
        lambda f, c: ["data", "voices", "--engines", "festival", "--out", str(f.root / "v")],
        2,
        "unknown engine 'festival'",
    ),
    Case(
        "voices: --tempo out of range",
        lambda f, c: ["data", "voices", "--tempo", "3", "--out", str(f.root / "v")],
        2,
        "--tempo: expected a factor in [0.5, 2], got '3'",
    ),
    Case(
        "train transcribe: --level -6",
        lambda f, c: [*_manifest(f, "m.csv", "path,transcript\na.wav,one\n"), "--level", "-6"],
        2,
        "--level",
    ),
    Case(
        "train transcribe: --prior-frames 0",
        lambda f, c: [
            *_manifest(f, "m.csv", "path,transcript\na.wav,one\n"),
            "--prior-frames",
            "0",
        ],
        2,
        "--prior-frames",
    ),
    Case(
        "train transcribe: --norm cmvn",
        lambda f, c: [*_manifest(f, "m.csv", "path,transcript\na.wav,one\n"), "--norm", "cmvn"],
        2,
        "argument --norm: invalid choice: 'cmvn'",
    ),
    Case(
        "train transcribe: --speed 0.7",
        lambda f, c: [*_manifest(f, "m.csv", "path,transcript\na.wav,one\n"), "--speed", "0.7"],
        2,
        "--speed: expected a number in [0, 0.5), got '0.7'",
    ),
    Case(
        "train transcribe: --noise-snr 30,5",
        lambda f, c: [
            *_manifest(f, "m.csv", "path,transcript\na.wav,one\n"),
            "--noise-snr",
            "30,5",
        ],
        2,
        "--noise-snr: expected LO,HI: two decibel values with LO <= HI (e.g. 5,30), got '30,5'",
    ),
    Case(
        "train transcribe: --noise-snr 10",
        lambda f, c: [*_manifest(f, "m.csv", "path,transcript\na.wav,one\n"), "--noise-snr", "10"],
        2,
        "--noise-snr: expected LO,HI",
    ),
    Case(
        "train classify: --reverb 0,1",
        lambda f, c: [*_classify_audio(f), "--reverb", "0,1"],
        2,
        "--reverb: expected LO,HI: reverberation times in seconds with 0 < LO <= HI <= 2",
    ),
    Case(
        "train classify: --reverb on text",
        lambda f, c: [*_classify_text(f), "--reverb", "0.1,0.3"],
        2,
        "--reverb: puts audio in a room; --train holds text (drop it)",
        intact=("c.csv",),
    ),
    Case(
        "train classify: --speaker-norm on a folder per label (no speakers)",
        lambda f, c: [*_classify_audio(f), "--speaker-norm"],
        2,
        "names no speakers (expected a manifest with a 'speaker' column: path,label,speaker)",
    ),
    Case(
        "train classify: --speaker-norm on text",
        lambda f, c: [*_classify_text(f), "--speaker-norm"],
        2,
        "--speaker-norm: normalises audio features; --train holds text (drop it)",
        intact=("c.csv",),
    ),
    Case(
        "train classify: --speaker-norm with the speaker as the label",
        lambda f, c: [
            *_classify_manifest(f, "path,label,speaker\na.wav,x,ann\nb.wav,y,bob\n"),
            "--speaker-norm",
            "--label-column",
            "speaker",
        ],
        2,
        "--speaker-norm: groups recordings by their 'speaker' column, which is the label here",
    ),
    Case(
        "train classify: a manifest row with an empty speaker",
        lambda f, c: _classify_manifest(f, "path,label,speaker\na.wav,x,ann\nb.wav,y,\n"),
        2,
        "line 3 has an empty 'speaker'; expected the recording's speaker (or drop the column)",
        intact=("m.csv",),
    ),
    Case(
        "train classify: a negative --weight-decay",
        lambda f, c: [*_classify_audio(f), "--weight-decay", "-1"],
        2,
        "--weight-decay: expected a finite number >= 0, got '-1'",
    ),
    Case(
        "train transcribe: --ensemble 0",
        lambda f, c: [*_manifest(f, "m.csv", "path,transcript\na.wav,one\n"), "--ensemble", "0"],
        2,
        "--ensemble: expected a positive integer, got '0'",
    ),
    Case(
        "train transcribe: --ensemble not an integer",
        lambda f, c: [*_manifest(f, "m.csv", "path,transcript\na.wav,one\n"), "--ensemble", "2.5"],
        2,
        "--ensemble: expected a positive integer, got '2.5'",
    ),
    Case(
        "train transcribe: unknown --combine",
        lambda f, c: [*_manifest(f, "m.csv", "path,transcript\na.wav,one\n"), "--combine", "max"],
        2,
        "--combine",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_line_and_destroys_nothing(case, tmp_path, capsys):
    f = Files(tmp_path)
    f.text("t.txt", TEXT)
    f.text("notes.txt", "my notes, not a checkpoint\n")
    (tmp_path / "sub").mkdir()
    gru = rnnkit.GRU(3, 4, seed=0)
    rnnkit.save(gru, tmp_path / "gru.safetensors")
    f.made["gru.safetensors"] = tmp_path / "gru.safetensors"
    stream = rnnkit.Stream(gru)
    stream.step(np.ones(3, np.float32))
    stream.save_state(tmp_path / "gru.state")
    f.made["gru.state"] = tmp_path / "gru.state"

    argv = case.argv(f, capsys)
    capsys.readouterr()  # what setting up printed
    before = {name: f[name].read_bytes() for name in case.intact}
    code, err = _run(argv, capsys, case.stdin)
    lines = [line for line in err.strip().splitlines() if line.startswith("rnnkit:")]
    assert code == case.status, err
    assert "Traceback" not in err, err
    assert any(case.message in line for line in lines), err
    if case.status == 2:
        assert len(err.strip().splitlines()) == 1, err
    for name, data in before.items():
        assert f[name].read_bytes() == data, f"{name} was changed"


def test_the_version_is_printed(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"rnnkit {rnnkit.__version__}"
