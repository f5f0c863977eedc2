"""Data-parallel training over torch.distributed (gloo, loopback): two ranks, each on its half of
every batch, end with the weights of one process on the whole batch, for the language model,
a classifier and a forecaster; a rank killed mid-run is named by the one left and by the
launcher, and the run resumes from its last checkpoint; ``--nproc 2`` runs real ``torchrun``.

The ranks are separate processes started here with ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``
and ``MASTER_PORT`` (what ``torchrun`` sets), one thread each.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnnkit.io.checkpoint import load_checkpoint
from rnnkit.training import last_path
from rnnkit.training.distributed import GradientBuckets, environment_rank, shard

SRC = str(Path(__file__).resolve().parent.parent / "src")
ENV = {
    "OMP_NUM_THREADS": "1",
    "RNNKIT_NUM_THREADS": "1",
    "OPENBLAS_THREAD_TIMEOUT": "4",
    "PYTHONPATH": SRC,
}
TEXT = "".join(f"line {i}: the quick brown fox {i % 7} jumps over the dog.\n" for i in range(300))
LM = [
    "--hidden", "24", "--layers", "1", "--embedding", "8", "--batch", "8", "--bptt", "12",
    "--dropout", "0", "--warmup", "2", "--eval-tokens", "400",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHELASTIC")}
    env.update(ENV)
    env.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    return env


def start_ranks(argv: list[str], world: int, cwd: Path) -> list[subprocess.Popen]:
    port = free_port()
    return [
        subprocess.Popen(
            [sys.executable, *argv],
            env=rank_env(r, world, port),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(world)
    ]


def finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append((p.returncode, stdout, stderr))
    return out


def same_weights(a: Path, b: Path) -> float:
    """The largest difference between two checkpoints' weights, relative to their scale."""
    wa, wb = load_checkpoint(a).model.state_dict(), load_checkpoint(b).model.state_dict()
    assert wa.keys() == wb.keys()
    return max(float(np.max(np.abs(wa[k] - wb[k])) / (np.max(np.abs(wa[k])) + 1e-3)) for k in wa)


def test_shards_cover_a_batch_once_in_order():
    for n in (0, 1, 5, 8, 13):
        for world in (1, 2, 3, 8):
            rows = [list(range(n))[shard(n, (r, world))] for r in range(world)]
            assert sum(rows, []) == list(range(n))
            assert max(map(len, rows)) - min(map(len, rows)) <= 1


def test_gradient_buckets_are_the_models_gradient_arrays():
    from rnnkit.models.language import LanguageModel

    model = LanguageModel(11, "lstm", 6, 2, 6, 0.0, tie_weights=True, seed=0)
    grads = model.named_grads()
    before = {k: g.copy() + 1 for k, g in grads.items()}
    for k, g in grads.items():
        g[...] = before[k]
    buckets = GradientBuckets(model, bucket_bytes=600)  # small: several buckets
    assert len(buckets.flats) > 1
    after = model.named_grads()
    for k, g in after.items():
        np.testing.assert_array_equal(g, before[k])  # the values moved with them
        assert any(np.shares_memory(g, f) for f in buckets.flats)
    assert model.head.grads["weight"] is model.embedding.grads["weight"]  # still tied
    for f in buckets.flats:
        f[...] = 3
    assert all(np.all(g == 3) for g in model.named_grads().values())
    assert buckets.nbytes == sum(g.nbytes for g in after.values())


def test_no_distributed_run_outside_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert environment_rank() == (0, 1)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert environment_rank() == (3, 4)


WORKER = """
import sys
from pathlib import Path

import numpy as np


def train_all(root):
    \"\"\"A language model, a classifier (class-weighted), a forecaster and a translator, a few
    steps each, into root/.\"\"\"
    from rnnkit import Forecaster, Seq2Seq, SequenceClassifier
    from rnnkit.tasks.lm import LMRunConfig, train_lm

    root = Path(root)
    text = root.parent / "text.txt"
    cfg = LMRunConfig(text=str(text), hidden=24, layers=1, embedding=8, batch=8, bptt=12,
                      dropout=0.0, warmup_steps=2, eval_tokens=400, steps=6, eval_every=3,
                      out=str(root / "lm.safetensors"))
    steps = [train_lm(cfg, progress=False)[1]["steps"]]
    rng = np.random.default_rng(0)
    words = ["good", "bad", "fine", "awful", "great", "poor"]
    X = [" ".join(rng.choice(words, size=int(rng.integers(2, 6)))) for _ in range(60)]
    y = ["pos" if s.count("good") + s.count("great") >= s.count("bad") + s.count("awful")
         else "neg" for s in X]
    clf = SequenceClassifier(embedding_dim=8, hidden_size=8, attention_size=8, dropout=0.0,
                             batch_size=10, steps=7, seed=0, class_weight="balanced")
    clf.fit(X[:50], y[:50], X[50:], y[50:], out=root / "classify.safetensors")
    t = np.arange(120)
    series = [np.sin(t / 4 + k) * (1 + k) + 5 * k + rng.normal(0, 0.1, len(t)) for k in range(4)]
    fc = Forecaster(horizon=3, season=4, hidden_size=8, head_size=8, n_models=2, batch_size=12,
                    steps=6, seed=0)
    fc.fit(series, out=root / "forecast.safetensors")
    src = [" ".join(rng.choice(words, size=int(rng.integers(1, 5)))) for _ in range(50)]
    tgt = [" ".join(reversed(s.split())) for s in src]
    tr = Seq2Seq(min_count=1, embedding_dim=8, hidden_size=8, dropout=0.0, beam=1,
                 batch_size=10, steps=6, seed=0)
    tr.fit(src[:40], tgt[:40], src[40:], tgt[40:], out=root / "translate.safetensors")
    return steps + [clf.n_steps_, fc.n_steps_, tr.n_steps_, clf.score(X[50:], y[50:])]


if __name__ == "__main__":
    print(*train_all(sys.argv[1]))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The three trainers run by one process here, and by two ranks."""
    root = tmp_path_factory.mktemp("equal")
    (root / "text.txt").write_text(TEXT)
    script = root / "worker.py"
    script.write_text(WORKER)
    namespace: dict = {}
    exec(compile(WORKER, str(script), "exec"), namespace)
    one = namespace["train_all"](root / "one")
    results = finish(start_ranks([str(script), str(root / "two")], 2, root))
    assert [r[0] for r in results] == [0, 0], results[0][2] + results[1][2]
    return root, one, results


