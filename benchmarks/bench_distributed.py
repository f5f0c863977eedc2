"""Data-parallel training on this machine: what two processes buy, what the all-reduce costs, and
how both grow with more processes (`rnnkit.training.distributed`).

1. The same global batch (a character LSTM language model, `--hidden`, batch `--batch`, `--bptt`
   steps) trained `--steps` steps as 2 processes x 1 thread (each on half the batch, gradients
   all-reduced over gloo on loopback) and as 1 process x 2 threads (rnnkit's own threads and
   BLAS's), interleaved `--rounds` times, medians: step time, characters per second, the final
   training and validation loss, the all-reduce's share of a step and the bytes it sends.
2. Simulation with more processes than cores: 1, 2, 4 and 8 processes of one thread each, the
   batch per process fixed (global batch grows with them): step time and all-reduce time; and
   the all-reduce alone (no training) of the model's gradient bytes and of 4 KB at 2, 4, 8.
3. The extrapolation to 8 and 64 machines with the ring all-reduce's cost model,
   ``2 (N-1) alpha + 2 (N-1)/N S / beta``, from the compute time measured here and stated
   link latencies and bandwidths (docs/DISTRIBUTED.md).

Every process is started as ``torchrun`` starts one (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``); timings exclude the first `WARMUP` steps. Prints where it ran.

    python benchmarks/bench_distributed.py            # make bench-distributed (~10 min)
    python benchmarks/bench_distributed.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_machine import cpu_model  # noqa: E402

SRC = Path(__file__).resolve().parent.parent / "src"
WARMUP = 10
ALPHA = {"1 Gbit/s Ethernet": 50e-6, "10 Gbit/s Ethernet": 20e-6, "100 Gbit/s RDMA": 3e-6}
BETA = {"1 Gbit/s Ethernet": 0.117e9, "10 Gbit/s Ethernet": 1.17e9, "100 Gbit/s RDMA": 11.7e9}


# -- the workers (one process each) -----------------------------------------------------------
def lm_worker(args: argparse.Namespace) -> dict[str, Any]:
    """One rank (or a lone process) of the language-model run; rank 0's numbers."""
    import numpy as np

    from rnnkit.data.text import TokenStreams, Vocabulary, default_corpus, split_validation
    from rnnkit.models.language import LanguageModel
    from rnnkit.tasks.lm import LMObjective
    from rnnkit.training import TrainConfig, Trainer

    text, _ = default_corpus()
    train, valid = split_validation(text[:3_000_000])
    vocab = Vocabulary.build(train, "char", None)
    ids, vids = vocab.encode(train), vocab.encode(valid)[:20_001]
    model = LanguageModel(len(vocab), "lstm", args.hidden, 1, 64, 0.0, False, seed=0)
    objective = LMObjective(
        model, TokenStreams(ids, args.batch, args.bptt), TokenStreams(vids, 16, args.bptt)
    )
    cfg = TrainConfig(
        steps=args.steps, lr=3e-3, warmup_steps=10, eval_every=args.steps, unit="char"
    )
    marks: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            objective,
            cfg,
            Path(tmp) / "lm.safetensors",
            progress=False,
            quiet=True,
            plot=False,
            on_step=lambda t: marks.append(time.perf_counter()),
        )
        t0 = time.perf_counter()
        result = trainer.run()
        wall = time.perf_counter() - t0
    steps = np.diff(marks[WARMUP:-1])  # the last one waited for the evaluation
    out: dict[str, Any] = {
        "step_s": float(np.median(steps)),
        "chars_per_step": args.batch * args.bptt,
        "train_loss": float(np.mean(result.history["train"][-10:])),
        "val_loss": result.val_loss,
        "wall_s": wall,
        "grad_bytes": int(sum(g.nbytes for g in model.named_grads().values())),
        "params": model.num_parameters(),
    }
    if trainer.dist is not None:
        stats = trainer.dist.stats
        out["allreduce_s"] = float(np.median(stats.step_seconds[WARMUP:]))
        out["bytes_per_step"] = stats.bytes_per_step
        out["messages_per_step"] = stats.messages_per_step
    return out


