"""Language modelling: train on any text, generate from the checkpoint.

Character level by default (``tokens="word"`` for words). The vocabulary is built from the
training split and stored in the checkpoint, so generation needs nothing else.

This module is the recipe of ``rnnkit train lm`` (`train_lm`: read the text, build the model,
train, report the metrics); the rest lives beside it and is importable from here too:
`lm_config` (`LMRunConfig`, `SampleConfig`), `lm_objective` (`LMObjective`,
`evaluate_streams`), `lm_generate` (`load_lm`, `generate`) and `lm_checks` (what a run checks
before it starts).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..config import from_args
from ..data.text import TokenStreams, Vocabulary, default_corpus, read_text, split_validation
from ..errors import InputError
from ..models.language import LanguageModel
from ..training import TrainConfig, Trainer, TrainResult, last_path, read_last
from .lm_checks import (
    ResumePlan,
    check_memory,
    check_outputs,
    check_resume,
    data_fingerprint,
    warn_unknown,
)
from .lm_config import DEFAULT_MINUTES, LMRunConfig, SampleConfig
from .lm_generate import generate, load_lm
from .lm_objective import LMObjective, evaluate_streams

__all__ = [
    "DEFAULT_MINUTES",
    "LMObjective",
    "LMRunConfig",
    "SampleConfig",
    "evaluate_streams",
    "generate",
    "load_lm",
    "prepare_data",
    "train_lm",
]


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
