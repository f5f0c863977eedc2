"""Streaming: step equals sequence, state carries, saves and resumes; the pool; the CLI."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import rnnkit
from rnnkit.models import LanguageModel, SequenceRegressor

LAYERS = [
    lambda: rnnkit.RNN(3, 5, 1, seed=0),
    lambda: rnnkit.RNN(3, 5, 2, nonlinearity="relu", seed=0),
    lambda: rnnkit.LSTM(3, 5, 1, seed=0),
    lambda: rnnkit.LSTM(3, 5, 3, seed=0),
    lambda: rnnkit.GRU(3, 5, 1, seed=0),
    lambda: rnnkit.GRU(3, 5, 2, batch_first=True, seed=0),
]


def _random_state(layer, batch, rng):
    s = layer.initial_state(batch)
    if isinstance(s, tuple):
        return tuple(a + rng.standard_normal(a.shape).astype(a.dtype) for a in s)
    return s + rng.standard_normal(s.shape).astype(s.dtype)


def _close(a, b):
    for x, y in zip(
        a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,), strict=True
    ):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", LAYERS)
@pytest.mark.parametrize("carried", [False, True])
def test_steps_equal_the_whole_sequence(make, carried):
    rng = np.random.default_rng(1)
    layer = make()
    x = rng.standard_normal((12, 4, 3)).astype(np.float32)  # time-major
    state = _random_state(layer, 4, rng) if carried else None
    y, final = layer.stream_forward(x, state)
    stream = rnnkit.Stream(layer)
    if carried:
        stream.state = state
    steps = np.stack([stream.step(x[t]) for t in range(12)])
    np.testing.assert_allclose(steps, y, rtol=1e-5, atol=1e-6)
    _close(stream.state, final)


def test_single_stream_and_feed_agree_with_steps():
    rng = np.random.default_rng(2)
    layer = rnnkit.LSTM(3, 6, 2, seed=1)
    xs = rng.standard_normal((9, 3)).astype(np.float32)
    a = rnnkit.Stream(layer)
    one = np.stack([a.step(x) for x in xs])  # (F,) per step: one stream
    b = rnnkit.Stream(layer)
    chunked = np.concatenate([b.feed(xs[:4]), b.feed(xs[4:])])
    assert one.shape == (9, 6)
    np.testing.assert_allclose(one, chunked, rtol=1e-5, atol=1e-6)
    a.reset()
    np.testing.assert_allclose(a.step(xs[0]), one[0], rtol=1e-6)  # reset starts from zeros


def test_language_model_streams_token_ids():
    model = LanguageModel(11, "gru", 8, 2, 4, dropout=0.0, seed=0)
    ids = np.random.default_rng(0).integers(0, 11, size=15)
    logits, _ = model(ids[:, None])
    stream = rnnkit.Stream(model)
    steps = np.stack([stream.step(int(i)) for i in ids])
    np.testing.assert_allclose(steps, logits[:, 0], rtol=1e-5, atol=1e-6)


def test_regressor_streams_its_head_output():
    model = SequenceRegressor("lstm", 2, 8, 1, seed=0)
    x = np.random.default_rng(0).standard_normal((7, 1, 2)).astype(np.float32)
    stream = rnnkit.Stream(model)
    last = [stream.step(x[t, 0]) for t in range(7)][-1]
    np.testing.assert_allclose(last, model(x)[0], rtol=1e-5, atol=1e-6)


def test_state_round_trips_through_bytes_and_files(tmp_path):
    rng = np.random.default_rng(3)
    layer = rnnkit.LSTM(3, 5, 2, seed=0)
    xs = rng.standard_normal((10, 3)).astype(np.float32)
    a = rnnkit.Stream(layer)
    for x in xs[:5]:
        a.step(x)
    a.save_state(tmp_path / "s.state")
    data = a.state_bytes()
    rest = [a.step(x) for x in xs[5:]]
    for restore in (
        lambda s: s.load_state(tmp_path / "s.state"),
        lambda s: s.load_state_bytes(data),
    ):
        b = rnnkit.Stream(layer)
        restore(b)
        np.testing.assert_array_equal(np.stack([b.step(x) for x in xs[5:]]), np.stack(rest))


def test_state_resumes_in_another_process(tmp_path):
    layer = rnnkit.GRU(2, 4, 2, seed=5)
    rnnkit.save(layer, tmp_path / "gru.safetensors")
    xs = np.arange(16, dtype=np.float32).reshape(8, 2) / 10
    np.save(tmp_path / "xs.npy", xs)
    full = rnnkit.Stream(layer).feed(xs)
    script = textwrap.dedent(f"""
        import numpy as np, rnnkit
        layer = rnnkit.load({str(tmp_path / "gru.safetensors")!r})
        xs = np.load({str(tmp_path / "xs.npy")!r})
        s = rnnkit.Stream(layer)
        if {{part}} == 1:
            s.feed(xs[:4]); s.save_state({str(tmp_path / "s.state")!r})
        else:
            s.load_state({str(tmp_path / "s.state")!r})
            np.save({str(tmp_path / "rest.npy")!r}, s.feed(xs[4:]))
    """)
    for part in (1, 2):
        proc = subprocess.run(
            [sys.executable, "-c", script.replace("{part}", str(part))],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(np.load(tmp_path / "rest.npy"), full[4:], rtol=1e-6, atol=1e-7)


def test_state_from_another_model_is_refused(tmp_path):
    a = rnnkit.Stream(rnnkit.GRU(2, 4, seed=0))
    a.step(np.zeros(2))
    b = rnnkit.Stream(rnnkit.GRU(2, 5, seed=0))
    with pytest.raises(rnnkit.CheckpointError, match="different model"):
        b.load_state_bytes(a.state_bytes())
    with pytest.raises(rnnkit.CheckpointError, match="not a saved stream state"):
        b.load_state_bytes(b"garbage")


def test_stream_errors_name_the_problem():
    s = rnnkit.Stream(rnnkit.LSTM(3, 4, seed=0))
    with pytest.raises(rnnkit.ShapeError, match="expected one vector of 3 features"):
        s.step(np.zeros((2, 2, 3)))
    s.step(np.zeros((2, 3)))
    with pytest.raises(rnnkit.ShapeError, match="holds 2 streams, got an input for 5"):
        s.step(np.zeros((5, 3)))
    with pytest.raises(rnnkit.InputError, match="bidirectional"):
        rnnkit.Stream(rnnkit.GRU(3, 4, bidirectional=True))
    with pytest.raises(rnnkit.ShapeError, match="expected state arrays of shape"):
        s.state = (np.zeros((1, 2, 5)), np.zeros((1, 2, 5)))


def test_pool_gives_each_stream_what_a_dedicated_stream_gives():
    rng = np.random.default_rng(4)
    layer = rnnkit.LSTM(3, 6, 2, seed=2)
    pool = rnnkit.StreamPool(layer)
    ids = ["a", "b", "c"]
    dedicated = {k: rnnkit.Stream(layer) for k in ids}
    for k in ids:
        pool.join(k)
    for t in range(20):
        # streams arrive unevenly: each step only some of them have an input
        active = [k for k in ids if rng.random() < 0.7] or ["a"]
        inputs = {k: rng.standard_normal(3).astype(np.float32) for k in active}
        out = pool.step(inputs)
        for k in active:
            np.testing.assert_allclose(out[k], dedicated[k].step(inputs[k]), rtol=1e-5, atol=1e-6)
        if t == 10:
            pool.leave("b")
            ids.remove("b")
            pool.join("d")
            dedicated["d"] = rnnkit.Stream(layer)
            ids.append("d")
    for k in ids:
        _close(pool.state(k), dedicated[k].state)
    with pytest.raises(rnnkit.InputError, match="no stream 'zzz'; join it first"):
        pool.step({"zzz": np.zeros(3)})


@pytest.mark.parametrize("make", LAYERS)
def test_pool_step_one_equals_the_batched_step(make):
    layer = make()
    rng = np.random.default_rng(7)
    one, batched = rnnkit.StreamPool(layer), rnnkit.StreamPool(layer)
    for pool in (one, batched):
        for k in ("a", "b", "c"):
            pool.join(k)
    for _ in range(12):
        k = ["a", "b", "c"][rng.integers(3)]  # one stream at a time, the others stay put
        x = rng.standard_normal(3).astype(np.float32)
        np.testing.assert_allclose(
            one.step_one(k, x), batched.step({k: x})[k], rtol=1e-5, atol=1e-6
        )
    for k in ("a", "b", "c"):
        _close(one.state(k), batched.state(k))
    with pytest.raises(rnnkit.InputError, match="no stream 'zzz'; join it first"):
        one.step_one("zzz", np.zeros(3))
    with pytest.raises(rnnkit.ShapeError):
        one.step_one("a", np.zeros(4))  # the wrong input size: the general path says so


def test_pool_grows_reuses_slots_and_takes_a_starting_state():
    rng = np.random.default_rng(5)
    layer = rnnkit.GRU(4, 5, seed=1)
    warm = rnnkit.Stream(layer)
    warm.feed(rng.standard_normal((3, 4)).astype(np.float32))
    pool = rnnkit.StreamPool(layer)
    dedicated = {}
    for k in range(20):  # past the first two capacities (8, 16)
        start = warm.state if k == 7 else None
        pool.join(k, start)
        dedicated[k] = rnnkit.Stream(layer)
        dedicated[k].state = start
    for k in range(0, 20, 3):  # leave, and let new streams take the freed slots
        pool.leave(k)
        del dedicated[k]
    for k in range(100, 105):
        pool.join(k)
        dedicated[k] = rnnkit.Stream(layer)
    assert len(pool) == len(dedicated) == 18
    for _ in range(4):
        inputs = {k: rng.standard_normal(4).astype(np.float32) for k in dedicated}
        out = pool.step(inputs)
        for k, x in inputs.items():
            np.testing.assert_allclose(out[k], dedicated[k].step(x), rtol=1e-5, atol=1e-6)
    for k in dedicated:
        _close(pool.state(k), dedicated[k].state)
    with pytest.raises(rnnkit.ShapeError, match="every input must have the same shape"):
        pool.step({1: np.zeros(4), 2: np.zeros(3)})
    with pytest.raises(rnnkit.ShapeError, match="batch 1"):
        pool.join("two", np.zeros((1, 2, 5), np.float32))
    with pytest.raises(rnnkit.InputError, match="already joined"):
        pool.join(1)


# -- rnnkit stream ---------------------------------------------------------------------------
def _stream_cli(*args, stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", "stream", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_numeric_lines_match_the_stream_and_state_resumes(tmp_path):
    layer = rnnkit.LSTM(2, 3, 2, seed=0)
    rnnkit.save(layer, tmp_path / "m.safetensors")
    xs = np.round(np.random.default_rng(0).standard_normal((6, 2)), 3)
    lines = "\n".join(",".join(str(v) for v in x) for x in xs) + "\n"
    expected = rnnkit.Stream(layer).feed(xs.astype(np.float32))
    state = tmp_path / "s.state"
    first = _stream_cli(
        str(tmp_path / "m.safetensors"),
        "--state",
        str(state),
        stdin="".join(lines.splitlines(True)[:3]),
    )
    second = _stream_cli(
        str(tmp_path / "m.safetensors"),
        "--state",
        str(state),
        stdin="".join(lines.splitlines(True)[3:]),
    )
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    got = np.array(
        [
            [float(v) for v in line.split(",")]
            for line in (first.stdout + second.stdout).splitlines()
        ]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_cli_malformed_lines_skip_or_stop(tmp_path):
    rnnkit.save(rnnkit.GRU(2, 3, seed=0), tmp_path / "m.safetensors")
    text = "1,2\nnot,numbers\n3\n4,5\n"
    skip = _stream_cli(str(tmp_path / "m.safetensors"), "--on-error", "skip", stdin=text)
    assert skip.returncode == 0 and len(skip.stdout.splitlines()) == 2
    assert skip.stderr.splitlines() == [
        "rnnkit stream: line 2: expected 2 comma-separated numbers, got 'not,numbers'",
        "rnnkit stream: line 3: expected 2 comma-separated numbers, got 1",
    ]
    stop = _stream_cli(str(tmp_path / "m.safetensors"), stdin=text)
    assert stop.returncode == 2 and len(stop.stdout.splitlines()) == 1
    assert stop.stderr.strip() == (
        "rnnkit: error: line 2: expected 2 comma-separated numbers, got 'not,numbers'"
    )


def test_cli_language_model_scores_lines(tmp_path):
    from rnnkit.data.text import Vocabulary

    vocab = Vocabulary.build("abc\n")
    model = LanguageModel(len(vocab), "lstm", 8, 1, 4, dropout=0.0, seed=0)
    rnnkit.save(
        model, tmp_path / "lm.safetensors", metadata={"vocab": list(vocab.tokens), "level": "char"}
    )
    proc = _stream_cli(str(tmp_path / "lm.safetensors"), stdin="abc\n\ncab\n")
    assert proc.returncode == 0, proc.stderr
    import json

    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["tokens"] for r in rows] == [4, 1, 4]
    assert all(r["next"] in "abc\n" and 0 < r["p_next"] <= 1 for r in rows)
    assert rows[1]["nll"] > 0  # the blank line was predicted from the line before it


def test_memory_stays_flat_over_a_long_stream():
    import tracemalloc

    layer = rnnkit.GRU(8, 32, 2, seed=0)
    stream = rnnkit.Stream(layer)
    x = np.ones(8, dtype=np.float32)
    for _ in range(100):  # warm up
        stream.step(x)
    tracemalloc.start()
    try:
        for _ in range(1_000):
            stream.step(x)
        after_1k = tracemalloc.get_traced_memory()[0]
        for _ in range(9_000):
            stream.step(x)
        after_10k = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after_10k - after_1k < 16_384  # bytes: nothing accumulates per step


def test_lines_from_a_pipe_are_paced_and_from_a_file_back_to_back(tmp_path):
    # `rnnkit stream` keeps a live feed's steps on one core (`Stream(paced=True)`)
    code = "from rnnkit.cli import _stdin_is_a_file; print(_stdin_is_a_file())"
    path = tmp_path / "lines.txt"
    path.write_text("1 2 3\n")
    with path.open("rb") as f:
        from_file = subprocess.run([sys.executable, "-c", code], stdin=f, capture_output=True)
    from_pipe = subprocess.run([sys.executable, "-c", code], input=b"1 2 3\n", capture_output=True)
    assert from_file.stdout.decode().strip() == "True", from_file.stderr.decode()
    assert from_pipe.stdout.decode().strip() == "False", from_pipe.stderr.decode()


@pytest.mark.parametrize(
    ("flag", "paced"), [([], True), (["--no-paced"], False), (["--paced"], True)]
)
def test_rnnkit_stream_paced_option_overrides_what_stdin_suggests(
    monkeypatch, tmp_path, flag, paced
):
    # under pytest stdin is no regular file, so the default is paced; the option decides
    import rnnkit.tasks.streaming as streaming
    from rnnkit.cli import main

    seen = {}

    class Stop(Exception):
        pass

    def capture(checkpoint, quantize=None, paced=False):
        seen["paced"] = paced
        raise Stop

    monkeypatch.setattr(streaming, "LineServer", capture)
    with pytest.raises(Stop):
        main(["stream", str(tmp_path / "model.safetensors"), *flag])
    assert seen["paced"] is paced
