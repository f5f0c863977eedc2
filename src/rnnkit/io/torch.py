"""Conversion to and from PyTorch modules; the weights are copied, their names never change.

Layers map to their ``torch.nn`` counterparts; a `LanguageModel` to `TorchLanguageModel`.

torch is imported here only, when a conversion is asked for.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import numpy as np

from ..errors import InputError
from ..layers import GRU, LSTM, RNN, Embedding, GRUCell, Linear, LSTMCell, Module, RNNCell
from ..layers.cell import _Cell
from ..layers.recurrent import Recurrent
from ..models.language import LanguageModel, LMConfig

# the constructor arguments that `RNN`, `LSTM` and `GRU` share with torch.nn's, beyond the sizes
RECURRENT_ARGS = ("num_layers", "bias", "batch_first", "dropout", "bidirectional")


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is in the test extra
        raise ImportError("rnnkit: PyTorch conversion needs torch (pip install torch)") from exc
    return torch


def _torch_dtype(torch: Any, dtype: np.dtype) -> Any:
    return torch.float64 if dtype == np.float64 else torch.float32


def to_torch(layer: Module) -> Any:
    """The equivalent ``torch.nn`` module, with the same weights, in the same dtype."""
    kind = getattr(layer, "quantized", None) if isinstance(layer, Module) else None
    if kind:
        raise InputError(
            f"to_torch: expected a float model, got a {kind}-quantized "
            f"{type(layer).__name__}; convert the float model before quantizing"
        )
    torch = _torch()
    nn = torch.nn
    dt = _torch_dtype(torch, getattr(layer, "dtype", np.dtype(np.float32)))
    if isinstance(layer, Recurrent):
        kwargs = {name: getattr(layer, name) for name in RECURRENT_ARGS}
        if isinstance(layer, RNN):
            module = nn.RNN(
                layer.input_size, layer.hidden_size, nonlinearity=layer.nonlinearity, **kwargs
            )
        elif isinstance(layer, LSTM):
            module = nn.LSTM(layer.input_size, layer.hidden_size, **kwargs)
        elif isinstance(layer, GRU):
            module = nn.GRU(layer.input_size, layer.hidden_size, **kwargs)
        else:
            raise InputError(f"to_torch: no PyTorch equivalent of {type(layer).__name__}")
    elif isinstance(layer, _Cell):
        if isinstance(layer, RNNCell):
            module = nn.RNNCell(
                layer.input_size, layer.hidden_size, layer.bias, nonlinearity=layer.nonlinearity
            )
        elif isinstance(layer, LSTMCell):
            module = nn.LSTMCell(layer.input_size, layer.hidden_size, layer.bias)
        else:
            module = nn.GRUCell(layer.input_size, layer.hidden_size, layer.bias)
    elif isinstance(layer, Linear):
        module = nn.Linear(layer.in_features, layer.out_features, "bias" in layer.params)
    elif isinstance(layer, Embedding):
        module = nn.Embedding(layer.num_embeddings, layer.embedding_dim)
    elif isinstance(layer, LanguageModel):
        from .torch_lm import TorchLanguageModel

        module = TorchLanguageModel(layer.config).to(dt)  # the dtype first, then the weights
        state = {k: torch.from_numpy(v.copy()) for k, v in layer.named_parameters().items()}
        if layer.tie_weights:
            state["head.weight"] = state["embedding.weight"]
        module.load_state_dict(state, strict=True)
        return module
    else:
        raise InputError(f"to_torch: no PyTorch equivalent of {type(layer).__name__}")
    module = module.to(dt)
    state = {k: torch.from_numpy(v.copy()) for k, v in layer.named_parameters().items()}
    module.load_state_dict(state, strict=True)
    return module


def _weights(torch: Any, module: Any) -> dict[str, np.ndarray]:
    """The module's state dict as NumPy arrays; float16 and bfloat16 widened to float32,
    which is exact (every float16 and bfloat16 value is a float32 value)."""
    out = {}
    for key, v in module.state_dict().items():
        v = v.detach()
        if v.dtype in (torch.float16, torch.bfloat16):
            v = v.float()
        out[key] = v.cpu().numpy()
    return out


def from_torch(module: Any, seed: int | None = None) -> Module:
    """The rnnkit layer equivalent to a ``torch.nn`` module, with the same weights and dtype.

    rnnkit computes in float32 or float64: a float64 module gives a float64 layer, and any
    other floating dtype (float32, float16, bfloat16) a float32 one, its weights widened
    exactly.
    """
    torch = _torch()
    nn = torch.nn
    if not isinstance(module, nn.Module):
        raise InputError(f"from_torch: expected a torch.nn module, got {type(module).__name__}")
    params = list(module.parameters())
    for p in params:
        if not p.dtype.is_floating_point:
            raise InputError(
                f"from_torch: expected floating-point weights, got {type(module).__name__} "
                f"with {p.dtype}"
            )
        if p.device.type == "meta":
            raise InputError(
                f"from_torch: expected weights with values, got {type(module).__name__} "
                "on the meta device"
            )
    dtype = "float64" if any(p.dtype == torch.float64 for p in params) else "float32"
    layer: Module
    if isinstance(module, (nn.RNN, nn.LSTM, nn.GRU)):
        if getattr(module, "proj_size", 0):
            raise InputError("from_torch: LSTM with proj_size > 0 is not supported")
        common = {name: getattr(module, name) for name in RECURRENT_ARGS}
        common.update(seed=seed, dtype=dtype)
        if isinstance(module, nn.LSTM):
            layer = LSTM(module.input_size, module.hidden_size, **common)
        elif isinstance(module, nn.GRU):
            layer = GRU(module.input_size, module.hidden_size, **common)
        else:
            layer = RNN(
                module.input_size, module.hidden_size, nonlinearity=module.nonlinearity, **common
            )
    elif isinstance(module, nn.RNNCell):
        layer = RNNCell(
            module.input_size, module.hidden_size, module.bias, module.nonlinearity, seed, dtype
        )
    elif isinstance(module, nn.LSTMCell):
        layer = LSTMCell(module.input_size, module.hidden_size, module.bias, seed, dtype)
    elif isinstance(module, nn.GRUCell):
        layer = GRUCell(module.input_size, module.hidden_size, module.bias, seed, dtype)
    elif isinstance(module, nn.Linear):
        layer = Linear(
            module.in_features, module.out_features, module.bias is not None, seed, dtype
        )
    elif type(module).__name__ == "TorchLanguageModel":
        config = replace(LMConfig(**module.config), dtype=dtype)
        layer = LanguageModel(**asdict(config), seed=seed)
        state = _weights(torch, module)
        if config.tie_weights:
            del state["head.weight"]  # the same array as embedding.weight
        layer.load_state_dict(state)
        return layer
    elif isinstance(module, nn.Embedding):
        layer = Embedding(module.num_embeddings, module.embedding_dim, seed, dtype)
    else:
        raise InputError(f"from_torch: no rnnkit equivalent of {type(module).__name__}")
    layer.load_state_dict(_weights(torch, module))
    return layer