def test_every_rank_ends_the_fit_with_the_same_best_weights(runs):
    root, one, results = runs
    ends = [r[1].split() for r in results]
    assert ends[0] == ends[1]  # steps, and the accuracy of the best weights loaded on each rank
    assert [int(x) for x in ends[0][:4]] == one[:4]
    assert results[1][2] == ""  # rank 1 logs nothing: rank 0 does


@pytest.mark.parametrize("kind", ["lm", "classify", "forecast", "translate"])
def test_two_ranks_give_the_weights_of_one_process_on_the_same_batches(runs, kind):
    root, _, _ = runs
    one, two = root / "one" / f"{kind}.safetensors", root / "two" / f"{kind}.safetensors"
    assert same_weights(last_path(one), last_path(two)) < 1e-4
    assert same_weights(one, two) < 1e-4  # the best checkpoint too
    # each rank saw its share only: the units counted over both are one process's
    tokens = [load_checkpoint(last_path(p)).metadata["train"]["tokens"] for p in (one, two)]
    assert tokens[0] == tokens[1] > 0
    if kind == "lm":  # the carried state saved is the whole batch's, gathered from both ranks
        carry = load_checkpoint(last_path(two)).arrays
        assert carry["carry/state0"].shape[1] == 8
        np.testing.assert_allclose(
            carry["carry/state0"],
            load_checkpoint(last_path(one)).arrays["carry/state0"],
            atol=1e-4,
        )


def _rank_pid(launcher: int, rank: int) -> int | None:
    """The pid of ``rank`` among the children of ``torchrun`` (its ``RANK`` variable)."""
    try:
        children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
    except OSError:
        return None
    for pid in children:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return int(pid)
    return None


def test_a_killed_rank_is_named_and_the_run_resumes_through_nproc(tmp_path):
    (tmp_path / "text.txt").write_text(TEXT)
    out = tmp_path / "run" / "lm.safetensors"
    argv = [sys.executable, "-m", "rnnkit.cli", "train", "lm", "--text", "text.txt", *LM]
    argv += ["--steps", "150", "--eval-every", "4", "--out", str(out), "--nproc", "2"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env.update(ENV)
    launcher = subprocess.Popen(
        argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 90
    while not last_path(out).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = _rank_pid(launcher.pid, 1)
    assert victim is not None and last_path(out).exists()
    saved = load_checkpoint(last_path(out)).metadata["train"]["step"]
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = launcher.communicate(timeout=90)
    assert launcher.returncode != 0
    lines = stderr.splitlines()
    survivor = [x for x in lines if x.startswith("rnnkit: error: distributed training:")]
    assert len(survivor) == 1 and "rank 1 of 2 stopped during step" in survivor[0], stderr
    assert "--resume" in survivor[0]
    launched = [x for x in lines if x.startswith("rnnkit: error: --nproc 2:")]
    assert launched == [launched[-1]] and "rank 1" in launched[0], stderr
    assert "SIGKILL" in launched[0]
    stopped_at = load_checkpoint(last_path(out)).metadata["train"]["step"]
    assert stopped_at >= saved and stopped_at < 150  # nothing half-done was saved

    # every rank reads the checkpoint and goes on (the ranks started as torchrun would)
    again = finish(start_ranks([*argv[1:-2], "--resume", "--json"], 2, tmp_path))
    assert [r[0] for r in again] == [0, 0], again[0][2] + again[1][2]
    assert f"at step {stopped_at} of 150" in again[0][2]
    assert '"steps": 150' in again[0][1].splitlines()[-1]
    assert again[1][1] == ""  # rank 0 alone prints the metrics
    state = load_checkpoint(last_path(out)).metadata["train"]
    assert state["step"] == 150 and len(state["history"]["train"]) == 150
