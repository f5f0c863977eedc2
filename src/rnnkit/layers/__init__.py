"""Layers: the recurrent stack and its PyTorch-shaped fronts, single-step cells, dense layers."""

from .cell import GRUCell, LSTMCell, RNNCell
from .dense import Embedding, Linear
from .module import Module, ModuleList
from .pool import Pool
from .recurrent import Recurrent, RecurrentConfig
from .sequential import Sequential
from .torch_like import GRU, LSTM, RNN

__all__ = [
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
