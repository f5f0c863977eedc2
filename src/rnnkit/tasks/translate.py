"""Translation: ``rnnkit train translate`` and ``rnnkit translate``.

``train translate`` reads tab-separated sentence pairs (Tatoeba/Anki, `rnnkit.data.pairs`),
holds out fixed validation and test parts when no ``--valid``/``--test`` file is given (and
says so), fits a `Seq2Seq` (best checkpoint by validation BLEU), and scores the test part with
sacreBLEU (BLEU and chrF of the detokenised beam-search output, with the signature).
``translate`` writes one translation per input line (files or standard input); ``--attention
PNG`` draws the first sentence's attention weights.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import (
    add_options,
    from_args,
    nonneg_float,
    nonneg_int,
    option,
    positive_float,
    positive_int,
    probability,
)
from ..data.pairs import read_pairs, split_pairs
from ..data.text import decode_utf8, lines_of
from ..errors import CheckpointError, InputError, RnnkitWarning
from ..estimators.seq2seq import Seq2Seq
from ..files import check_output, save_figure
from ..io.checkpoint import load, load_checkpoint
from ..training import log_to_stderr, plot_path


@dataclass(frozen=True)
class TranslateConfig:
    """One ``rnnkit train translate`` run; each field is also its option."""

    pairs: str = option("", help="tab-separated source<TAB>target lines (Tatoeba/Anki)")
    valid: str | None = option(
        None, help="validation pairs", default_help="5 % of the source sentences, at most 1000"
    )
    test: str | None = option(
        None, help="test pairs, scored at the end", default_help="5 % held out, at most 1000"
    )
    reverse: bool = option(False, help="swap the columns: translate the second into the first")
    level: str = option("word", help="token level", choices=("word", "char"))
    lowercase: bool = option(True, help="lower-case the text (word and char level)")
    split_punctuation: bool = option(True, help="split punctuation from words (word level)")
    min_count: int = option(2, help="tokens seen fewer times are <unk>", type=positive_int)
    max_vocab: int | None = option(
        None, help="largest vocabulary per side", type=positive_int, default_help="no limit"
    )
    cell: str = option("gru", help="recurrent cell", choices=("gru", "lstm", "rnn"))
    attention: str = option(
        "general", help="decoder attention", choices=("general", "dot", "additive", "none")
    )
    input_feeding: bool = option(False, help="feed the last attentional state to the decoder")
    embedding: int = option(256, help="embedding size", type=positive_int)
    hidden: int = option(256, help="hidden size (half per encoder direction)", type=positive_int)
    layers: int = option(1, help="recurrent layers of encoder and decoder", type=positive_int)
    dropout: float = option(0.2, help="dropout on embeddings and outputs", type=probability)
    tie_embeddings: bool = option(False, help="share the decoder's embedding and output weights")
    label_smoothing: float = option(
        0.0, help="label smoothing of the training loss; 0: none", type=probability
    )
    teacher_forcing: float = option(
        1.0, help="share of decoder inputs taken from the reference", type=probability
    )
    teacher_forcing_decay: float = option(
        0.0, help="lowered by this much per epoch", type=nonneg_float
    )
    batch: int = option(64, help="sentence pairs per batch", type=positive_int)
    lr: float = option(2e-3, help="peak learning rate of AdamW", type=positive_float)
    weight_decay: float = option(0.1, help="AdamW's decoupled weight decay", type=nonneg_float)
    epochs: float | None = option(
        None, help="budget in passes over the data", type=positive_float, default_help="10"
    )
    minutes: float | None = option(
        None, help="budget in wall-clock minutes", type=positive_float, default_help="none"
    )
    patience: int = option(
        0, help="stop after N epochs without a better validation BLEU; 0: never", type=nonneg_int
    )
    beam: int = option(5, help="beam width for the test score and translate", type=positive_int)
    length_penalty: float = option(
        1.0, help="beam scores divided by length to this power", type=nonneg_float
    )
    max_length_ratio: float = option(
        2.0, help="longest translation: this times the source's tokens, plus 2", type=positive_float
    )
    seed: int = option(0, help="random seed (the held-out split too)")
    out: str = option("runs/translate.safetensors", help="the model file; loss curve beside it")


def train_translate(cfg: TranslateConfig, force: bool = False, resume: bool = False) -> dict:
    out = Path(cfg.out)
    inputs = (cfg.pairs, cfg.valid, cfg.test)
    check_output(out, "checkpoint", inputs=inputs, force=force)
    check_output(plot_path(out), "png", inputs=inputs, force=force, what="--out (loss plot)")
    pairs = read_pairs(cfg.pairs, cfg.reverse, what="--pairs")
    valid = read_pairs(cfg.valid, cfg.reverse, what="--valid") if cfg.valid else None
    test = read_pairs(cfg.test, cfg.reverse, what="--test") if cfg.test else None
    split_note = "validation and test pairs from --valid and --test"
    if valid is None or test is None:
        split = split_pairs(
            pairs,
            cfg.seed,
            valid=0 if valid is not None else 0.05,
            test=0 if test is not None else 0.05,
            source=repr(cfg.pairs),
        )
        pairs = split.train
        valid = valid if valid is not None else split.valid
        test = test if test is not None else split.test
        split_note = split.describe
    log_to_stderr(split_note)
    model = Seq2Seq(
        level=cfg.level,
        lowercase=cfg.lowercase,
        split_punctuation=cfg.split_punctuation,
        min_count=cfg.min_count,
        max_vocab=cfg.max_vocab,
        cell=cfg.cell,
        embedding_dim=cfg.embedding,
        hidden_size=cfg.hidden,
        num_layers=cfg.layers,
        attention=cfg.attention,
        input_feeding=cfg.input_feeding,
        dropout=cfg.dropout,
        tie_embeddings=cfg.tie_embeddings,
        label_smoothing=cfg.label_smoothing,
        teacher_forcing=cfg.teacher_forcing,
        teacher_forcing_decay=cfg.teacher_forcing_decay,
        beam=cfg.beam,
        length_penalty=cfg.length_penalty,
        max_length_ratio=cfg.max_length_ratio,
        batch_size=cfg.batch,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        epochs=cfg.epochs,
        minutes=cfg.minutes,
        patience=cfg.patience or None,
        seed=cfg.seed,
        verbose=True,
    )
    model.fit(
        [s for s, _ in pairs],
        [t for _, t in pairs],
        [s for s, _ in valid],
        [t for _, t in valid],
        out=out,
        metadata={"run": asdict(cfg), "split": split_note},
        resume=resume,
        force=force,
    )
    metrics: dict[str, Any] = {
        "val_bleu": model.best_val_bleu_,
        "val_decoding": "greedy",
        "pairs_per_second": model.throughput_,
        "train_pairs": len(pairs),
        "valid_pairs": len(valid),
        "test_pairs": len(test),
        "split": split_note,
        "steps": model.n_steps_,
        "train_minutes": model.train_minutes_,
        "stopped": model.stopped_,
        "checkpoint": str(out),
    }
    scores = model.evaluate([s for s, _ in test], [t for _, t in test], cfg.beam)
    metrics |= {
        "test_bleu": scores["bleu"],
        "test_chrf": scores["chrf"],
        "beam": cfg.beam,
        "signature": scores["signature"],
        "chrf_signature": scores["chrf_signature"],
    }
    return metrics


def load_translator(path: str) -> Seq2Seq:
    model = load(path)
    if not isinstance(model, Seq2Seq):
        raise CheckpointError(
            f"{path!r} holds no translation model; expected a model from 'rnnkit train translate'"
        )
    return model


def read_lines(files: list[str]) -> list[str]:
    """The lines of ``files``, or of standard input when there are none: UTF-8 (a byte-order
    mark dropped, so it does not become part of the first sentence) or UTF-16 with its mark,
    as `rnnkit.data.text.decode_utf8` reads them."""
    if not files:
        return lines_of(sys.stdin.read().removeprefix("\ufeff"))
    lines: list[str] = []
    for name in files:
        path = Path(name)
        if not path.is_file():
            raise InputError(f"translate: no such file {name!r}")
        lines += lines_of(decode_utf8(path, "translate"))
    return lines


def source_side(lines: list[str], checkpoint: str) -> list[str]:
    """``lines`` as they are, or, when every line holding text holds a tab (a file of pairs,
    ``source<TAB>target``), the column the model reads: the first, the second for a model
    trained with ``--reverse``; a warning says so."""
    full = [line for line in lines if line.strip()]
    if not full or not all("\t" in line for line in full):
        return lines
    run = load_checkpoint(checkpoint).metadata.get("run", {})
    column = 1 if isinstance(run, dict) and run.get("reverse") else 0
    warnings.warn(
        f"translate: every line holds a tab, as in a file of sentence pairs; translating "
        f"column {column + 1} of each (the model's source side)",
        RnnkitWarning,
        stacklevel=2,
    )
    return [fields[column] if len(fields := line.split("\t")) > column else "" for line in lines]


def plot_attention(source: list[str], target: list[str], weights: np.ndarray, path: Path) -> Path:
    """The attention matrix: a row per translated token, a column per source token."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.5 + 0.45 * len(source), 1.2 + 0.4 * len(target)))
    image = ax.imshow(weights, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    ax.set_xticks(range(len(source)), source, rotation=60, ha="right")
    ax.set_yticks(range(len(target)), target)
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    fig.tight_layout()
    saved = save_figure(fig, path, "--attention")
    plt.close(fig)
    return saved


# -- the command line ----------------------------------------------------------------------------
def add_train_parser(tasks: Any) -> Any:
    """``rnnkit train translate``; the parser, for the command's fit flags."""
    p = tasks.add_parser(
        "translate", help="an encoder-decoder with attention from tab-separated sentence pairs"
    )
    p.add_argument(
        "--pairs", required=True, help="tab-separated source<TAB>target lines (Tatoeba/Anki)"
    )
    add_options(p, TranslateConfig, exclude=("pairs",))
    return p  # the command adds --resume, --force and --json, as for every estimator


def add_parser(sub: Any) -> None:
    """``rnnkit translate``."""
    p = sub.add_parser("translate", help="translate sentences, one per line, with a Seq2Seq model")
    p.add_argument("checkpoint", help="a .safetensors file written by 'rnnkit train translate'")
    p.add_argument("files", nargs="*", help="text files, one sentence per line (default: stdin)")
    p.add_argument(
        "--beam",
        type=positive_int,
        default=None,
        help="beam width; 1: greedy (default: the model's)",
    )
    p.add_argument(
        "--attention",
        default=None,
        help="draw the first sentence's attention weights to this PNG (default: none)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --attention file that is not rnnkit's (default: refuse)",
    )
    p.add_argument(
        "--json", action="store_true", help="a JSON summary on the last line (default: off)"
    )


def run_train(args: argparse.Namespace) -> dict[str, Any]:
    cfg = from_args(TranslateConfig, args)
    metrics = train_translate(cfg, args.force, args.resume)
    print(
        f"test BLEU {metrics['test_bleu']:.2f}, chrF {metrics['test_chrf']:.2f} (beam "
        f"{metrics['beam']}, {metrics['test_pairs']} pairs); best validation BLEU "
        f"{metrics['val_bleu']:.2f} (greedy)"
    )
    print(f"sacreBLEU: {metrics['signature']}")
    print(
        f"{metrics['steps']} steps in {metrics['train_minutes']:.1f} min ({metrics['stopped']}), "
        f"{metrics['pairs_per_second']:,.0f} pairs/s"
    )
    print(f"checkpoint: {metrics['checkpoint']}")
    return metrics


def run_translate(args: argparse.Namespace) -> dict[str, Any]:
    model = load_translator(args.checkpoint)
    picture = None
    if args.attention:
        picture = check_output(args.attention, "png", force=args.force, what="--attention")
    lines = source_side(read_lines(args.files), args.checkpoint)
    kept = [i for i, line in enumerate(lines) if line.strip()]
    translated = model.predict([lines[i] for i in kept], args.beam) if kept else []
    out = [""] * len(lines)
    for i, text in zip(kept, translated, strict=True):
        out[i] = text
    for text in out:
        print(text)
    result: dict[str, Any] = {"sentences": len(kept)}
    if picture is not None:
        if not kept:
            raise InputError("--attention: expected at least one sentence to translate")
        src, tgt, weights = model.attention_of(lines[kept[0]], args.beam)
        if weights is None:
            raise InputError("--attention: the model has no attention (trained with 'none')")
        result["attention"] = str(plot_attention(src, tgt, weights, picture))
        log_to_stderr(f"attention of the first sentence: {picture}")
    return result
