"""What int8 and bfloat16 weights cost in accuracy and gain in step latency and memory.

    python benchmarks/quantization.py --checkpoint runs/eval/shakespeare.safetensors

1. Step latency of `Stream.step` at batch 1 for an LSTM with hidden size 512 (input 512), one
   layer, float32 against int8 and bfloat16: --rounds rounds, the three kinds interleaved in
   each, --steps calls each; the median time per call.
2. Weight memory of each kind, as stored.
3. Accuracy: the validation loss of a character language model checkpoint (the Tiny
   Shakespeare one `make eval-lm` writes) on the first --valid-chars of its validation split.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(key, "2")

import numpy as np  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.data.text import TokenStreams, read_text, split_validation  # noqa: E402
from rnnkit.models.language import LanguageModel  # noqa: E402
from rnnkit.quantize import weight_bytes  # noqa: E402
from rnnkit.tasks.lm import evaluate_streams, load_lm  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("float32", "int8", "bfloat16")


def latency(hidden: int, steps: int, rounds: int) -> dict[str, float]:
    layer = rnnkit.LSTM(hidden, hidden, seed=0)
    models = {"float32": layer, **{k: rnnkit.quantize(layer, k) for k in KINDS[1:]}}
    xs = np.random.default_rng(0).standard_normal((steps, hidden)).astype(np.float32)
    times: dict[str, list[float]] = {k: [] for k in KINDS}
    for k in KINDS:  # warm up: compile the kernels, touch the weights
        s = rnnkit.Stream(models[k])
        for x in xs[:50]:
            s.step(x)
    for _ in range(rounds):
        for k in KINDS:
            s = rnnkit.Stream(models[k])
            per_call = []
            for x in xs:
                t0 = time.perf_counter()
                s.step(x)
                per_call.append(time.perf_counter() - t0)
            times[k].append(statistics.median(per_call))
    return {k: statistics.median(v) * 1e6 for k, v in times.items()}  # microseconds


def accuracy(checkpoint: Path, text: Path, valid_chars: int) -> dict[str, float]:
    model, vocab = load_lm(checkpoint)
    _, valid = split_validation(read_text(text))
    ids = vocab.encode(valid[:valid_chars])
    streams = TokenStreams(ids, 32, 100)
    out = {"float32": evaluate_streams(model, streams)}
    for k in KINDS[1:]:
        quantized = rnnkit.quantize(model, k)
        assert isinstance(quantized, LanguageModel)
        out[k] = evaluate_streams(quantized, streams)
    return out


def main() -> int:
    rnnkit.tune_process()  # malloc's thresholds, as the rnnkit command sets them
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, default=ROOT / "runs/eval/shakespeare.safetensors")
    p.add_argument(
        "--text", type=Path, default=ROOT.parent / "shared/data/text/tinyshakespeare.txt"
    )
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--valid-chars", type=int, default=50_000)
    p.add_argument("--out", type=Path, default=ROOT / "runs/eval")
    args = p.parse_args()

    lat = latency(args.hidden, args.steps, args.rounds)
    layer = rnnkit.LSTM(args.hidden, args.hidden, seed=0)
    mem = {"float32": weight_bytes(layer)}
    mem.update({k: weight_bytes(rnnkit.quantize(layer, k)) for k in KINDS[1:]})
    acc = None
    if args.checkpoint.is_file() and args.text.is_file():
        acc = accuracy(args.checkpoint, args.text, args.valid_chars)
    source = f"validation loss of {args.checkpoint}" if acc else "no validation loss"
    rows = [
        f"LSTM hidden {args.hidden}, batch 1, Stream.step; median of {args.rounds} "
        f"interleaved rounds of {args.steps} steps; {source}",
        "",
        "| weights | step latency (us) | vs float32 | weight memory (KiB) | "
        "validation loss (nats/char) |",
        "|---|---|---|---|---|",
    ]
    for k in KINDS:
        val = f"{acc[k]:.4f} ({acc[k] - acc['float32']:+.4f})" if acc else "n/a"
        rows.append(
            f"| {k} | {lat[k]:.1f} | {lat['float32'] / lat[k]:.2f}x | "
            f"{mem[k] / 1024:,.0f} | {val} |"
        )
    table = "\n".join(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quantization.json").write_text(
        json.dumps(
            {
                "latency_us": lat,
                "weight_bytes": mem,
                "val_loss": acc,
                "checkpoint": str(args.checkpoint),
            },
            indent=2,
        )
    )
    (args.out / "quantization.md").write_text(table + "\n")
    print(table)
    if acc is None:
        print("(no checkpoint: run `make eval-lm` first for the accuracy column)")
    return 0 if all(math.isfinite(v) for v in lat.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
