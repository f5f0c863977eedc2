"""rnnkit: recurrent neural networks with hand-written BPTT, fast on a CPU, built for streaming.

Importing rnnkit changes nothing outside it (environment, warnings filters, malloc): the
process-wide settings it runs fastest with are made by `tune_process`, when asked.
"""

from . import models  # noqa: F401  (registers the task models, so any checkpoint loads)
from ._version import __version__
from .engines import Engine
from .errors import (
    CheckpointError,
    DistributedError,
    InputError,
    NotFittedError,
    OutputError,
    ResourceError,
    RnnkitError,
    RnnkitWarning,
    ShapeError,
    TrainingDiverged,
)
from .estimators import Estimator, Forecaster, SequenceClassifier
from .estimators.anomaly import AnomalyDetector
from .estimators.music import MusicModel
from .estimators.seq2seq import Seq2Seq
from .explain import explain
from .io.checkpoint import Checkpoint, load, load_checkpoint, save
from .io.onnx import export_onnx, import_onnx
from .io.torch import from_torch, to_torch
from .layers import (
    GRU,
    LSTM,
    RNN,
    Attention,
    AttentionPool,
    Dropout,
    Embedding,
    GRUCell,
    LayerNorm,
    Linear,
    LSTMCell,
    Module,
    ModuleList,
    Pool,
    Recurrent,
    RNNCell,
    Sequential,
)
from .losses import (
    bce_with_logits,
    cross_entropy,
    ctc_beam_decode,
    ctc_greedy_decode,
    ctc_lexicon_beam_decode,
    ctc_loss,
    gaussian_nll,
    log_softmax,
    mse,
    pinball,
    softmax,
)
from .optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, clip_grad_norm
from .process import ProcessTuning, tune_process
from .quantize import quantize
from .schedules import ConstantLR, CosineLR, StepLR, WarmupLR, apply_schedule
from .stream import Stream, StreamPool

__all__ = [
    # layers
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
    "Sequential",
    # losses
    "bce_with_logits",
    "cross_entropy",
    "ctc_beam_decode",
    "ctc_greedy_decode",
    "ctc_lexicon_beam_decode",
    "ctc_loss",
    "gaussian_nll",
    "log_softmax",
    "mse",
    "pinball",
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
    # estimators
    "AnomalyDetector",
    "Estimator",
    "Forecaster",
    "MusicModel",
    "Seq2Seq",
    "SequenceClassifier",
    # many series on Ray or Dask
    "Engine",
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
    # which path runs
    "explain",
    # errors
    "CheckpointError",
    "DistributedError",
    "InputError",
    "NotFittedError",
    "OutputError",
    "ResourceError",
    "RnnkitError",
    "RnnkitWarning",
    "ShapeError",
    "TrainingDiverged",
    # the process's BLAS threads and malloc, tuned only when asked
    "ProcessTuning",
    "tune_process",
    "__version__",
]
