"""`make bench-quick`: the benchmark suite runs end to end, so it cannot silently break."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _quick(script: str, out: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``benchmarks/<script> --quick`` into ``out``; it must succeed. bench.py keeps the
    environment's OpenBLAS settings (--keep-env): tests and CI do not change them."""
    keep = ["--keep-env"] if script == "bench.py" else []
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--out", str(out)]
        + keep
        + list(args),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_bench_quick_mode_measures_every_side(tmp_path):
    proc = _quick("bench.py", tmp_path, "--repeats", "1")  # one round: a smoke test
    result = json.loads((tmp_path / "bench.json").read_text())
    sides = {side for got in result["medians"].values() for side in got}
    assert {"rnnkit", "torch", "torch-cell", "torch-seq", "ort"} <= sides
    medians = result["medians"]
    timed = {k: v for k, v in medians.items() if not k.startswith("memory stream")}
    assert all(v > 0 for got in timed.values() for v in got.values())
    (growth,) = [v["rnnkit"] for k, v in medians.items() if k.startswith("memory stream")]
    assert 0 <= growth < 2**20  # streaming memory does not grow
    assert (tmp_path / "bench.png").stat().st_size > 10_000
    assert "| train lstm H32 B32 T10 |" in proc.stdout
    assert "memory stream" in proc.stdout
    machine = result["machine"]
    keys = {"cpu_model", "isa", "blas", "cores", "python", "numpy", "numba", "torch"}
    assert keys | {"onnxruntime", "env_cleared", "env_kept"} <= set(machine)
    assert machine["blas"], "threadpoolctl found no BLAS in the rnnkit worker"
    assert {"internal_api", "architecture", "num_threads", "version"} <= set(machine["blas"][0])
    pins = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    assert machine["env_cleared"] == []  # --keep-env: the environment as it was
    assert machine["env_kept"] == {k: os.environ[k] for k in pins if k in os.environ}
    assert f"Machine: {machine['cpu_model']} (" in proc.stdout
    assert f"Machine: {machine['cpu_model']} (" in (tmp_path / "bench.md").read_text()


def test_bench_workers_run_without_openblas_pins_unless_kept():
    """bench.py drops OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE from the workers' environment by
    default (checked on a made-up environment: this process's stays as it is)."""
    code = (
        "import json, bench; from pathlib import Path; "
        "env = {'OPENBLAS_CORETYPE': 'Haswell', 'OPENBLAS_L2_SIZE': '1048576', 'X': '1'}; "
        "print(json.dumps([bench.worker_env(Path('/src'), keep, environ=env) "
        "for keep in (False, True)]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT / "benchmarks",
        env=dict(os.environ, PYTHONPATH=str(ROOT / "benchmarks")),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    cleared, kept = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "OPENBLAS_CORETYPE" not in cleared and "OPENBLAS_L2_SIZE" not in cleared
    assert cleared["X"] == "1" and cleared["PYTHONPATH"] == "/src"
    assert kept["OPENBLAS_CORETYPE"] == "Haswell" and kept["OPENBLAS_L2_SIZE"] == "1048576"


def test_bench_ab_compares_two_source_trees(tmp_path):
    case = "stream lstm H32 float32"
    # A/A: the same tree, once as its src/ and once as the checkout holding it
    proc = _quick(
        "bench.py", tmp_path, "--ab", str(ROOT / "src"), str(ROOT), "--case", case, "--repeats", "1"
    )
    result = json.loads((tmp_path / "bench.json").read_text())
    assert list(result["medians"]) == [case]  # --case: that case alone
    assert result["mode"] == "ab" and set(result["machine"]["rnnkit"]) == {"A", "B"}
    assert result["ratios"][case] > 0
    assert set(result["medians"][case]) == {"A", "B"}
    assert "| case | A | B | B / A |" in proc.stdout and f"| {case} |" in proc.stdout
    bad = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--ab", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "--ab: expected a folder with rnnkit/__init__.py" in bad.stderr


def test_bench_pool_quick_mode_compares_both_sides(tmp_path):
    proc = _quick("pool.py", tmp_path, "--repeats", "1")
    result = json.loads((tmp_path / "pool.json").read_text())
    assert list(result) == ["pool: 32 streams lstm H32, one step each"]
    assert all(v["separate"] > 0 and v["pool"] > 0 for v in result.values())
    assert "| pool: 32 streams lstm H32, one step each |" in proc.stdout


def test_micro_benchmarks_run_and_refuse_unknown_jobs():
    script = str(ROOT / "benchmarks" / "micro.py")
    proc = subprocess.run([sys.executable, script, "calls"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Stream.step, LSTM hidden 128" in proc.stdout
    bad = subprocess.run([sys.executable, script, "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage: micro.py" in bad.stderr


def test_bench_only_and_case_choose_the_cases_and_an_unknown_one_is_named():
    """--only (repeatable) and --case filter the one list of cases that every worker then runs
    (the --ab run above runs one case of it); the error for an unknown case lists what the
    filter left, so the filter is checked here without starting a worker."""
    bad = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick"]
        + ["--only", "stream", "--only", "matmul", "--case", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    last = bad.stderr.strip().splitlines()[-1]
    assert "no case 'nope'; expected one of: " in last
    left = last.split("expected one of: ", 1)[1].split(", ")
    assert {case.split()[0] for case in left} == {"stream", "matmul"}  # both groups, no other
    assert "stream lstm H32 int8" in left and "matmul H32" in left


def test_eval_sentiment_quick_runs_every_side(tmp_path):
    """`make eval-sentiment-quick`: three sides per fold, each in its own process."""
    if not (ROOT.parent / "shared" / "data" / "sentiment" / "rt-polarity.pos").is_file():
        pytest.skip("the movie-review data is not in ../shared/data/sentiment")
    proc = _quick("eval_sentiment.py", tmp_path)
    result = json.loads((tmp_path / "sentiment.json").read_text())
    assert len(result["folds"]) == 2
    for fold in result["folds"]:
        for side in ("rnnkit", "torch", "tfidf"):
            assert 0.0 <= fold[side]["accuracy"] <= 1.0
        assert fold["rnnkit"]["seq_per_s"] > 0 and fold["torch"]["seq_per_s"] > 0
    assert "| rnnkit SequenceClassifier |" in proc.stdout
    assert "| CNN-rand (Kim 2014, published) | 76.1 |" in proc.stdout
    assert "Training throughput rnnkit / PyTorch" in proc.stdout
    assert (tmp_path / "sentiment.md").read_text().startswith("Movie-review polarity")
