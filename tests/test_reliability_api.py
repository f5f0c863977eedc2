"""Issue 18 at the public API: whatever a user passes, a one-line rnnkit error names the
component, what it expected and what came; never a traceback from inside (AttributeError,
TypeError, IndexError ...) and never a silently wrong result."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rnnkit
from rnnkit.errors import CheckpointError, InputError, OutputError, RnnkitError
from rnnkit.files import is_rnnkit_file

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text, f"a multi-line message: {text!r}"
    return text


@pytest.fixture
def gru() -> rnnkit.GRU:
    return rnnkit.GRU(3, 4, seed=0)


# -- PyTorch --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [42, None, "GRU", np.zeros(3)])
def test_from_torch_of_a_non_module(bad: Any) -> None:
    with pytest.raises(InputError, match="from_torch: expected a torch.nn module, got ") as exc:
        rnnkit.from_torch(bad)
    one_line(exc)


@pytest.mark.parametrize("half", ["bfloat16", "float16"])
def test_from_torch_of_a_half_precision_module_widens_exactly(half: str) -> None:
    """bfloat16 and float16 values are all float32 values: the layer is float32 and holds the
    same numbers, which a float32 torch module (``.float()``) computes with identically."""
    module = torch.nn.GRU(3, 4).to(getattr(torch, half))
    layer = rnnkit.from_torch(module)
    assert layer.dtype == np.float32
    for key, value in module.state_dict().items():
        np.testing.assert_array_equal(layer.state_dict()[key], value.float().numpy())
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    y, _ = layer(x)
    ref, _ = module.float()(torch.from_numpy(x))
    np.testing.assert_allclose(y, ref.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_from_torch_keeps_float64_when_any_weight_is_float64() -> None:
    module = torch.nn.Linear(3, 2)
    module.bias.data = module.bias.data.double()
    layer = rnnkit.from_torch(module)
    assert layer.dtype == np.float64


@pytest.mark.filterwarnings("ignore:Complex modules")
def test_from_torch_of_complex_or_meta_weights() -> None:
    with pytest.raises(InputError, match="from_torch: expected floating-point weights") as exc:
        rnnkit.from_torch(torch.nn.GRU(3, 4).to(torch.complex64))
    one_line(exc)
    with pytest.raises(InputError, match="meta device"):
        rnnkit.from_torch(torch.nn.GRU(3, 4, device="meta"))


def test_to_torch_of_bad_models(gru: rnnkit.GRU) -> None:
    with pytest.raises(InputError, match="to_torch: no PyTorch equivalent of int") as exc:
        rnnkit.to_torch(42)
    one_line(exc)
    with pytest.raises(InputError, match="to_torch: expected a float model, got a int8-quantized"):
        rnnkit.to_torch(rnnkit.quantize(gru))


# -- ONNX -----------------------------------------------------------------------------------
def test_export_onnx_of_a_non_layer(tmp_path: Path, gru: rnnkit.GRU) -> None:
    with pytest.raises(InputError, match="export_onnx: expected an RNN, LSTM or GRU layer") as e:
        rnnkit.export_onnx(42, tmp_path / "x.onnx")
    one_line(e)
    with pytest.raises(InputError, match="export_onnx: expected a float layer"):
        rnnkit.export_onnx(rnnkit.quantize(gru), tmp_path / "x.onnx")
    with pytest.raises(InputError, match="export_onnx: expected a file path, got NoneType"):
        rnnkit.export_onnx(gru, None)
    for opset in (None, "17", 5, -1, 10_000):
        with pytest.raises(InputError, match=r"export_onnx: expected opset an integer in \[10, "):
            rnnkit.export_onnx(gru, tmp_path / "x.onnx", opset=opset)
    assert not (tmp_path / "x.onnx").exists()


def test_export_onnx_to_a_missing_folder_or_onto_a_folder(tmp_path: Path, gru: rnnkit.GRU) -> None:
    target = tmp_path / "nodir" / "x.onnx"
    with pytest.raises(OutputError, match=re.escape(str(target))) as exc:
        rnnkit.export_onnx(gru, target)
    one_line(exc)
    with pytest.raises(OutputError, match=re.escape(f"{str(tmp_path)!r} is a folder")):
        rnnkit.export_onnx(gru, tmp_path)


def test_export_onnx_writes_atomically_a_file_rnnkit_recognises(
    tmp_path: Path, gru: rnnkit.GRU, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = rnnkit.export_onnx(gru, tmp_path / "g.onnx")
    assert is_rnnkit_file(path, "onnx")
    before = path.read_bytes()
    import onnx

    def crash(model: Any, where: str) -> None:  # a write that dies half-way
        Path(where).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(onnx, "save", crash)
    with pytest.raises(OutputError, match="No space left on device"):
        rnnkit.export_onnx(rnnkit.GRU(3, 4, seed=1), path)
    assert path.read_bytes() == before  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.onnx"]  # no temporary left


def test_import_onnx_of_bad_files(tmp_path: Path, gru: rnnkit.GRU) -> None:
    import onnx
    from onnx import TensorProto, helper

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01junk" * 50)
    relu = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        )
    )
    other = tmp_path / "other.onnx"
    onnx.save(relu, str(other))
    assert not is_rnnkit_file(other, "onnx")
    mangled = tmp_path / "mangled.onnx"  # rnnkit's metadata, a config that does not fit
    model = onnx.load(str(rnnkit.export_onnx(gru, tmp_path / "g.onnx")))
    for prop in model.metadata_props:
        if prop.key == "rnnkit_config":
            prop.value = json.dumps({**json.loads(prop.value), "hidden_size": 5})
    onnx.save(model, str(mangled))
    cases: list[tuple[Any, type[RnnkitError], str]] = [
        (junk, CheckpointError, "is not an ONNX model"),
        (tmp_path / "missing.onnx", CheckpointError, "no such file"),
        (other, CheckpointError, "was not written by rnnkit.export_onnx"),
        (mangled, CheckpointError, "is not a well-formed rnnkit export"),
        (None, InputError, "expected a file path, got NoneType"),
    ]
    for path, cls, words in cases:
        with pytest.raises(cls, match=f"import_onnx: .*{words}") as exc:
            rnnkit.import_onnx(path)
        one_line(exc)


# -- stream states --------------------------------------------------------------------------
def test_save_state_into_a_missing_folder_or_onto_a_folder(tmp_path: Path, gru: rnnkit.GRU) -> None:
    stream = rnnkit.Stream(gru)
    stream.step(np.ones(3))
    with pytest.raises(OutputError, match="Stream.save_state: .*nodir") as exc:
        stream.save_state(tmp_path / "nodir" / "s.state")
    one_line(exc)
    with pytest.raises(OutputError, match="Stream.save_state: .* is a folder"):
        stream.save_state(tmp_path)


def test_state_files_and_bytes_of_the_wrong_type(gru: rnnkit.GRU) -> None:
    stream = rnnkit.Stream(gru)
    stream.step(np.ones(3, np.float32))
    for call in (stream.load_state, stream.save_state, stream.load_state_bytes):
        for bad in (None, 42):
            with pytest.raises(RnnkitError, match="expected"):
                call(bad)
    with pytest.raises(rnnkit.ShapeError, match="ragged"):
        stream.step([[1.0, 2.0, 3.0], [1.0]])


# -- checkpoints ----------------------------------------------------------------------------
def test_load_and_save_of_non_paths_and_non_models(tmp_path: Path, gru: rnnkit.GRU) -> None:
    with pytest.raises(InputError, match="load: expected a checkpoint file path, got NoneType"):
        rnnkit.load(None)
    with pytest.raises(InputError, match="save: expected an rnnkit model .*, got dict"):
        rnnkit.save({}, tmp_path / "c.safetensors")
    with pytest.raises(InputError, match="save: expected a file path, got NoneType"):
        rnnkit.save(gru, None)
    with pytest.raises(InputError, match="save: expected a model with a config .* got ModuleList"):
        rnnkit.save(rnnkit.ModuleList([gru]), tmp_path / "c.safetensors")
    with pytest.raises(InputError, match="save: expected metadata that JSON can hold"):
        rnnkit.save(gru, tmp_path / "c.safetensors", metadata={"a": object()})
    with pytest.raises(InputError, match="save: expected arrays as a dict"):
        rnnkit.save(gru, tmp_path / "c.safetensors", arrays={"a": "text"})
    with pytest.raises(InputError, match="save: expected arrays as a dict"):
        rnnkit.save(gru, tmp_path / "c.safetensors", arrays="x")
    assert list(tmp_path.iterdir()) == []


def _rewrite(path: Path, edit: Callable[[dict], None]) -> None:
    """Change a safetensors file's JSON header in place, the tensor data untouched."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n :])


