"""Cells: the equations, a NumPy step forward and step backward, and the kernels of each."""

from .base import CellSpec
from .gru import GRU
from .lstm import LSTM
from .rnn import RNN_RELU, RNN_TANH

CELLS: dict[str, CellSpec] = {c.name: c for c in (RNN_TANH, RNN_RELU, LSTM, GRU)}

__all__ = ["CELLS", "GRU", "LSTM", "RNN_RELU", "RNN_TANH", "CellSpec"]
