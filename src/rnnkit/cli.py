"""The ``rnnkit`` command: parse, call a task, print. Progress to stderr, results to stdout.

Bad input (missing or malformed files, unknown options, impossible values) ends with one line
``rnnkit: error: ...`` on stderr and exit status 2; a diverged training run exits with 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn

from .errors import RnnkitError, TrainingDiverged
from .tuning import tune_process


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit status 2
        self.exit(2, f"rnnkit: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _nonneg_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _probability(text: str) -> float:
    value = _nonneg_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1), got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnnkit", description="Recurrent neural networks on a CPU.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train a model for a task")
    tasks = train.add_subparsers(dest="task", required=True, parser_class=_Parser)
    _add_lm_arguments(tasks.add_parser("lm", help="a recurrent language model on any text"))

    gen = sub.add_parser("generate", help="generate text from a language-model checkpoint")
    gen.add_argument("checkpoint", help="a .safetensors file written by 'rnnkit train lm'")
    gen.add_argument("--prime", default="", help="text to start from (default: a newline)")
    gen.add_argument(
        "--length",
        type=_positive_int,
        default=500,
        help="number of tokens to generate (default: 500)",
    )
    gen.add_argument(
        "--temperature",
        type=_nonneg_float,
        default=0.8,
        help="sampling temperature; 0 is greedy (default: 0.8)",
    )
    gen.add_argument(
        "--top-k",
        type=_positive_int,
        default=None,
        help="sample only among the k likeliest tokens (default: all)",
    )
    gen.add_argument("--seed", type=int, default=None, help="random seed (default: random)")

    stream = sub.add_parser(
        "stream", help="serve a checkpoint line by line from stdin, state kept across lines"
    )
    stream.add_argument("checkpoint", help="a .safetensors checkpoint (layer, regressor or LM)")
    stream.add_argument(
        "--state",
        default=None,
        help="load the state from FILE at start (if it exists) and save it "
        "there at exit, atomically",
    )
    stream.add_argument(
        "--on-error",
        choices=["skip", "stop"],
        default="stop",
        help="on a malformed line: report it and go on, or stop with status 2 (default: stop)",
    )
    stream.add_argument(
        "--quantize",
        choices=["int8", "bfloat16"],
        default=None,
        help="store the weights as int8 (per-row scale) or bfloat16",
    )

    demo = sub.add_parser(
        "demo", help="train RNN, GRU and LSTM on the adding problem: which one remembers?"
    )
    demo.add_argument(
        "--cell",
        choices=["all", "lstm", "gru", "rnn"],
        default="all",
        help="recurrent cell, or all three in turn (default: all)",
    )
    demo.add_argument(
        "--length",
        type=_positive_int,
        default=60,
        help="sequence length T; the model must remember across it (default: 60)",
    )
    demo.add_argument("--hidden", type=_positive_int, default=32, help="hidden size (default: 32)")
    demo.add_argument(
        "--steps",
        type=_positive_int,
        default=1200,
        help="training steps of 64 sequences each (default: 1200)",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument(
        "--plot",
        default="runs/adding.png",
        help="where to write the loss curves as PNG (default: runs/adding.png)",
    )
    demo.add_argument(
        "--json",
        action="store_true",
        help="print the final metrics as one JSON object on the last line",
    )
    return parser


def _add_lm_arguments(p: argparse.ArgumentParser) -> None:
    from .tasks.lm import LMRunConfig

    d = LMRunConfig()
    p.add_argument(
        "--text",
        default=None,
        help="UTF-8 text file or folder of .txt files (default: the built-in corpus, "
        "the Python standard library's source code)",
    )
    p.add_argument(
        "--valid", default=None, help="validation text file (default: the last 10 %% of --text)"
    )
    p.add_argument(
        "--tokens",
        choices=["char", "word"],
        default=d.tokens,
        help=f"model characters or words (default: {d.tokens})",
    )
    p.add_argument(
        "--vocab-size",
        type=_positive_int,
        default=d.vocab_size,
        help=f"word level: keep this many most frequent words (default: {d.vocab_size})",
    )
    p.add_argument(
        "--cell",
        choices=["lstm", "gru", "rnn"],
        default=d.cell,
        help=f"recurrent cell (default: {d.cell})",
    )
    p.add_argument(
        "--layers",
        type=_positive_int,
        default=d.layers,
        help=f"stacked recurrent layers (default: {d.layers})",
    )
    p.add_argument(
        "--hidden", type=_positive_int, default=d.hidden, help=f"hidden size (default: {d.hidden})"
    )
    p.add_argument(
        "--embedding",
        type=_positive_int,
        default=d.embedding,
        help=f"embedding size (default: {d.embedding}; = --hidden with --tie-weights)",
    )
    p.add_argument(
        "--dropout",
        type=_probability,
        default=d.dropout,
        help=f"dropout on embeddings, between layers and before the head (default: {d.dropout})",
    )
    p.add_argument(
        "--tie-weights",
        action="store_true",
        help="share the embedding and output weights (word level)",
    )
    p.add_argument(
        "--batch",
        type=_positive_int,
        default=d.batch,
        help=f"parallel streams through the text (default: {d.batch})",
    )
    p.add_argument(
        "--bptt",
        type=_positive_int,
        default=d.bptt,
        help=f"steps of truncated backpropagation through time (default: {d.bptt})",
    )
    p.add_argument(
        "--lr",
        type=_positive_float,
        default=d.lr,
        help=f"peak learning rate of AdamW (default: {d.lr})",
    )
    p.add_argument(
        "--min-lr",
        type=_nonneg_float,
        default=d.min_lr,
        help=f"learning rate at the end of the cosine schedule (default: {d.min_lr})",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=d.warmup_steps,
        help=f"linear warm-up steps (default: {d.warmup_steps})",
    )
    p.add_argument(
        "--weight-decay",
        type=_nonneg_float,
        default=d.weight_decay,
        help=f"AdamW weight decay (default: {d.weight_decay})",
    )
    p.add_argument(
        "--clip",
        type=_positive_float,
        default=d.clip,
        help=f"global gradient-norm clipping threshold (default: {d.clip})",
    )
    p.add_argument("--steps", type=_positive_int, default=None, help="budget in optimizer steps")
    p.add_argument(
        "--minutes",
        type=_positive_float,
        default=None,
        help="budget in wall-clock minutes (default: 3 when no budget is given)",
    )
    p.add_argument(
        "--eval-every",
        type=_positive_int,
        default=d.eval_every,
        help=f"evaluate and checkpoint every N steps (default: {d.eval_every})",
    )
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default: {d.seed})")
    p.add_argument(
        "--out",
        default=d.out,
        help=f"checkpoint path; the loss curve goes next to it (default: {d.out})",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved in <out>.last.safetensors exactly",
    )
    p.add_argument(
        "--sample",
        type=int,
        default=400,
        help="tokens to generate from the best checkpoint at the end (default: 400)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the final metrics as one JSON object on the last line",
    )


# -- commands --------------------------------------------------------------------------------
def _train_lm(args: argparse.Namespace) -> dict[str, Any]:
    from .tasks.lm import LMRunConfig, generate, load_lm, train_lm
    from .training import log_to_stderr

    minutes = args.minutes if (args.minutes or args.steps) else 3.0
    cfg = LMRunConfig(
        text=args.text,
        valid=args.valid,
        tokens=args.tokens,
        vocab_size=args.vocab_size,
        cell=args.cell,
        layers=args.layers,
        hidden=args.hidden,
        embedding=args.embedding,
        dropout=args.dropout,
        tie_weights=args.tie_weights,
        batch=args.batch,
        bptt=args.bptt,
        lr=args.lr,
        min_lr=args.min_lr,
        warmup_steps=args.warmup,
        weight_decay=args.weight_decay,
        clip=args.clip,
        steps=args.steps,
        minutes=minutes,
        eval_every=args.eval_every,
        seed=args.seed,
        out=args.out,
    )
    _, metrics = train_lm(cfg, progress=sys.stderr.isatty(), resume=args.resume, log=log_to_stderr)
    print(
        f"validation loss {metrics['val_loss']:.4f} nats/{args.tokens} "
        f"({metrics['val_bpc']:.3f} bits), {metrics['steps']} steps in "
        f"{metrics['minutes']:.1f} min, {metrics['tokens_per_s']:,.0f} {args.tokens}s/s"
    )
    print(
        f"checkpoint: {metrics['checkpoint']} (best validation loss {metrics['best_val_loss']:.4f})"
    )
    if args.sample > 0:
        model, vocab = load_lm(cfg.out)
        print(f"--- sample ({args.sample} {args.tokens}s, temperature 0.8) ---")
        for piece in generate(model, vocab, "", args.sample, 0.8, seed=args.seed):
            sys.stdout.write(piece)
        print("\n---")
    return metrics


def _generate(args: argparse.Namespace) -> dict[str, Any]:
    from .tasks.lm import generate, load_lm

    model, vocab = load_lm(args.checkpoint)
    sys.stdout.write(args.prime)
    for piece in generate(
        model, vocab, args.prime, args.length, args.temperature, args.top_k, args.seed
    ):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return {}


def _stream(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    from .tasks.streaming import LineServer, serve

    server = LineServer(args.checkpoint, args.quantize)
    if args.state and Path(args.state).exists():
        server.stream.load_state(args.state)
    try:
        report = serve(server, sys.stdin, sys.stdout, sys.stderr, args.on_error)
    finally:
        if args.state and server.stream.state is not None:
            server.stream.save_state(args.state)
    return {"lines": report.lines, "errors": report.errors}


def _demo(args: argparse.Namespace) -> dict[str, Any]:
    from .tasks.adding import AddingConfig, plot_curves, train_adding

    cells = ["rnn", "gru", "lstm"] if args.cell == "all" else [args.cell]
    print(
        f"adding problem: remember two marked values across T={args.length} steps and add "
        f"them; guessing the mean scores MSE 0.167",
        file=sys.stderr,
    )
    results: dict[str, dict] = {}
    curves: dict[str, list[float]] = {}
    for cell in cells:
        cfg = AddingConfig(
            cell=cell, length=args.length, hidden=args.hidden, steps=args.steps, seed=args.seed
        )
        curves[cell] = []
        with _progress() as progress:
            task = progress.add_task(f"{cell.upper():5s}", total=cfg.steps, msg="")

            def report(step: int, loss: float, cell: str = cell, task=task, progress=progress):
                curves[cell].append(loss)
                if step % 20 == 0:
                    recent = sum(curves[cell][-20:]) / 20
                    progress.update(task, completed=step, msg=f"train mse {recent:.4f}")

            _, results[cell] = train_adding(cfg, report)
    print(f"{'cell':6s}{'test mse':>10s}{'vs guessing':>13s}{'seconds':>9s}")
    for cell, m in results.items():
        ratio = m["test_mse"] / m["baseline_mse"]
        print(f"{cell.upper():6s}{m['test_mse']:10.4f}{ratio:12.1%}{60 * m['minutes']:9.1f}")
    if args.plot:
        path = plot_curves(curves, args.plot, args.length)
        print(f"loss curves: {path}", file=sys.stderr)
    return {cell: m["test_mse"] for cell, m in results.items()} | {
        "baseline_mse": 1.0 / 6.0,
        "steps": args.steps,
        "length": args.length,
    }


def _progress():
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[msg]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )


COMMANDS = {"train": _train_lm, "generate": _generate, "stream": _stream, "demo": _demo}


def main(argv: list[str] | None = None) -> int:
    # first: malloc set before the first large buffer; OpenBLAS's timeout reaches this process
    # only from the environment (the package root has loaded NumPy by now: see tune_process)
    tune_process()
    args = build_parser().parse_args(argv)
    try:
        metrics = COMMANDS[args.command](args)
    except TrainingDiverged as exc:
        print(f"rnnkit: {exc}", file=sys.stderr)
        return 1
    except RnnkitError as exc:
        print(f"rnnkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `rnnkit generate ... | head`
        return 0
    if getattr(args, "json", False):
        print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
