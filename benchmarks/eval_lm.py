"""`make eval-lm`: the language-model evaluation on Tiny Shakespeare, rnnkit beside PyTorch.

1. rnnkit trains the default model (`rnnkit train lm`) for --minutes on the text; then the
   same model in PyTorch (benchmarks/lm_torch.py) for the same wall-clock budget, same data,
   split, hyperparameters and threads. Each runs in its own process.
2. Throughput, interleaved: --repeats rounds of A B (fixed steps each, separate processes);
   the medians and their ratio.

Writes runs/eval/lm.json and runs/eval/lm.md (with --quick: runs/eval-quick/, so a smoke test
never replaces a full run's results or checkpoint) and prints the table.

    python benchmarks/eval_lm.py                 # 2 x 15 minutes plus about 3 minutes
    python benchmarks/eval_lm.py --quick         # a tiny model for a few seconds: a smoke test
    python benchmarks/eval_lm.py --throughput-only   # keep the trained results, re-time only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = ROOT.parent / "shared" / "data" / "text" / "tinyshakespeare.txt"
THREADS = "2"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[key] = THREADS
    # OpenBLAS's idle threads sleep at once, on both sides, as in `make bench`: the variable is
    # read when NumPy loads OpenBLAS, so it comes from the environment (rnnkit.tune_process)
    env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    return env


def _run(cmd: list[str]) -> tuple[dict, str]:
    """Run a command; return the JSON of its last stdout line and the stdout before it."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"eval-lm: {' '.join(cmd[:4])} ... failed with status {proc.returncode}")
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]), "\n".join(lines[:-1])


def rnnkit_cmd(
    text: Path, budget: list[str], model: list[str], out: Path, sample: int
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rnnkit.cli",
        "train",
        "lm",
        "--text",
        str(text),
        *budget,
        *model,
        "--out",
        str(out),
        "--json",
        "--sample",
        str(sample),
    ]


def torch_cmd(text: Path, budget: list[str], model: list[str]) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "benchmarks" / "lm_torch.py"),
        "--text",
        str(text),
        *budget,
        *model,
        "--threads",
        THREADS,
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--text", type=Path, default=TEXT, help="training text (default: Tiny Shakespeare)"
    )
    p.add_argument("--minutes", type=float, default=15.0, help="training budget of each side")
    p.add_argument("--repeats", type=int, default=3, help="interleaved throughput rounds")
    p.add_argument("--throughput-steps", type=int, default=30, help="steps per throughput run")
    p.add_argument("--quick", action="store_true", help="tiny model, seconds: a smoke test")
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (runs/eval; --quick: runs/eval-quick)"
    )
    p.add_argument(
        "--throughput-only",
        action="store_true",
        help="keep the trained results in <out>/lm.json and measure the throughput again",
    )
    args = p.parse_args()
    if args.out is None:
        args.out = ROOT / "runs" / ("eval-quick" if args.quick else "eval")
    if not args.text.is_file():
        raise SystemExit(
            f"eval-lm: no text file {args.text}; expected ../shared/data beside the repo"
        )
    model: list[str] = []
    if args.quick:
        model = [
            "--hidden",
            "32",
            "--layers",
            "1",
            "--batch",
            "8",
            "--bptt",
            "20",
            "--eval-every",
            "10",
            "--warmup",
            "2",
        ]
        args.minutes, args.repeats, args.throughput_steps = 0.05, 1, 4
    args.out.mkdir(parents=True, exist_ok=True)
    budget = ["--minutes", str(args.minutes)]

    if args.throughput_only:
        before = json.loads((args.out / "lm.json").read_text())
        ours, theirs, sample = before["rnnkit"], before["torch"], before["sample"]
        args.minutes = before["minutes"]
    else:
        print(f"rnnkit: training for {args.minutes} min ...", file=sys.stderr, flush=True)
        ours, sample = _run(
            rnnkit_cmd(args.text, budget, model, args.out / "shakespeare.safetensors", 400)
        )
        print(
            f"rnnkit: val loss {ours['val_loss']:.4f}; PyTorch: training for "
            f"{args.minutes} min ...",
            file=sys.stderr,
            flush=True,
        )
        theirs, _ = _run(torch_cmd(args.text, budget, model))

    speeds: dict[str, list[float]] = {"rnnkit": [], "torch": []}
    steps = ["--steps", str(args.throughput_steps), "--eval-every", "100000"]
    for r in range(args.repeats):
        print(f"throughput round {r + 1}/{args.repeats}", file=sys.stderr, flush=True)
        speeds["rnnkit"].append(
            _run(rnnkit_cmd(args.text, steps, model, args.out / "throughput.safetensors", 0))[0][
                "tokens_per_s"
            ]
        )
        speeds["torch"].append(_run(torch_cmd(args.text, steps, model))[0]["tokens_per_s"])
    med = {k: statistics.median(v) for k, v in speeds.items()}
    result = {
        "minutes": args.minutes,
        "rnnkit": ours,
        "torch": theirs,
        "throughput_chars_per_s": speeds,
        "throughput_ratio_rnnkit_over_torch": med["rnnkit"] / med["torch"],
        "sample": sample,
    }
    table = "\n".join(
        [
            f"Tiny Shakespeare, char LSTM {ours['parameters']:,} parameters, {args.minutes:g} min "
            f"each, {THREADS} threads",
            "",
            "| | validation loss (nats/char) | bits/char | steps | chars/s in training (median of "
            f"{args.repeats} interleaved runs) |",
            "|---|---|---|---|---|",
            f"| rnnkit | {ours['val_loss']:.4f} | {ours['val_bpc']:.3f} | {ours['steps']} | "
            f"{med['rnnkit']:,.0f} |",
            f"| PyTorch 2.13 | {theirs['val_loss']:.4f} | {theirs['val_bpc']:.3f} | "
            f"{theirs['steps']} | "
            f"{med['torch']:,.0f} |",
            "",
            f"rnnkit / PyTorch throughput: {result['throughput_ratio_rnnkit_over_torch']:.2f}x",
        ]
    )
    (args.out / "lm.json").write_text(json.dumps(result, indent=2))
    (args.out / "lm.md").write_text(table + "\n\n```\n" + sample + "\n```\n")
    print(table)
    print(sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())
