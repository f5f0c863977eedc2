"""The ``rnnkit`` command: parse, call a task, print. Progress to stderr, results to stdout."""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn

from .errors import RnnkitError


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnnkit", description="Recurrent neural networks on a CPU.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
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
        help="training steps of 64 sequences each (default: 800)",
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


def _demo(args: argparse.Namespace) -> dict:
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
        console=_stderr_console(),
    )


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        metrics = _demo(args)
    except RnnkitError as exc:
        print(f"rnnkit: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
