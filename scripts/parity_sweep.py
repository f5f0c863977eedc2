"""Worst relative error of rnnkit against torch.nn over many random configurations.

    python scripts/parity_sweep.py --configs 400

Each configuration draws the cell (RNN tanh/relu, LSTM, GRU), sizes, layers (1-3), direction,
batch_first, bias, unsorted variable lengths through pack_padded_sequence, and an initial state;
half the configurations run in float64 and half in float32. Compared: outputs, final states,
input gradients, initial-state gradients and every parameter gradient. Relative error of an
array is max|a - b| / max|b|.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from parity import MODES, random_config, run_cell, run_config  # noqa: E402

TOL = {"float64": 1e-9, "float32": 1e-4}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=400, help="layer configurations in all")
    parser.add_argument("--seed", type=int, default=0, help="seed of the configuration draw")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    failed = 0
    for dtype in ("float64", "float32"):
        worst, where, count = 0.0, "", 0
        for i in range(args.configs // 2):
            cfg = random_config(rng, dtype)
            errs = run_config(cfg, seed=args.seed * 100_000 + i)
            count += 1
            key = max(errs, key=errs.get)
            if errs[key] >= worst:
                worst, where = errs[key], f"{key} in {cfg}"
        for mode in MODES:
            for s in range(25):
                errs = run_cell(mode, dtype, seed=s)
                count += 1
                key = max(errs, key=errs.get)
                if errs[key] >= worst:
                    worst, where = errs[key], f"{key} in {mode}Cell seed {s}"
        ok = worst <= TOL[dtype]
        failed += not ok
        print(
            f"{dtype}: {count} configurations, worst relative error {worst:.3e} "
            f"(tolerance {TOL[dtype]:g}) {'ok' if ok else 'FAILED'}"
        )
        print(f"  worst at {where}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
