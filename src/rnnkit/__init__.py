"""rnnkit: recurrent neural networks with hand-written BPTT, fast on a CPU, built for streaming."""

from . import threads  # noqa: F401, I001  (first: tells OpenBLAS not to spin, before NumPy loads it)
from . import allocator  # noqa: F401  (malloc keeps the step's buffers: rnnkit.allocator)
from . import models  # noqa: F401  (registers the task models, so any checkpoint loads)
from ._version import __version__
from .errors import CheckpointError, InputError, RnnkitError, ShapeError
from .io.checkpoint import Checkpoint, load, load_checkpoint, save
from .io.onnx import export_onnx, import_onnx
from .io.torch import from_torch, to_torch
from .layers import (
    GRU,
    LSTM,
    RNN,
    Embedding,
    GRUCell,
    Linear,
    LSTMCell,
    Module,
    ModuleList,
    Recurrent,
    RNNCell,
)
from .losses import cross_entropy, log_softmax, mse, softmax
from .optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, clip_grad_norm
from .quantize import quantize
from .schedules import ConstantLR, CosineLR, StepLR, WarmupLR, apply_schedule
from .stream import Stream, StreamPool

__all__ = [
    # layers
    "GRU",
    "LSTM",
    "RNN",
    "Embedding",
    "GRUCell",
    "LSTMCell",
    "Linear",
    "Module",
    "ModuleList",
    "RNNCell",
    "Recurrent",
    # losses
    "cross_entropy",
    "log_softmax",
    "mse",
    "softmax",
    # optimizers and schedules
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "ConstantLR",
    "CosineLR",
    "Optimizer",
    "RMSprop",
    "StepLR",
    "WarmupLR",
    "apply_schedule",
    "clip_grad_norm",
    # streaming
    "Stream",
    "StreamPool",
    "quantize",
    # checkpoints, PyTorch and ONNX
    "export_onnx",
    "import_onnx",
    "Checkpoint",
    "from_torch",
    "load",
    "load_checkpoint",
    "save",
    "to_torch",
    # errors
    "CheckpointError",
    "InputError",
    "RnnkitError",
    "ShapeError",
    "__version__",
]
