"""rnnkit: recurrent neural networks with hand-written BPTT, fast on a CPU, built for streaming."""

from .errors import CheckpointError, InputError, RnnkitError, ShapeError
from .layers import (
    GRU,
    LSTM,
    RNN,
    Embedding,
    GRUCell,
    Linear,
    LSTMCell,
    Module,
    Recurrent,
    RNNCell,
)

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "CheckpointError",
    "Embedding",
    "GRUCell",
    "InputError",
    "LSTMCell",
    "Linear",
    "Module",
    "RNNCell",
    "Recurrent",
    "RnnkitError",
    "ShapeError",
    "__version__",
]
