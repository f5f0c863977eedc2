"""A probe (not a benchmark): does an AnomalyDetector whose network keeps learning as the stream
goes on score better on NAB? Whole-series path only; every ``every`` values after the
probationary period, ``steps`` AdamW steps on the last ``window`` values (a ring buffer in a
stream), each value scored before it is learned from.

    python benchmarks/probe_online.py --data /tmp/NAB --seeds 0,1,2 \
        --configs '[{}, {"every": 500, "steps": 5, "lr": 3e-3}]'

Prints the standard score on the 24 shared files, the other 34 and all 58, per config and seed.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RNNKIT_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from eval_anomaly import read_nab_csv  # noqa: E402

from rnnkit import nab  # noqa: E402
from rnnkit.estimators import anomaly as A  # noqa: E402
from rnnkit.losses import gaussian_nll  # noqa: E402
from rnnkit.optim import AdamW, clip_grad_norm  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "anomaly" / "nab"


def chunks(z: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    n = z.size - 1
    length = min(chunk, n)
    starts = list(range(0, n - length + 1, length))
    if starts[-1] != n - length:
        starts.append(n - length)
    x = np.stack([z[a : a + length] for a in starts], axis=1)[..., None]  # (L, B, 1)
    y = np.stack([z[a + 1 : a + length + 1] for a in starts], axis=1)
    return x, y


def learn(model, opt, z, steps, chunk, head_only, blocks):
    x, y = chunks(z, chunk)
    shape = (*y.shape, model.members)
    y3 = np.broadcast_to(y[..., None], shape)
    for _ in range(steps):
        model.zero_grad()
        (mean, var), backward = model.forward_train(x)
        _, dmean, dvar = gaussian_nll(mean, var, y3)
        backward(dmean, dvar)
        if blocks is not None:
            model.mask_grads(blocks)
        if head_only:
            for g in model.rnn.grads.values():
                g[...] = 0.0
        clip_grad_norm(model, 1.0)
        opt.step()


def online_out(model, z, P, cfg):
    """The head's outputs (T, 2K) with the network learning every ``every`` values."""
    every, steps = cfg["every"], cfg["steps"]
    window, chunk = cfg.get("window", P), cfg.get("chunk", 64)
    model = copy.deepcopy(model)
    blocks = model.block_masks() if model.members > 1 else None
    opt = AdamW(model, lr=cfg["lr"], weight_decay=0.0)
    outs = []
    state = None
    a = 0
    bounds = list(range(P + every, z.size, every)) + [z.size]
    for b in bounds:
        out, state = model.stream_forward(z[a:b, None, None], state)
        outs.append(out[:, 0])
        a = b
        if b < z.size:
            if not cfg.get("persist", True):
                opt = AdamW(model, lr=cfg["lr"], weight_decay=0.0)
            model.train()
            learn(model, opt, z[max(0, b - window) : b], steps, chunk, cfg.get("head_only"), blocks)
            model.eval()
    return np.concatenate(outs)


class Proxy:
    """The detector's model, whose whole-series forward learns online."""

    def __init__(self, model, cfg, P, T):
        self.model, self.cfg, self.P, self.T = model, cfg, P, T

    def stream_forward(self, x, state=None):
        if x.shape[0] == self.T and state is None:
            return online_out(self.model, x[:, 0, 0], self.P, self.cfg)[:, None], None
        return self.model.stream_forward(x, state)


def detect(det, s, cfg):
    if not cfg.get("every"):
        return det.detect(s)
    model = det.model_
    det.model_ = Proxy(model, cfg, min(det.probation, s.size), s.size)
    try:
        return det._detect_one(s)
    finally:
        det.model_ = model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/tmp/NAB")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--configs", default="[{}]")
    ap.add_argument("--log", default="runs/probe-online.jsonl")
    args = ap.parse_args()
    data = Path(args.data)
    windows = nab.read_windows(data / "labels" / "combined_windows.json")
    names = sorted(n for n in windows if (data / "data" / n).is_file())
    shared = {n for n in names if (SHARED / "data" / n).is_file()}
    files = {}
    for name in names:
        ts, values = read_nab_csv(data / "data" / name)
        files[name] = (values, nab.label_rows(ts, windows[name], name))
    configs = json.loads(args.configs)
    Path(args.log).parent.mkdir(parents=True, exist_ok=True)
    for cfg in configs:
        det_params = cfg.get("params", {})
        per = []
        for seed in (int(s) for s in args.seeds.split(",")):
            t0 = time.perf_counter()
            res = {}
            for name, (values, labels) in files.items():
                det = A.AnomalyDetector(
                    probation=nab.probation_length(values.size), seed=seed, **det_params
                ).fit(values)
                res[name] = (detect(det, values, cfg), labels)
            got = {}
            for label, subset in (
                ("24", [n for n in names if n in shared]),
                ("34", [n for n in names if n not in shared]),
                ("58", names),
            ):
                r = nab.score_corpus({n: res[n] for n in subset}, "standard")
                got[label] = round(r.score, 2)
                got[label + "_fp"] = r.fp
                got[label + "_tp"] = r.tp
            per.append(got)
            line = {"cfg": cfg, "seed": seed, **got, "s": round(time.perf_counter() - t0, 1)}
            line["load"] = os.getloadavg()[0]
            print(json.dumps(line), flush=True)
            with open(args.log, "a") as f:
                f.write(json.dumps(line) + "\n")
        mean = {k: round(float(np.mean([p[k] for p in per])), 2) for k in ("24", "34", "58")}
        print(f"MEAN {json.dumps(cfg)}: {mean}", flush=True)
        with open(args.log, "a") as f:
            f.write(json.dumps({"cfg": cfg, "mean": mean}) + "\n")


if __name__ == "__main__":
    main()
    _ = math
