"""Issue 18 for `rnnkit stream`, `rnnkit generate` and `StreamPool`: a user's files are never
destroyed, no traceback after the work, no silent wrong answer, memory bounded, threads safe."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import rnnkit
import rnnkit.cli
from rnnkit.data.text import Vocabulary
from rnnkit.errors import RnnkitWarning
from rnnkit.files import digest
from rnnkit.models import LanguageModel
from rnnkit.signals import StopSignal
from rnnkit.tasks import streaming
from rnnkit.tasks.lm import generate, load_lm
from rnnkit.tasks.streaming import LineError, LineServer, serve

SRC = Path(rnnkit.__file__).resolve().parent.parent


# -- helpers ---------------------------------------------------------------------------------
def _gru(tmp_path: Path) -> tuple[rnnkit.GRU, Path]:
    layer = rnnkit.GRU(3, 4, seed=0)
    return layer, rnnkit.save(layer, tmp_path / "gru.safetensors")


def _lm(tmp_path: Path, text: str = "abc de\n", level: str = "char", **meta) -> Path:
    vocab = Vocabulary.build(text, level)
    model = LanguageModel(len(vocab), "lstm", 8, 1, 4, dropout=0.0, seed=0)
    metadata = {"task": "lm", "vocab": list(vocab.tokens), "level": level, **meta}
    return rnnkit.save(model, tmp_path / f"lm-{level}.safetensors", metadata=metadata)


def _cli(monkeypatch, capsys, *argv: str, stdin: str = "") -> tuple[int, str, str, io.StringIO]:
    """``rnnkit.cli.main`` in this process; the exit status, stdout, stderr and stdin used."""
    fake = io.StringIO(stdin)
    monkeypatch.setattr(sys, "stdin", fake)
    code = rnnkit.cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err, fake


def _lines(xs: np.ndarray) -> str:
    return "".join(",".join(f"{v:.3f}" for v in x) + "\n" for x in xs)


def _reseal(path: Path, edit) -> None:
    """Rewrite a checkpoint with its extra metadata changed by ``edit``, checksum recomputed."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="numpy") as fh:
        meta = dict(fh.metadata())
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    extra = json.loads(meta["extra"])
    edit(extra)
    meta["extra"] = json.dumps(extra)
    meta["checksum"] = digest(tensors, meta)
    save_file(tensors, str(path), metadata=meta)


# -- 1. --state is checked before any input is read -------------------------------------------
def test_state_in_an_impossible_folder_fails_before_reading_input(tmp_path, monkeypatch, capsys):
    _, model = _gru(tmp_path)
    (tmp_path / "afile").write_text("x")
    bad = tmp_path / "afile" / "x.state"  # its folder cannot exist: a file is in the way
    code, out, err, stdin = _cli(
        monkeypatch, capsys, "stream", str(model), "--state", str(bad), stdin="1,2,3\n"
    )
    assert code == 2 and out == "" and stdin.tell() == 0
    assert (
        err.startswith("rnnkit: error: --state: cannot create the folder") and err.count("\n") == 1
    )


