"""Language modelling: train on any text, generate from the checkpoint.

Character level by default (``tokens="word"`` for words). The vocabulary is built from the
training split and stored in the checkpoint, so generation needs nothing else.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import (
    from_args,
    nonneg_float,
    nonneg_int,
    option,
    positive_float,
    positive_int,
    probability,
)
from ..data.text import TokenStreams, Vocabulary, default_corpus, read_text, split_validation
from ..errors import CheckpointError, InputError, RnnkitWarning
from ..io.checkpoint import load_checkpoint
from ..losses import cross_entropy, log_softmax
from ..models.language import LanguageModel
from ..stream import Stream
from ..training import TrainConfig, Trainer, TrainResult, last_path, read_last
from .lm_checks import (
    ResumePlan,
    check_memory,
    check_outputs,
    check_resume,
    data_fingerprint,
    warn_unknown,
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


class LMObjective:
    """Truncated BPTT over ``batch`` parallel streams with the hidden state carried along."""

    def __init__(self, model: LanguageModel, train: TokenStreams, valid: TokenStreams) -> None:
        self.model, self.train, self.valid = model, train, valid
        self.state: Any = None

    def train_step(self, step: int) -> tuple[float, int]:
        k = step % len(self.train)
        if k == 0:
            self.state = None  # a new pass over the data starts from a zero state
        x, y = self.train.chunk(k)
        logits, state, backward = self.model.forward_train(x, self.state)
        loss, dlogits = cross_entropy(logits, y)
        backward(dlogits)
        self.state = state  # carried into the next chunk, no gradient flows back into it
        return loss, int(y.size)

    def evaluate(self) -> float:
        return evaluate_streams(self.model, self.valid)

    def carry_arrays(self) -> dict[str, np.ndarray]:
        if self.state is None:
            return {}
        parts = self.state if isinstance(self.state, tuple) else (self.state,)
        return {f"state{i}": p for i, p in enumerate(parts)}

    def load_carry(self, arrays: dict[str, np.ndarray]) -> None:
        if not arrays:
            self.state = None
            return
        parts = tuple(arrays[f"state{i}"] for i in range(len(arrays)))
        self.state = parts if len(parts) == 2 else parts[0]


def evaluate_streams(model: LanguageModel, streams: TokenStreams) -> float:
    """Mean loss in nats per token over every chunk, the state carried from chunk to chunk."""
    state, total, count = None, 0.0, 0
    for k in range(len(streams)):
        x, y = streams.chunk(k)
        logits, state = model(x, state)
        loss, _ = cross_entropy(logits, y, reduction="sum")
        total += loss
        count += y.size
    return total / count


def prepare_data(cfg: LMRunConfig) -> tuple[str, str, str]:
    """Training text, validation text and a description of where they came from."""
    if cfg.text is None:
        text, source = default_corpus()
    else:
        text, source = read_text(cfg.text), str(cfg.text)
    if cfg.valid is not None:
        return text, read_text(cfg.valid), f"{source}; validation {cfg.valid}"
    train, valid = split_validation(text)
    return train, valid, f"{source}; validation: its last 10 %"


def train_lm(
    cfg: LMRunConfig,
    progress: bool = True,
    resume: bool = False,
    on_step: Any = None,
    log: Any = None,
    force: bool = False,
    progress_every: float = 30.0,
) -> tuple[TrainResult, dict[str, Any]]:
    """Train a language model as ``cfg`` says; return the result and the final metrics.

    Before any work: the outputs are checked (`check_outputs`; ``force`` replaces files that
    are not rnnkit's), a run to ``resume`` is read and compared with this one
    (`check_resume`; ``force`` continues despite changed settings or data), and the memory a
    step needs is compared with what is available (`check_memory`).
    """
    check_outputs(cfg, force)
    saved = read_last(last_path(Path(cfg.out))) if resume else None
    train_text, valid_text, source = prepare_data(cfg)
    vocab = Vocabulary.build(
        train_text, cfg.tokens, cfg.vocab_size if cfg.tokens == "word" else None
    )
    train_ids, valid_ids = vocab.encode(train_text), vocab.encode(valid_text)
    warn_unknown(valid_text, vocab, valid_ids)
    if cfg.eval_tokens and len(valid_ids) > cfg.eval_tokens + 1:
        valid_ids = valid_ids[: cfg.eval_tokens + 1]
    if len(train_ids) < cfg.batch * 2 + 1:
        raise InputError(
            f"train lm: the training text has {len(train_ids)} {cfg.tokens}s, too few for "
            f"--batch {cfg.batch}; expected at least {cfg.batch * 2 + 1}"
        )
    valid_batch = max(1, min(cfg.batch, (len(valid_ids) - 1) // 2))
    check_memory(cfg, len(vocab))
    data = data_fingerprint(train_text, valid_text)
    plan = ResumePlan()
    if saved is not None:
        plan = check_resume(last_path(Path(cfg.out)), saved.metadata, cfg, data, vocab, force)
    model = LanguageModel(
        len(vocab),
        cfg.cell,
        cfg.hidden,
        cfg.layers,
        cfg.embedding if not cfg.tie_weights else cfg.hidden,
        cfg.dropout,
        cfg.tie_weights,
        seed=cfg.seed,
    )
    objective = LMObjective(
        model,
        TokenStreams(train_ids, cfg.batch, cfg.bptt),
        TokenStreams(valid_ids, valid_batch, cfg.bptt),
    )
    tcfg = from_args(TrainConfig, cfg, unit=cfg.tokens)  # the training fields of the run
    metadata = {
        "task": "lm",
        "vocab": list(vocab.tokens),
        "level": vocab.level,
        "run": asdict(cfg),
        "source": source,
        "data": data,
    }
    if log is not None:
        log(
            f"data: {source}; {len(train_ids):,} training and {len(valid_ids):,} validation "
            f"{cfg.tokens}s, vocabulary {len(vocab)}"
        )
        log(
            f"model: {cfg.layers}-layer {cfg.cell.upper()} {cfg.hidden}, "
            f"{model.num_parameters():,} parameters"
        )
    trainer = Trainer(objective, tcfg, cfg.out, metadata, progress, on_step, progress_every)
    if saved is not None:
        position = trainer.resume(saved, carry=plan.carry, keep_best=plan.keep_best)
        if log is not None:
            log(f"resuming {last_path(Path(cfg.out))} at {position}")
    result = trainer.run()
    metrics = {
        "val_loss": result.val_loss,
        "val_bpc": result.val_loss / math.log(2),
        "best_val_loss": result.best_val_loss,
        "tokens_per_s": result.tokens_per_s,
        "steps": result.steps,
        "minutes": result.minutes,
        "parameters": model.num_parameters(),
        "checkpoint": str(cfg.out),
        "stopped": result.stopped,
    }
    return result, metrics


# -- generation ------------------------------------------------------------------------------
def load_lm(path: str | Path) -> tuple[LanguageModel, Vocabulary]:
    """A language model checkpoint: the model and its vocabulary."""
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt.model, LanguageModel):
        raise CheckpointError(
            f"generate: {str(path)!r} holds a {type(ckpt.model).__name__}, "
            "expected a language model trained by 'rnnkit train lm'"
        )
    source = f"generate: {str(path)!r}"
    return ckpt.model, Vocabulary.from_metadata(ckpt.metadata, ckpt.model.vocab_size, source)


def generate(
    model: LanguageModel,
    vocab: Vocabulary,
    prime: str = "",
    length: int = 500,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
) -> Iterator[str]:
    """Text piece by piece: the prime is read once, then each new token is one step from
    the carried state. ``temperature=0`` is greedy; ``top_k`` keeps the k likeliest.

    The arguments are checked, and symbols of the prime the model never saw are reported as
    an `RnnkitWarning`, when it is called, before the first piece is asked for."""
    if temperature < 0 or not math.isfinite(temperature):
        raise InputError(f"generate: temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise InputError(f"generate: top_k must be a positive integer, got {top_k}")
    if length < 0:
        raise InputError(f"generate: length must be >= 0, got {length}")
    _warn_unseen(vocab, prime)
    ids = vocab.encode(prime) if prime else np.zeros(0, dtype=np.int64)
    if len(ids) == 0:  # start from a newline when it is known, else from the unknown token
        ids = vocab.encode("\n") if "\n" in vocab.index else np.zeros(1, dtype=np.int64)
    return _pieces(model, vocab, ids, length, temperature, top_k, np.random.default_rng(seed))


def _pieces(
    model: LanguageModel,
    vocab: Vocabulary,
    ids: np.ndarray,
    length: int,
    temperature: float,
    top_k: int | None,
    rng: np.random.Generator,
) -> Iterator[str]:
    stream = Stream(model)
    last = stream.feed(ids)[-1]  # the whole prime in one pass: (T, V), then its last step
    previous = int(ids[-1])
    for _ in range(length):
        token = _sample(last, temperature, top_k, rng)
        yield vocab.decode_next(previous, token)
        previous = token
        last = stream.step(token)  # one step from the carried state: (V,)


def _warn_unseen(vocab: Vocabulary, prime: str, show: int = 5) -> None:
    """Warn when the prime holds symbols the model never saw: they are read as unknown."""
    index = vocab.index
    unseen = list(dict.fromkeys(t for t in vocab.split(prime) if t not in index or t == vocab.unk))
    if not unseen:
        return
    listed = ", ".join(repr(t) for t in unseen[:show])
    more = f" and {len(unseen) - show} more" if len(unseen) > show else ""
    noun = "symbol" if len(unseen) == 1 else "symbols"
    warnings.warn(
        f"generate: the prime has {len(unseen)} {noun} the model never saw ({listed}{more}); "
        f"they are read as the unknown token {vocab.unk!r}",
        RnnkitWarning,
        stacklevel=3,  # the caller of generate
    )


def _sample(
    logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator
) -> int:
    logits = logits.astype(np.float64)
    logits[0] = -np.inf  # never emit the unknown token (id 0): it stands for unseen symbols
    if top_k is not None and top_k < len(logits) - 1:
        cutoff = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits < cutoff, -np.inf, logits)
    if temperature == 0:
        return int(np.argmax(logits))
    p = np.exp(log_softmax(logits / temperature))
    return int(rng.choice(len(p), p=p / p.sum()))
