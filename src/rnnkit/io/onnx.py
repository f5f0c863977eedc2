"""Export recurrent stacks to ONNX and read them back (onnx imported here only).

The exported graph is a drop-in replacement for the layer's own call, for streaming runtimes:

    inputs   input (T, B, F) time-major,  h0 (L*D, B, H)  [, c0 (L*D, B, H) for LSTM]
    outputs  output (T, B, D*H) directions concatenated,  hn (L*D, B, H)  [, cn]

One ONNX ``RNN``/``LSTM``/``GRU`` node per layer. The gate blocks are reordered: PyTorch's LSTM
is i, f, g, o and ONNX's is i, o, f, c; PyTorch's GRU is r, z, n and ONNX's z, r, h, with
``linear_before_reset=1`` (the reset gate multiplies ``W_hn h + b_hn``, as in PyTorch). Weights
are stored in float32. The layer's class and config ride along in the model's metadata, which
`import_onnx` reads back.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..errors import CheckpointError, InputError, RnnkitError
from ..files import atomic_write
from ..layers import GRU, LSTM, RNN
from ..layers.recurrent import Recurrent

# ONNX block k takes PyTorch block ORDER[k]; the inverse map restores PyTorch's order.
ORDER = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2], "RNN_TANH": [0], "RNN_RELU": [0]}
OP = {"LSTM": "LSTM", "GRU": "GRU", "RNN_TANH": "RNN", "RNN_RELU": "RNN"}
MIN_OPSET = 10  # Slice with its bounds as inputs


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - onnx is in the test extra
        raise ImportError("rnnkit: ONNX export needs onnx (pip install onnx)") from exc
    return onnx


def _reorder(a: np.ndarray, mode: str, inverse: bool = False) -> np.ndarray:
    order = ORDER[mode]
    if inverse:
        order = list(np.argsort(order))
    blocks = np.split(a, len(order), axis=0)
    return np.concatenate([blocks[k] for k in order], axis=0)


def export_onnx(layer: Recurrent, path: str | os.PathLike, opset: int = 17) -> Path:
    """Write ``layer`` (an `RNN`, `LSTM` or `GRU`, any depth, either direction) as ONNX."""
    if not isinstance(layer, Recurrent):
        raise InputError(
            f"export_onnx: expected an RNN, LSTM or GRU layer, got {type(layer).__name__}"
        )
    kind = getattr(layer, "quantized", None)
    if kind:
        raise InputError(
            f"export_onnx: expected a float layer, got a {kind}-quantized "
            f"{type(layer).__name__}; export the float layer"
        )
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"export_onnx: expected a file path, got {type(path).__name__}")
    onnx = _onnx()
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise InputError(
            f"export_onnx: expected opset an integer in [{MIN_OPSET}, {newest}], got {opset!r:.40}"
        )
    from onnx import TensorProto, helper, numpy_helper

    mode, H, D, L = layer.cell.name, layer.hidden_size, layer.num_directions, layer.num_layers
    G = layer.cell.gates
    is_lstm = mode == "LSTM"
    nodes, inits = [], []
    p = layer.params
    x = "input"
    hs, cs = [], []
    for k in range(L):
        sfx = [f"l{k}", f"l{k}_reverse"][:D]
        W = np.stack([_reorder(p[f"weight_ih_{s}"], mode) for s in sfx])  # (D, G*H, F)
        R = np.stack([_reorder(p[f"weight_hh_{s}"], mode) for s in sfx])  # (D, G*H, H)
        if layer.bias:
            B = np.stack(
                [
                    np.concatenate(
                        [_reorder(p[f"bias_ih_{s}"], mode), _reorder(p[f"bias_hh_{s}"], mode)]
                    )
                    for s in sfx
                ]
            )
        else:
            B = np.zeros((D, 2 * G * H))
        for name, value in ((f"W{k}", W), (f"R{k}", R), (f"B{k}", B)):
            inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        inits.append(numpy_helper.from_array(np.array([k * D], np.int64), f"start{k}"))
        inits.append(numpy_helper.from_array(np.array([(k + 1) * D], np.int64), f"end{k}"))
        nodes.append(helper.make_node("Slice", ["h0", f"start{k}", f"end{k}"], [f"h0_{k}"]))
        ins = [x, f"W{k}", f"R{k}", f"B{k}", "", f"h0_{k}"]
        outs = [f"Y{k}", f"hn{k}"]
        if is_lstm:
            nodes.append(helper.make_node("Slice", ["c0", f"start{k}", f"end{k}"], [f"c0_{k}"]))
            ins.append(f"c0_{k}")
            outs.append(f"cn{k}")
        attrs: dict[str, Any] = {
            "hidden_size": H,
            "direction": "bidirectional" if D == 2 else "forward",
        }
        if mode == "GRU":
            attrs["linear_before_reset"] = 1
        if mode.startswith("RNN"):
            attrs["activations"] = ["Relu" if mode == "RNN_RELU" else "Tanh"] * D
        nodes.append(helper.make_node(OP[mode], ins, outs, name=f"{OP[mode].lower()}{k}", **attrs))
        # Y is (T, D, B, H): to (T, B, D*H), the layout the next layer and the user read
        nodes.append(helper.make_node("Transpose", [f"Y{k}"], [f"Yt{k}"], perm=[0, 2, 1, 3]))
        out = "output" if k == L - 1 else f"X{k + 1}"
        nodes.append(helper.make_node("Reshape", [f"Yt{k}", "flat"], [out]))
        x = out
        hs.append(f"hn{k}")
        cs.append(f"cn{k}")
    inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "flat"))
    nodes.append(helper.make_node("Concat", hs, ["hn"], axis=0))
    if is_lstm:
        nodes.append(helper.make_node("Concat", cs, ["cn"], axis=0))
    f32 = TensorProto.FLOAT
    state_shape: list[str | int] = [L * D, "B", H]
    inputs = [
        helper.make_tensor_value_info("input", f32, ["T", "B", layer.input_size]),
        helper.make_tensor_value_info("h0", f32, state_shape),
    ]
    outputs = [
        helper.make_tensor_value_info("output", f32, ["T", "B", D * H]),
        helper.make_tensor_value_info("hn", f32, state_shape),
    ]
    if is_lstm:
        inputs.append(helper.make_tensor_value_info("c0", f32, state_shape))
        outputs.append(helper.make_tensor_value_info("cn", f32, state_shape))
    graph = helper.make_graph(nodes, f"rnnkit_{type(layer).__name__}", inputs, outputs, inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="rnnkit"
    )
    model.ir_version = min(model.ir_version, 9)  # what onnxruntime reads
    helper.set_model_props(
        model,
        {
            "rnnkit_class": type(layer).__name__,
            "rnnkit_config": json.dumps(dataclasses.asdict(layer.config)),
        },
    )
    onnx.checker.check_model(model)
    return atomic_write(path, lambda tmp: onnx.save(model, tmp), "export_onnx")


def import_onnx(path: str | os.PathLike) -> Recurrent:
    """Read back a model written by `export_onnx`; weights in the layer's dtype."""
    onnx = _onnx()
    from onnx import numpy_helper

    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"import_onnx: expected a file path, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"import_onnx: no such file {str(path)!r}")
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200]
        raise CheckpointError(
            f"import_onnx: {str(path)!r} is not an ONNX model ({reason})"
        ) from None
    props = {p.key: p.value for p in model.metadata_props}
    classes: dict[str, type[Recurrent]] = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}
    if props.get("rnnkit_class") not in classes:
        raise CheckpointError(
            f"import_onnx: {str(path)!r} was not written by rnnkit.export_onnx "
            "(no rnnkit_class in its metadata)"
        )
    from ..layers.recurrent import RecurrentConfig

    try:
        config = RecurrentConfig(**json.loads(props["rnnkit_config"]))
        layer = cast(Recurrent, classes[props["rnnkit_class"]].from_config(config))
        inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        state = _weights_from(inits, config, layer)
        layer.load_state_dict(state)
    except (RnnkitError, KeyError, IndexError, TypeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise CheckpointError(
            f"import_onnx: {str(path)!r} is not a well-formed rnnkit export ({reason})"
        ) from None
    return layer


def _weights_from(inits: dict[str, np.ndarray], config: Any, layer: Recurrent) -> dict:
    """The layer's state dict from the exported ``W{k}``, ``R{k}``, ``B{k}`` initializers."""
    mode, G, H = config.mode, layer.cell.gates, config.hidden_size
    state = {}
    for k in range(config.num_layers):
        W, R, B = inits[f"W{k}"], inits[f"R{k}"], inits[f"B{k}"]
        for d, s in enumerate([f"l{k}", f"l{k}_reverse"][: layer.num_directions]):
            state[f"weight_ih_{s}"] = _reorder(W[d], mode, inverse=True)
            state[f"weight_hh_{s}"] = _reorder(R[d], mode, inverse=True)
            if config.bias:
                state[f"bias_ih_{s}"] = _reorder(B[d, : G * H], mode, inverse=True)
                state[f"bias_hh_{s}"] = _reorder(B[d, G * H :], mode, inverse=True)
    return state
