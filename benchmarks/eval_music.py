"""JSB Chorales (quarter-note steps, the 2012 split 229/76/77) against Chung et al. (2014):
rnnkit's independent-sigmoid GRU, LSTM and tanh RNN at about 20k parameters (the setting of
the published table), the best independent-sigmoid rnnkit model found at any size, the joint
(RNN-NADE) output, and the same independent-sigmoid GRU written in PyTorch
(`benchmarks/music_torch.py`): same split, batches, schedule, epoch budget and threads.

The metric is the published one: NLL in nats of steps 2..T of each chorale given the steps
before, summed over the 88 keys, averaged over all predicted steps of the test set. Each model
runs in its own process, one after another, with the same thread pins; the budgets are epochs
(with early stopping on the validation NLL), so the numbers do not depend on the machine's load.

    python benchmarks/eval_music.py [--data FILE] [--out runs/eval-music] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

DATA = ROOT.parent / "shared" / "data" / "music" / "jsb-chorales-quarter.json"
THREADS = "2"
# Chung, Gulcehre, Cho, Bengio (2014), JSB Chorales, their Table 2 (about 20k parameters each)
# train, test (as printed in the paper)
PUBLISHED = {"tanh RNN": ("8.82", "9.10"), "LSTM": ("8.15", "8.67"), "GRU": ("6.94", "8.54")}

SMALL = {"dropout": 0.1, "batch_size": 2, "lr": 2e-3, "epochs": 150, "patience": 15}
RUNS = [
    # name, side, parameters
    ("GRU, 46 units (~20k)", "rnnkit", {"cell": "gru", "hidden_size": 46, **SMALL}),
    ("LSTM, 36 units (~20k)", "rnnkit", {"cell": "lstm", "hidden_size": 36, **SMALL}),
    ("tanh RNN, 80 units (~20k)", "rnnkit", {"cell": "rnn", "hidden_size": 80, **SMALL}),
    ("GRU, 46 units (~20k), PyTorch", "torch", {"cell": "gru", "hidden_size": 46, **SMALL}),
    (
        "larger GRU, 200 units, dropout 0.5",
        "rnnkit",
        {
            "cell": "gru",
            "hidden_size": 200,
            **SMALL,
            "dropout": 0.5,
            "batch_size": 4,
            "epochs": 100,
        },
    ),
    (
        "joint: GRU 64 + NADE 64",
        "rnnkit",
        {"cell": "gru", "hidden_size": 64, "output": "nade", "nade_hidden": 64, **SMALL}
        | {"dropout": 0.3, "batch_size": 4, "lr": 3e-3, "epochs": 60},
    ),
]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[key] = THREADS
    env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    return env


def worker(data: str, params: dict, out: str | None) -> dict:
    """One rnnkit model: fit on train (validation for early stopping), score every part."""
    import numpy as np

    from rnnkit import MusicModel, save
    from rnnkit.data.music import read_json

    parts = read_json(data)
    t0 = time.perf_counter()
    model = MusicModel(**params).fit(parts["train"], parts["valid"])
    seconds = time.perf_counter() - t0
    if out:
        save(model, out)  # type: ignore[arg-type]  # an estimator: save takes it too
    return {
        "val_nll": model.nll(parts["valid"]),
        "test_nll": model.nll(parts["test"]),
        "train_nll": model.nll(parts["train"]),
        "parameters": model.model_.num_parameters(),
        "epochs": len(model.history_["val"]),
        "best_epoch": int(np.argmin([v for _, v in model.history_["val"]])) + 1,
        "seconds": seconds,
        "frames_per_s": model.throughput_,
    }


def run(side: str, data: str, params: dict, checkpoint: Path | None) -> dict:
    if side == "torch":
        cmd = [sys.executable, str(ROOT / "benchmarks" / "music_torch.py"), data]
        cmd.append(json.dumps(params))
    else:
        cmd = [sys.executable, __file__, "--worker", data, json.dumps(params)]
        cmd += ["--checkpoint", str(checkpoint)] if checkpoint else []
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"eval-music: the {side} run failed with status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> dict:
    import bench_machine

    versions = bench_machine.versions()
    return {
        "cpu_model": bench_machine.cpu_model(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "versions": {k: versions.get(k) for k in ("python", "numpy", "numba", "torch")},
        "threads": THREADS,
    }


def table(results: list[dict]) -> list[str]:
    lines = [
        "| model | side | parameters | train NLL | valid NLL | test NLL | epochs | minutes |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (train, test) in PUBLISHED.items():
        lines.append(f"| {name}, Chung et al. 2014 | published | ~20k | {train} | | {test} | | |")
    for r in results:
        lines.append(
            f"| {r['name']} | {r['side']} | {r['parameters']:,} | {r['train_nll']:.2f} | "
            f"{r['val_nll']:.2f} | **{r['test_nll']:.2f}** | {r['epochs']} | "
            f"{r['seconds'] / 60:.1f} |"
        )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DATA), help="the JSB JSON (train/valid/test)")
    p.add_argument("--out", default="runs/eval-music", help="folder for results and models")
    p.add_argument("--quick", action="store_true", help="2 epochs each (a smoke test)")
    p.add_argument("--worker", nargs=2, metavar=("DATA", "PARAMS"), help=argparse.SUPPRESS)
    p.add_argument("--checkpoint", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], json.loads(args.worker[1]), args.checkpoint)))
        return
    if not Path(args.data).is_file():
        raise SystemExit(f"eval-music: the data is missing: {args.data}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    where = machine()
    print(
        f"machine: {where['cpu_model']}, {where['cores']} cores, load {where['load_average']}, "
        f"{THREADS} threads per run; {where['versions']}",
        file=sys.stderr,
    )
    results = []
    for name, side, params in RUNS:
        if args.quick:
            params = {**params, "epochs": 2}
        joint = params.get("output") == "nade"
        checkpoint = out / "jsb-nade.safetensors" if joint and side == "rnnkit" else None
        print(f"{name} ({side}) ...", file=sys.stderr, flush=True)
        r = run(side, args.data, params, checkpoint)
        results.append({"name": name, "side": side, "params": params, **r})
        print(
            f"  test NLL {r['test_nll']:.3f} (valid {r['val_nll']:.3f}, train "
            f"{r['train_nll']:.3f}), {r['parameters']:,} parameters, {r['epochs']} epochs, "
            f"{r['seconds']:.0f} s, {r['frames_per_s']:,.0f} frames/s",
            file=sys.stderr,
            flush=True,
        )
    report = {"machine": where, "data": args.data, "results": results}
    (out / "results.json").write_text(json.dumps(report, indent=2))
    lines = table(results)
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    ours = {r["name"]: r for r in results}
    gru, torch_gru = ours[RUNS[0][0]], ours[RUNS[3][0]]
    print(
        f"\nrnnkit GRU (~20k) test NLL {gru['test_nll']:.2f} vs published 8.54; PyTorch, same "
        f"network and budget, {torch_gru['test_nll']:.2f}; training speed rnnkit/PyTorch "
        f"{gru['frames_per_s'] / torch_gru['frames_per_s']:.2f}x (frames per second)"
    )
    print(f"results: {out / 'results.json'}; joint model: {out / 'jsb-nade.safetensors'}")


if __name__ == "__main__":
    main()
