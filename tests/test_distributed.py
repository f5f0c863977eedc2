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


def test_language_model_on_two_ranks_equals_one_process(tmp_path):
    (tmp_path / "text.txt").write_text(TEXT)
    argv = ["-m", "rnnkit.cli", "train", "lm", "--text", "text.txt", *LM, "--steps", "6"]
    argv += ["--eval-every", "3"]
    one = subprocess.run(
        [sys.executable, *argv, "--out", "one/lm.safetensors"],
        env={**os.environ, **ENV},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert one.returncode == 0, one.stderr
    results = finish(start_ranks([*argv, "--out", "two/lm.safetensors", "--json"], 2, tmp_path))
    assert [r[0] for r in results] == [0, 0], results[0][2] + results[1][2]
    assert results[1][1] == ""  # rank 1 prints nothing: rank 0 reports
    assert '"steps": 6' in results[0][1].splitlines()[-1]
    diff = same_weights(
        last_path(tmp_path / "one/lm.safetensors"), last_path(tmp_path / "two/lm.safetensors")
    )
    assert diff < 1e-4, diff
    # the carried state saved is the whole batch's, gathered from both ranks
    carry = load_checkpoint(last_path(tmp_path / "two/lm.safetensors")).arrays
    assert carry["carry/state0"].shape[1] == 8


WORKER = """
import sys
import numpy as np
kind, out = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
if kind == "classify":
    from rnnkit import SequenceClassifier
    words = ["good", "bad", "fine", "awful", "great", "poor"]
    X = [" ".join(rng.choice(words, size=int(rng.integers(2, 6)))) for _ in range(60)]
    y = ["pos" if s.count("good") + s.count("great") >= s.count("bad") + s.count("awful")
         else "neg" for s in X]
    est = SequenceClassifier(embedding_dim=8, hidden_size=8, attention_size=8, dropout=0.0,
                             batch_size=10, steps=7, seed=0)
    est.fit(X[:50], y[:50], X[50:], y[50:], out=out)
else:
    from rnnkit import Forecaster
    t = np.arange(120)
    series = [np.sin(t / 4 + k) * (1 + k) + 5 * k + rng.normal(0, 0.1, len(t)) for k in range(4)]
    est = Forecaster(horizon=3, season=4, hidden_size=8, head_size=8, n_models=2,
                     batch_size=12, steps=6, seed=0)
    est.fit(series, out=out)
print(est.n_steps_)
"""


@pytest.mark.parametrize("kind", ["classify", "forecast"])
def test_estimator_on_two_ranks_equals_one_process(tmp_path, kind):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    one = subprocess.run(
        [sys.executable, str(script), kind, "one/m.safetensors"],
        env={**os.environ, **ENV},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert one.returncode == 0, one.stderr
    results = finish(start_ranks([str(script), kind, "two/m.safetensors"], 2, tmp_path))
    assert [r[0] for r in results] == [0, 0], results[0][2] + results[1][2]
    steps = one.stdout.split()[-1]
    assert [r[1].split()[-1] for r in results] == [steps, steps]  # every rank ends the fit
    diff = same_weights(
        last_path(tmp_path / "one/m.safetensors"), last_path(tmp_path / "two/m.safetensors")
    )
    assert diff < 1e-4, diff


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

    resumed = subprocess.run(
        [*argv, "--resume", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"at step {stopped_at} of 150" in resumed.stderr
    assert '"steps": 150' in resumed.stdout.splitlines()[-1]
    assert resumed.stdout.count('"steps"') == 1  # rank 0 alone prints the metrics
    state = load_checkpoint(last_path(out)).metadata["train"]
    assert state["step"] == 150 and len(state["history"]["train"]) == 150
