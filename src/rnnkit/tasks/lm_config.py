"""The options of the language-model commands, declared once: `LMRunConfig` (one run of
``rnnkit train lm``, saved in its checkpoint) and `SampleConfig` (``rnnkit generate``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import (
    nonneg_float,
    nonneg_int,
    option,
    positive_float,
    positive_int,
    probability,
)

DEFAULT_MINUTES = 3.0  # the budget of a run that names none (`rnnkit train lm`)


@dataclass(frozen=True)
class LMRunConfig:
    """One training run: data, model and training settings (saved in the checkpoint).

    Each field is also an option of ``rnnkit train lm`` (``vocab_size`` is ``--vocab-size``).
    """

    text: str | None = option(
        None,
        help="UTF-8 text file or folder of .txt files",
        default_help="the built-in corpus, the Python standard library's source code",
    )
    valid: str | None = option(
        None, help="validation text file", default_help="the last 10 % of --text"
    )
    tokens: str = option("char", help="model characters or words", choices=("char", "word"))
    vocab_size: int = option(
        10_000, help="word level: keep this many most frequent words", type=positive_int
    )
    cell: str = option("lstm", help="recurrent cell", choices=("lstm", "gru", "rnn"))
    layers: int = option(2, help="stacked recurrent layers", type=positive_int)
    hidden: int = option(512, help="hidden size", type=positive_int)
    embedding: int = option(
        64, help="embedding size (= --hidden with --tie-weights)", type=positive_int
    )
    dropout: float = option(
        0.1, help="dropout on embeddings, between layers and before the head", type=probability
    )
    tie_weights: bool = option(False, help="share the embedding and output weights (word level)")
    batch: int = option(32, help="parallel streams through the text", type=positive_int)
    bptt: int = option(
        100, help="steps of truncated backpropagation through time", type=positive_int
    )
    lr: float = option(3e-3, help="peak learning rate of AdamW", type=positive_float)
    min_lr: float = option(
        1e-4, help="learning rate at the end of the cosine schedule", type=nonneg_float
    )
    warmup_steps: int = option(50, help="linear warm-up steps", flag="--warmup", type=nonneg_int)
    weight_decay: float = option(0.0, help="AdamW weight decay", type=nonneg_float)
    clip: float = option(1.0, help="global gradient-norm clipping threshold", type=positive_float)
    steps: int | None = option(
        None,
        help="budget in optimizer steps",
        type=positive_int,
        default_help="none",
    )
    minutes: float | None = option(
        None,
        help="budget in wall-clock minutes",
        type=positive_float,
        default_help=f"{DEFAULT_MINUTES:g} when neither budget is given",
    )
    eval_every: int = option(250, help="evaluate and checkpoint every N steps", type=positive_int)
    eval_tokens: int = option(
        200_000, help="cap on the validation tokens per evaluation", type=positive_int
    )
    seed: int = option(0, help="random seed")
    out: str = option("runs/lm.safetensors", help="checkpoint path; the loss curve goes next to it")


@dataclass(frozen=True)
class SampleConfig:
    """How `generate` samples; each field is also an option of ``rnnkit generate``."""

    prime: str = option("", help="text to start from", default_help="a newline")
    length: int = option(500, help="number of tokens to generate", type=positive_int)
    temperature: float = option(0.8, help="sampling temperature; 0 is greedy", type=nonneg_float)
    top_k: int | None = option(
        None,
        help="sample only among the k likeliest tokens",
        type=positive_int,
        default_help="all",
    )
    seed: int | None = option(None, help="random seed", default_help="random")