def test_state_never_overwrites_a_file_that_is_not_a_state(tmp_path, monkeypatch, capsys):
    _, model = _gru(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    code, out, err, stdin = _cli(
        monkeypatch, capsys, "stream", str(model), "--state", str(notes), stdin="1,2,3\n"
    )
    assert code == 2 and stdin.tell() == 0 and notes.read_text() == "precious"
    assert "is not an rnnkit state file" in err and err.count("\n") == 1
    code, *_ = _cli(monkeypatch, capsys, "stream", str(model), "--state", str(model), stdin="")
    assert code == 2  # the checkpoint itself: an input of the run
    code, out, _, _ = _cli(
        monkeypatch, capsys, "stream", str(model), "--state", str(notes), "--force", stdin="1,2,3\n"
    )
    assert code == 0 and rnnkit.files.is_rnnkit_file(notes, "state")  # --force replaces it


def test_state_folder_is_created_and_the_state_resumes(tmp_path, monkeypatch, capsys):
    layer, model = _gru(tmp_path)
    xs = np.round(np.random.default_rng(0).standard_normal((5, 3)), 3).astype(np.float32)
    state = tmp_path / "new" / "dir" / "s.state"
    for part in (xs[:2], xs[2:]):
        code, *_ = _cli(
            monkeypatch, capsys, "stream", str(model), "--state", str(state), stdin=_lines(part)
        )
        assert code == 0
    expected = rnnkit.Stream(layer)
    expected.feed(xs)
    got = rnnkit.Stream(layer)
    got.load_state(state)
    np.testing.assert_allclose(got.state, expected.state, rtol=1e-6, atol=1e-6)


# -- 4. a damaged state is refused and kept --------------------------------------------------
def test_damaged_state_is_one_line_error_and_left_as_it_was(tmp_path, monkeypatch, capsys):
    _, model = _gru(tmp_path)
    state = tmp_path / "s.state"
    assert (
        _cli(monkeypatch, capsys, "stream", str(model), "--state", str(state), stdin="1,2,3\n")[0]
        == 0
    )
    data = bytearray(state.read_bytes())
    data[8 + int.from_bytes(data[:8], "little") + 2] ^= 0xFF  # a byte of the first array
    state.write_bytes(bytes(data))
    code, out, err, stdin = _cli(
        monkeypatch, capsys, "stream", str(model), "--state", str(state), stdin="4,5,6\n"
    )
    assert code == 2 and out == "" and stdin.tell() == 0
    assert str(state) in err and "damaged" in err and err.count("\n") == 1
    assert state.read_bytes() == bytes(data)


# -- 2. SIGTERM and SIGINT save the state ------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_after_the_line_and_saves_the_state(tmp_path, signum):
    layer, model = _gru(tmp_path)
    state = tmp_path / "s.state"
    xs = np.round(np.random.default_rng(1).standard_normal((3, 3)), 3).astype(np.float32)
    env = {**os.environ, "OPENBLAS_THREAD_TIMEOUT": "4", "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnkit.cli", "stream", str(model), "--state", str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(_lines(xs))
        proc.stdin.flush()
        answers = [proc.stdout.readline() for _ in xs]  # all three answered: now it waits
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, err
    name = signal.Signals(signum).name
    assert err == f"rnnkit stream: stopped by {name} after 3 lines; state saved to {str(state)!r}\n"
    expected = rnnkit.Stream(layer)
    np.testing.assert_allclose(
        [[float(v) for v in a.split(",")] for a in answers], expected.feed(xs), atol=1e-5
    )
    got = rnnkit.Stream(layer)
    got.load_state(state)
    np.testing.assert_allclose(got.state, expected.state, rtol=1e-6, atol=1e-6)


def test_a_stop_asked_during_a_line_is_taken_after_its_answer(tmp_path):
    _, model = _gru(tmp_path)
    stop = StopSignal()

    class Signalled(LineServer):  # the signal lands while the second line is answered
        def end(self) -> str:
            if self._chars[0].startswith("4"):
                stop._handle(signal.SIGTERM, None)
            return super().end()

    out, stdin = io.StringIO(), io.StringIO("1,2,3\n4,5,6\n7,8,9\n")
    report = serve(Signalled(model), stdin, out, io.StringIO(), stop=stop)
    assert report.lines == 2 and report.signal == signal.SIGTERM
    assert len(out.getvalue().splitlines()) == 2 and stdin.readline() == "7,8,9\n"  # unread


# -- 3. bounded memory -------------------------------------------------------------------------
def _reference_nll(model, vocab, lines):
    """Today's numbers: each line fed whole, log-probabilities of every step at once."""
    from rnnkit.losses import log_softmax

    stream, last, rows = rnnkit.Stream(model), None, []
    for line in lines:
        ids = vocab.encode(line + "\n")
        logp = log_softmax(stream.feed(ids).astype(np.float64))
        nll = [-logp[t, ids[t + 1]] for t in range(len(ids) - 1)]
        if last is not None:
            nll.insert(0, -last[ids[0]])
        last = logp[-1]
        rows.append(float(np.mean(nll)) if nll else None)
    return rows


@pytest.mark.parametrize("level", ["char", "word"])
def test_chunked_lines_score_as_whole_lines(tmp_path, monkeypatch, level):
    text = "the cat sat on the mat, then the dog ate it.\n"
    path = _lm(tmp_path, text, level)
    model, vocab = load_lm(path)
    lines = ["the cat sat on the mat", "", "then the dog ate the hat!", "mat" * 30]
    monkeypatch.setattr(streaming, "PIECE", 5)  # pieces cut words; chunks of 3 tokens
    chunked = LineServer(path)
    chunked.chunk_tokens = 3
    out = io.StringIO()
    serve(chunked, io.StringIO("\n".join(lines) + "\n"), out, io.StringIO())
    whole = LineServer(path)
    rows = [json.loads(r) for r in out.getvalue().splitlines()]
    assert [json.loads(whole.handle(line)) for line in lines] == rows
    for row, nll in zip(rows, _reference_nll(model, vocab, lines), strict=True):
        assert (row["nll"] is None) == (nll is None)
        assert nll is None or abs(row["nll"] - nll) < 1e-6
    assert [r["tokens"] for r in rows] == [len(vocab.split(line + "\n")) for line in lines]


def test_a_long_lm_line_is_read_in_bounded_memory(tmp_path):
    import tracemalloc

    text = "".join(chr(c) for c in range(32, 127)) + "\n"  # 96 symbols
    server = LineServer(_lm(tmp_path, text))
    line = ("the quick brown fox jumps over the lazy dog " * 4700)[:200_000] + "\n"
    tracemalloc.start()
    try:
        serve(server, io.StringIO(line), io.StringIO(), io.StringIO())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20  # whole-line logits alone would take 200k x 96 x 8 B = 154 MB


def test_an_overlong_numeric_line_is_an_error_for_that_line(tmp_path):
    _, model = _gru(tmp_path)
    server = LineServer(model)
    text = "1,2,3\n" + "9," * 500_000 + "9\n" + "4,5,6\n"
    out, err = io.StringIO(), io.StringIO()
    report = serve(server, io.StringIO(text), out, err, on_error="skip")
    assert report.lines == 2 and report.errors == 1
    assert err.getvalue() == (
        "rnnkit stream: line 2: expected 3 comma-separated numbers, got a line of "
        "1000001 characters\n"
    )
    with pytest.raises(LineError, match="line 1: expected 3 comma-separated numbers"):
        serve(LineServer(model), io.StringIO("1," * 100 + "\n"), out, err)


# -- 5. vocabulary metadata validated ---------------------------------------------------------
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(vocab=m["vocab"][:-2]), "has 5 tokens, expected 7"),
        (lambda m: m.update(vocab=[*m["vocab"][:-1], "a"]), "distinct tokens"),
        (lambda m: m.update(vocab=[*m["vocab"][:-1], 3]), "list of non-empty strings"),
        (lambda m: m.update(level="byte"), "expected level 'char' or 'word'"),
        (lambda m: m.pop("vocab"), "has no vocabulary"),
    ],
)
def test_bad_vocabulary_metadata_is_a_checkpoint_error(
    tmp_path, monkeypatch, capsys, edit, message
):
    path = _lm(tmp_path, "abcde\n")
    _reseal(path, edit)
    with pytest.raises(rnnkit.CheckpointError, match=message):
        LineServer(path)
    for argv in (["generate", str(path), "--length", "5"], ["stream", str(path)]):
        code, _, err, _ = _cli(monkeypatch, capsys, *argv, stdin="abc\n")
        assert code == 2 and message in err and str(path) in err and err.count("\n") == 1