def test_load_of_a_newer_format_version(tmp_path: Path, gru: rnnkit.GRU) -> None:
    path = rnnkit.save(gru, tmp_path / "c.safetensors")
    _rewrite(path, lambda h: h["__metadata__"].update(format_version="99"))
    with pytest.raises(CheckpointError, match="has format version '99'; this rnnkit reads") as e:
        rnnkit.load(path)
    one_line(e)


def test_load_of_flipped_bytes_in_the_tensor_data(tmp_path: Path, gru: rnnkit.GRU) -> None:
    path = rnnkit.save(gru, tmp_path / "c.safetensors")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # the last weight's low mantissa bit: a valid, finite, wrong number
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=re.escape(f"load: {str(path)!r} is damaged")) as e:
        rnnkit.load(path)
    one_line(e)


def test_load_of_a_config_that_builds_no_model(tmp_path: Path, gru: rnnkit.GRU) -> None:
    """A format-1 file (no checksum) whose config is nonsense: an error, not a traceback."""
    path = rnnkit.save(gru, tmp_path / "c.safetensors")

    def edit(header: dict) -> None:
        meta = header["__metadata__"]
        meta.update(format_version="1", config=json.dumps({"mode": "GRU", "input_size": -3}))
        del meta["checksum"]

    _rewrite(path, edit)
    with pytest.raises(CheckpointError, match="has a malformed config") as exc:
        rnnkit.load(path)
    one_line(exc)


