"""Issue 18, by property tests: whatever bytes or lines come in, rnnkit gives a clean rnnkit
error or a valid result, never anything else (a traceback from inside, or a wrong model).

Files: text files (`read_text`), checkpoints (`load_checkpoint`) and stream states
(`Stream.load_state_bytes`), random or mutated from a valid one; lines: the numeric stream
server (`LineServer.handle`). A flip in a checkpoint's tensor data is always an error: the
SHA-256 checksum catches it. A flip in the JSON header is an error, or the file still loads the
very same model.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnkit
from rnnkit.data.text import read_text
from rnnkit.errors import InputError, RnnkitError
from rnnkit.tasks.streaming import LineServer

FEW = settings(max_examples=60, deadline=None)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def _model() -> rnnkit.GRU:
    return rnnkit.GRU(3, 4, seed=0)


@pytest.fixture(scope="module")
def ckpt_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("ckpt") / "gru.safetensors"
    return rnnkit.save(
        _model(), path, metadata={"note": "x"}, arrays={"a": np.arange(3)}
    ).read_bytes()


@pytest.fixture(scope="module")
def state_bytes() -> bytes:
    stream = rnnkit.Stream(_model())
    stream.step(np.ones(3, np.float32))
    return stream.state_bytes()


def _header_end(data: bytes) -> int:
    return 8 + int.from_bytes(data[:8], "little")


def _mutate(data: bytes, kind: str, at: float, bit: int, tail: bytes) -> tuple[bytes, bool]:
    """``data`` with a bit flipped, cut, or bytes appended at a relative position ``at``; and
    whether the change fell in the tensor data (after the JSON header)."""
    i = min(int(at * len(data)), len(data) - 1)
    if kind == "flip":
        out = bytearray(data)
        out[i] ^= 1 << bit
        return bytes(out), i >= _header_end(data)
    if kind == "cut":
        return data[:i], True
    return data + tail, False


MUTATION = {
    "kind": st.sampled_from(["flip", "cut", "append"]),
    "at": st.floats(0, 1, exclude_max=True),
    "bit": st.integers(0, 7),
    "tail": st.binary(min_size=1, max_size=16),
}


def _load(data: bytes) -> rnnkit.Checkpoint:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.safetensors"
        path.write_bytes(data)
        return rnnkit.load_checkpoint(path)


def _same_as_saved(ckpt: rnnkit.Checkpoint) -> None:
    want = _model()
    assert type(ckpt.model) is type(want) and ckpt.model.config == want.config
    for key, value in want.state_dict().items():
        np.testing.assert_array_equal(ckpt.model.state_dict()[key], value)
    assert ckpt.metadata == {"note": "x"}
    np.testing.assert_array_equal(ckpt.arrays["a"], np.arange(3))


def _clean(exc: RnnkitError) -> None:
    assert "\n" not in str(exc) and str(exc)


# -- text files --------------------------------------------------------------------------------
@FEW
@given(
    data=st.binary(max_size=64)
    | st.text(max_size=32).map(lambda t: t.encode("utf-8", "surrogatepass"))
    | st.sampled_from([b"", b" \n\t\r ", b"\xff\xfe", "caf\u00e9".encode("latin-1")])
)
def test_read_text_of_any_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.txt"
        path.write_bytes(data)
        try:
            text = read_text(path)
        except InputError as exc:
            _clean(exc)
            return
    as_read = data.decode("utf-8").removeprefix("\ufeff")  # line ends as read_text gives them
    assert text == as_read.replace("\r\n", "\n").replace("\r", "\n") and text.strip()


# -- checkpoints -------------------------------------------------------------------------------
@FEW
@given(data=st.binary(max_size=256))
def test_load_of_random_bytes(data: bytes) -> None:
    with pytest.raises(RnnkitError) as exc:
        _load(data)
    _clean(exc.value)


@FEW
@given(**MUTATION)
def test_load_of_a_mutated_checkpoint(
    ckpt_bytes: bytes, kind: str, at: float, bit: int, tail: bytes
) -> None:
    data, in_tensors = _mutate(ckpt_bytes, kind, at, bit, tail)
    try:
        ckpt = _load(data)
    except RnnkitError as exc:
        _clean(exc)
        return
    assert not in_tensors, f"a {kind} in the tensor data loaded without an error"
    _same_as_saved(ckpt)


def test_every_flip_in_the_tensor_data_is_caught(ckpt_bytes: bytes) -> None:
    start = _header_end(ckpt_bytes)
    for i in range(start, len(ckpt_bytes), 7):  # every 7th byte, each bit in turn
        data, _ = _mutate(ckpt_bytes, "flip", (i + 0.5) / len(ckpt_bytes), i % 8, b"")
        with pytest.raises(RnnkitError, match="is damaged"):
            _load(data)


def _with_header(data: bytes, header: Any) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data[_header_end(data) :]


@FEW
@given(header=JSON)
def test_load_of_a_checkpoint_whose_header_is_random_json(ckpt_bytes: bytes, header: Any) -> None:
    with pytest.raises(RnnkitError) as exc:
        _load(_with_header(ckpt_bytes, header))
    _clean(exc.value)


@FEW
@given(
    field=st.sampled_from(["class", "config", "extra", "format_version"]),
    value=JSON,
    unverified=st.booleans(),
)
def test_load_of_a_checkpoint_with_a_random_metadata_value(
    ckpt_bytes: bytes, field: str, value: Any, unverified: bool
) -> None:
    """One metadata entry replaced by random JSON text; ``unverified``: as a format-1 file,
    which has no checksum, so the value reaches the code that reads it."""
    header = json.loads(ckpt_bytes[8 : _header_end(ckpt_bytes)])
    meta = header["__metadata__"]
    meta[field] = json.dumps(value)
    if unverified:
        meta["format_version"] = "1" if field != "format_version" else meta[field]
        meta.pop("checksum")
    try:
        ckpt = _load(_with_header(ckpt_bytes, header))
    except RnnkitError as exc:
        _clean(exc)
        return
    assert unverified, "a changed value loaded past the checksum"
    assert isinstance(ckpt.model, rnnkit.Module) and isinstance(ckpt.metadata, dict)


# -- stream states -----------------------------------------------------------------------------
@FEW
@given(data=st.binary(max_size=256))
def test_load_state_bytes_of_random_bytes(data: bytes) -> None:
    with pytest.raises(RnnkitError) as exc:
        rnnkit.Stream(_model()).load_state_bytes(data)
    _clean(exc.value)


@FEW
@given(**MUTATION)
def test_load_state_bytes_of_a_mutated_state(
    state_bytes: bytes, kind: str, at: float, bit: int, tail: bytes
) -> None:
    data, in_tensors = _mutate(state_bytes, kind, at, bit, tail)
    stream = rnnkit.Stream(_model())
    try:
        stream.load_state_bytes(data)
    except RnnkitError as exc:
        _clean(exc)
        return
    assert not in_tensors, f"a {kind} in the state data loaded without an error"
    want = rnnkit.Stream(_model())
    want.load_state_bytes(state_bytes)
    np.testing.assert_array_equal(stream.state, want.state)


@FEW
@given(header=JSON)
def test_load_state_bytes_whose_header_is_random_json(state_bytes: bytes, header: Any) -> None:
    with pytest.raises(RnnkitError) as exc:
        rnnkit.Stream(_model()).load_state_bytes(_with_header(state_bytes, header))
    _clean(exc.value)


# -- the numeric stream server -----------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> LineServer:
    path = rnnkit.save(_model(), tmp_path_factory.mktemp("serve") / "gru.safetensors")
    return LineServer(path)


NUMBER = st.floats(allow_nan=True, allow_infinity=True).map(repr) | st.integers().map(str)
LINE = st.text(max_size=40) | st.lists(NUMBER | st.text(max_size=4), max_size=5).map(",".join)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # 1e300 -> inf
@FEW
@given(line=LINE)
def test_stream_server_line(server: LineServer, line: str) -> None:
    try:
        out = server.handle(line)
    except InputError as exc:  # LineError is one
        _clean(exc)
        return
    values = [float(v) for v in out.split(",")]
    assert len(values) == 4 and all(np.isfinite(values))