# -- 6. unknown symbols are reported ---------------------------------------------------------
def test_generate_warns_about_prime_symbols_never_seen(tmp_path):
    model, vocab = load_lm(_lm(tmp_path, "abc de\n"))
    with pytest.warns(RnnkitWarning, match=r"2 symbols .*\('x', 'é'\).* unknown"):
        pieces = generate(model, vocab, "abxcé x", length=3, seed=0)  # warned when called
    assert len("".join(pieces)) >= 3
    many = "".join(chr(c) for c in range(0x400, 0x408))
    with pytest.warns(RnnkitWarning, match="8 symbols.* and 3 more"):
        generate(model, vocab, many, length=1)


def test_stream_counts_unknown_symbols_in_each_answer(tmp_path, monkeypatch, capsys):
    path = _lm(tmp_path, "abc de\n")
    code, out, _, _ = _cli(monkeypatch, capsys, "stream", str(path), stdin="abc\nabxyz é\n")
    rows = [json.loads(r) for r in out.splitlines()]
    assert code == 0 and [r["unknown"] for r in rows] == [0, 4]
    assert all({"tokens", "nll", "next", "p_next"} <= set(r) for r in rows)


def test_stream_reads_bytes_that_are_not_utf8_as_unknown(tmp_path, monkeypatch, capsys):
    path = _lm(tmp_path, "abc de\n")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"ab\xffc\n"), "utf-8"))
    assert rnnkit.cli.main(["stream", str(path)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["tokens"] == 5 and row["unknown"] == 1


# -- 7. StreamPool from several threads --------------------------------------------------------
def _x(sid: str, i: int) -> np.ndarray:
    seed = sum(map(ord, sid)) * 1000 + i
    return np.random.default_rng(seed).standard_normal(3).astype(np.float32)


def _pool_under_threads(layer, threads: int = 8, steps: int = 40) -> tuple[rnnkit.StreamPool, dict]:
    """Each thread steps its two streams, joining a stream at every step (the store grows
    while others step) and leaving every other one (slots are reused); a watcher thread reads
    and serialises states all along."""
    pool = rnnkit.StreamPool(layer)
    owners = {t: [f"{t}-{k}" for k in range(2)] for t in range(threads)}

    def work(t: int) -> None:
        for i in range(steps):
            pool.join(f"{t}-tmp-{i}")
            pool.step({sid: _x(sid, i) for sid in owners[t]})
            if i % 2:
                pool.leave(f"{t}-tmp-{i}")

    def watch(stop: threading.Event) -> None:
        probe = rnnkit.Stream(layer)
        while not stop.is_set():
            for sid in owners[0]:
                probe.state = pool.state(sid)
                rnnkit.Stream(layer).load_state_bytes(probe.state_bytes())

    for ids in owners.values():
        for sid in ids:
            pool.join(sid)
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(stop,))
    workers = [threading.Thread(target=work, args=(t,)) for t in owners]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    try:
        watcher.start()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        stop.set()
        watcher.join()
        sys.setswitchinterval(interval)
    return pool, owners


def test_pool_is_safe_across_threads():
    layer = rnnkit.LSTM(3, 6, 1, seed=0)  # two state parts: a torn store shows in either
    for _ in range(3):  # without the lock, most rounds lose some stream's steps
        pool, owners = _pool_under_threads(layer)
        for ids in owners.values():
            for sid in ids:
                alone = rnnkit.Stream(layer)
                alone.feed(np.stack([_x(sid, i) for i in range(40)]))
                for got, want in zip(pool.state(sid), alone.state, strict=True):
                    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        assert len(pool) == 8 * (2 + 20)  # its own two, and the temporary ones it kept