# -- everything else in rnnkit.__all__ ------------------------------------------------------
def _bad_calls() -> list[tuple[str, Callable[[], Any]]]:
    gru = rnnkit.GRU(3, 4, seed=0)
    lstm = rnnkit.LSTM(3, 4, seed=0)
    calls: list[tuple[str, Callable[[], Any]]] = []
    for cls in (rnnkit.GRU, rnnkit.LSTM, rnnkit.RNN):
        name = cls.__name__
        calls += [
            (f"{name}(dropout=None)", lambda c=cls: c(3, 4, dropout=None)),
            (f"{name}(dropout='abc')", lambda c=cls: c(3, 4, dropout="abc")),
            (f"{name}(seed=-1)", lambda c=cls: c(3, 4, seed=-1)),
            (f"{name}(seed='abc')", lambda c=cls: c(3, 4, seed="abc")),
            (f"{name}(dtype=0)", lambda c=cls: c(3, 4, dtype=0)),
            (f"{name}(dtype=True)", lambda c=cls: c(3, 4, dtype=True)),
            (f"{name}(bidirectional='no')", lambda c=cls: c(3, 4, bidirectional="no")),
            (f"{name}(batch_first=array)", lambda c=cls: c(3, 4, batch_first=np.zeros(2))),
            (f"{name}(hidden_size=array)", lambda c=cls: c(3, np.zeros((2, 2)))),
        ]
    for cls in (rnnkit.GRUCell, rnnkit.LSTMCell, rnnkit.RNNCell):
        calls.append((f"{cls.__name__}(seed=2.5)", lambda c=cls: c(3, 4, seed=2.5)))
        calls.append((f"{cls.__name__}(bias='yes')", lambda c=cls: c(3, 4, bias="yes")))
        calls.append((f"{cls.__name__}.initial_state(-1)", lambda c=cls: c(3, 4).initial_state(-1)))
    calls += [
        ("Linear(seed='x')", lambda: rnnkit.Linear(3, 2, seed="x")),
        ("Embedding(ragged ids)", lambda: rnnkit.Embedding(5, 3)([[1, 2], [3]])),
        ("GRU(ragged input)", lambda: gru([[1.0, 2.0], [3.0]])),
        ("GRU.initial_state(None)", lambda: gru.initial_state(None)),
        ("LSTM.initial_state('x')", lambda: lstm.initial_state("x")),
        ("GRU.load_state_dict(None)", lambda: gru.load_state_dict(None)),
        (
            "GRU.load_state_dict(strings)",
            lambda: gru.load_state_dict(dict.fromkeys(gru.params, "s")),
        ),
        ("Recurrent(mode=None)", lambda: rnnkit.Recurrent(None, 3, 4)),
        ("ModuleList(None)", lambda: rnnkit.ModuleList(None)),
        ("ModuleList([1, 2])", lambda: rnnkit.ModuleList([1, 2])),
        ("softmax(None)", lambda: rnnkit.softmax(None)),
        ("softmax('abc')", lambda: rnnkit.softmax("abc")),
        ("softmax(ragged)", lambda: rnnkit.softmax([[1, 2], [3]])),
        ("softmax(empty)", lambda: rnnkit.softmax(np.zeros(0))),
        ("softmax(axis=5)", lambda: rnnkit.softmax(np.zeros((2, 3)), axis=5)),
        ("log_softmax(axis='x')", lambda: rnnkit.log_softmax(np.zeros((2, 3)), axis="x")),
        ("Adam(lr=None)", lambda: rnnkit.Adam(gru, lr=None)),
        ("SGD(lr='x')", lambda: rnnkit.SGD(gru, lr="x")),
        ("Adam(betas=None)", lambda: rnnkit.Adam(gru, betas=None)),
        ("Adam(betas='ab')", lambda: rnnkit.Adam(gru, betas="ab")),
        ("SGD(momentum='x')", lambda: rnnkit.SGD(gru, lr=0.1, momentum="x")),
        ("RMSprop(alpha=None)", lambda: rnnkit.RMSprop(gru, alpha=None)),
        ("clip_grad_norm(None)", lambda: rnnkit.clip_grad_norm(None, 1.0)),
        ("clip_grad_norm({'a': 'x'})", lambda: rnnkit.clip_grad_norm({"a": "x"}, 1.0)),
        ("clip_grad_norm(max_norm=None)", lambda: rnnkit.clip_grad_norm(gru, None)),
        ("ConstantLR(None)", lambda: rnnkit.ConstantLR(None)),
        ("ConstantLR(0.1)('x')", lambda: rnnkit.ConstantLR(0.1)("x")),
        ("CosineLR(0.1, 'x')", lambda: rnnkit.CosineLR(0.1, "x")),
        ("CosineLR(0.1, 10)(-1)", lambda: rnnkit.CosineLR(0.1, 10)(-1)),
        ("CosineLR(0.1)(-1)", lambda: rnnkit.CosineLR(0.1)(-1)),
        ("StepLR(0.1, None)", lambda: rnnkit.StepLR(0.1, None)),
        ("StepLR(0.1, 2.5)", lambda: rnnkit.StepLR(0.1, 2.5)),
        ("StepLR(0.1, 2)(None)", lambda: rnnkit.StepLR(0.1, 2)(None)),
        ("WarmupLR(0.1, None)", lambda: rnnkit.WarmupLR(0.1, None)),
        ("WarmupLR(0.1, 2)('x')", lambda: rnnkit.WarmupLR(0.1, 2)("x")),
        ("apply_schedule(None, ...)", lambda: rnnkit.apply_schedule(None, rnnkit.ConstantLR(1), 0)),
        ("apply_schedule(opt, None, 0)", lambda: rnnkit.apply_schedule(rnnkit.Adam(gru), None, 0)),
        ("quantize(None)", lambda: rnnkit.quantize(None)),
        ("quantize(gru, 8)", lambda: rnnkit.quantize(gru, 8)),
        ("load(42)", lambda: rnnkit.load_checkpoint(42)),
    ]
    return calls


BAD_CALLS = _bad_calls()


@pytest.mark.parametrize("call", [c for _, c in BAD_CALLS], ids=[n for n, _ in BAD_CALLS])
def test_a_bad_argument_gives_a_one_line_rnnkit_error(call: Callable[[], Any]) -> None:
    with pytest.raises(RnnkitError) as exc:
        call()
    text = one_line(exc)
    assert re.match(r"^[A-Za-z_.]+: ", text), f"no component named first: {text!r}"


def test_flags_are_not_read_as_truthy_strings() -> None:
    """``bidirectional="False"`` used to make a bidirectional layer: a wrong result, silently."""
    with pytest.raises(InputError, match="GRU: bidirectional must be True or False, got 'False'"):
        rnnkit.GRU(3, 4, bidirectional="False")
    assert rnnkit.GRU(3, 4, bidirectional=np.bool_(True)).bidirectional is True


# -- the command ----------------------------------------------------------------------------
def test_rnnkit_version(capsys: pytest.CaptureFixture[str]) -> None:
    from rnnkit.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"rnnkit {rnnkit.__version__}\n"
