"""Layers: the recurrent stack and its PyTorch-shaped fronts, single-step cells, dense layers."""

from .attention import Attention, AttentionPool
from .cell import GRUCell, LSTMCell, RNNCell
from .dense import Embedding, Linear
from .dropout import Dropout
from .module import Module, ModuleList
from .norm import LayerNorm
from .pool import Pool
from .recurrent import Recurrent, RecurrentConfig
from .sequential import Sequential
from .torch_like import GRU, LSTM, RNN

__all__ = [
    "Attention",
    "AttentionPool",
    "Dropout",
    "LayerNorm",
    "GRU",
    "LSTM",
    "RNN",
    "Embedding",
    "GRUCell",
    "LSTMCell",
    "Linear",
    "Module",
    "ModuleList",
    "Pool",
    "RNNCell",
    "Recurrent",
    "RecurrentConfig",
    "Sequential",
]