def allreduce_worker(args: argparse.Namespace) -> dict[str, Any]:
    """The all-reduce alone: ``--reps`` of each size, a barrier before each, rank 0's median."""
    import numpy as np
    import torch
    import torch.distributed as dist

    from rnnkit.training.distributed import Distributed

    group = Distributed.from_environment()
    assert group is not None
    out = {}
    for size in (4096, args.bytes):
        t = torch.from_numpy(np.ones(size // 4, dtype=np.float32))
        times = []
        for _ in range(args.reps):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(t)
            times.append(time.perf_counter() - t0)
        out[str(size)] = float(np.median(times[2:]))
    return out


# -- the orchestrator -------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(world: int, threads: int, worker: list[str]) -> dict[str, Any]:
    """``world`` processes of ``threads`` threads each running ``worker``; rank 0's JSON."""
    port = free_port()
    procs = []
    for rank in range(world):
        env = dict(os.environ)
        env.update(
            PYTHONPATH=str(SRC),
            OMP_NUM_THREADS=str(threads),
            OPENBLAS_NUM_THREADS=str(threads),
            RNNKIT_NUM_THREADS=str(threads),
            OPENBLAS_THREAD_TIMEOUT="4",
        )
        if world > 1:
            env.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
            env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        else:
            for key in ("RANK", "WORLD_SIZE"):
                env.pop(key, None)
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "--worker", *worker],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed: {[p.returncode for p in procs]}")
    return json.loads(outs[0].strip().splitlines()[-1])


def ring_seconds(n: int, size: float, alpha: float, beta: float) -> float:
    """The ring all-reduce of ``size`` bytes over ``n`` machines: 2(n-1) steps, each a
    message of size/n bytes."""
    return 0.0 if n == 1 else 2 * (n - 1) * alpha + 2 * (n - 1) / n * size / beta


def extrapolate(compute: float, grad_bytes: int, params: int, tokens: int) -> None:
    """Section 3: the measured model, and the default ``train lm`` model (2 x LSTM 512, batch
    32 x 100 per machine) with the compute scaled by parameters x tokens per step."""
    from rnnkit.models.language import LanguageModel

    default = LanguageModel(100, "lstm", 512, 2, 64, 0.1, False, seed=0)
    d_params = default.num_parameters()
    d_compute = compute * (d_params / params) * (32 * 100 / tokens)
    print(
        "\n3. extrapolation (ring all-reduce after the backward, no overlap): "
        f"T_compute {1e3 * compute:.1f} ms per step per machine (measured here: 1 thread, "
        f"{tokens} tokens, {params:,} parameters); the default train lm model "
        f"({d_params:,} parameters, 32 x 100 tokens per machine) scaled to "
        f"{1e3 * d_compute:.0f} ms"
    )
    print(
        "| model | link (latency, bandwidth) | machines | all-reduce (ms) | step (ms) "
        "| efficiency |"
    )
    print("|---|---|---:|---:|---:|---:|")
    models = (("measured", compute, grad_bytes), ("train lm default", d_compute, 4 * d_params))
    for name, t_c, size in models:
        for link in ALPHA:
            for n in (8, 64):
                comm = ring_seconds(n, size, ALPHA[link], BETA[link])
                print(
                    f"| {name} | {link} ({1e6 * ALPHA[link]:.0f} us, {BETA[link] / 1e9:.2f} GB/s) "
                    f"| {n} | {1e3 * comm:.2f} | {1e3 * (t_c + comm):.1f} "
                    f"| {100 * t_c / (t_c + comm):.0f} % |"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (default: off)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: 3)")
    ap.add_argument("--hidden", type=int, default=256, help="LSTM size (default: 256)")
    ap.add_argument("--batch", type=int, default=32, help="global batch (default: 32)")
    ap.add_argument("--bptt", type=int, default=50, help="steps of BPTT (default: 50)")
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps (default: 60)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--bytes", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--reps", type=int, default=30, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="write the results here (default: none)")
    ap.add_argument(
        "--same-batch-only", action="store_true", help="run section 1 alone (default: off)"
    )
    ap.add_argument(
        "--extrapolate",
        default=None,
        help="print only section 3 from a --json file of an earlier run (default: none)",
    )
    args = ap.parse_args()
    if args.extrapolate:
        saved = json.loads(Path(args.extrapolate).read_text())
        one_proc = saved["sim"]["1"]
        params = one_proc.get("params") or one_proc["grad_bytes"] // 4
        tokens = saved.get("tokens_per_process", max(1, args.batch // 2) * args.bptt)
        extrapolate(one_proc["step_s"], one_proc["grad_bytes"], params, tokens)
        return
    if args.worker == "lm":
        print(json.dumps(lm_worker(args)))
        return
    if args.worker == "allreduce":
        print(json.dumps(allreduce_worker(args)))
        return
    if args.quick:
        args.rounds, args.steps, args.hidden = 1, 20, 64
    cores = len(os.sched_getaffinity(0))
    print(
        f"machine: {cpu_model()}, {cores} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; load average before: "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    lm = ["lm", "--hidden", str(args.hidden), "--bptt", str(args.bptt), "--steps", str(args.steps)]

    # 1. 2 processes x 1 thread against 1 process x 2 threads, the same global batch
    two: list[dict] = []
    one: list[dict] = []
    for _ in range(args.rounds):
        two.append(launch(2, 1, [*lm, "--batch", str(args.batch)]))
        one.append(launch(1, 2, [*lm, "--batch", str(args.batch)]))

    def med(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    chars = args.batch * args.bptt
    print(
        f"\n1. LSTM {args.hidden} language model, global batch {args.batch} x {args.bptt} chars, "
        f"{args.steps} steps, {args.rounds} interleaved rounds, medians"
    )
    print("| run | step (ms) | chars/s | final train loss | validation loss |")
    print("|---|---:|---:|---:|---:|")
    for name, runs in (("2 processes x 1 thread", two), ("1 process x 2 threads", one)):
        step = med(runs, "step_s")
        print(
            f"| {name} | {1e3 * step:.1f} | {chars / step:,.0f} | {med(runs, 'train_loss'):.4f} "
            f"| {med(runs, 'val_loss'):.4f} |"
        )
    ratio = med(one, "step_s") / med(two, "step_s")
    share = med(two, "allreduce_s") / med(two, "step_s")
    print(
        f"2 processes / 1 process x 2 threads: {ratio:.2f}x the throughput; the all-reduce "
        f"{1e3 * med(two, 'allreduce_s'):.2f} ms = {100 * share:.1f} % of a step, "
        f"{two[0]['bytes_per_step'] / 1e6:.2f} MB in {two[0]['messages_per_step']} messages "
        "per step per rank"
    )

    if args.same_batch_only:
        print(f"\nload average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        if args.json:
            Path(args.json).write_text(json.dumps({"two": two, "one": one}, indent=1))
        return

    # 2. more processes than cores: batch per process fixed
    per = max(1, args.batch // 2)
    print(
        f"\n2. more processes than cores ({cores}): one thread each, batch {per} per process, "
        f"{args.steps} steps (compute slows by processes/cores: the cores are shared)"
    )
    print(
        "| processes | step (ms) | all-reduce in the step, waiting included (ms) | share "
        "| all-reduce alone, gradients (ms) | all-reduce alone, 4 KB (ms) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    sim: dict[int, dict] = {}
    grad_bytes = two[0]["grad_bytes"]
    for n in (1, 2, 4, 8):
        run = launch(n, 1, [*lm, "--batch", str(per * n)])
        alone = (
            launch(n, 1, ["allreduce", "--bytes", str(grad_bytes), "--reps", "30"]) if n > 1 else {}
        )
        sim[n] = {**run, "alone": alone}
        ar = run.get("allreduce_s", 0.0)
        a_big = alone.get(str(grad_bytes), 0.0)
        a_small = alone.get("4096", 0.0)
        print(
            f"| {n} | {1e3 * run['step_s']:.1f} | {1e3 * ar:.2f} "
            f"| {100 * ar / run['step_s']:.1f} % | {1e3 * a_big:.2f} | {1e3 * a_small:.3f} |"
        )

    # 3. extrapolation: compute per step from 1 process x 1 thread at the per-process batch
    extrapolate(sim[1]["step_s"], grad_bytes, sim[1]["params"], per * args.bptt)
    print(f"\nload average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.json:
        results = {"two": two, "one": one, "sim": sim, "tokens_per_process": per * args.bptt}
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
