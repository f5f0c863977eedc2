"""One side of `make bench`: times every case it is given with ONE library, in its own process.

    python benchmarks/bench_worker.py rnnkit|torch|ort CASES.json [ONNX_DIR]

Prints two lines of JSON: what ran (``{"worker": {"lib", "rnnkit", "blas"}}``: the rnnkit
imported, from the first directory on PYTHONPATH that has one, and the BLAS threadpoolctl sees
in this process), then, last, {case id: median seconds per iteration} (memory cases: bytes).
The orchestrator (`bench.py`) runs the libraries alternately in separate processes; nothing
here times two libraries in one process.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

THREADS = "2"
for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[key] = THREADS
# what `import rnnkit` sets itself when it comes before NumPy (rnnkit.threads): OpenBLAS's idle
# threads sleep at once instead of spinning; the same for every library's process. Set it in
# the environment to see what spinning costs (28: OpenBLAS's default, 2^28 cycles)
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402


def timed(fn, iters: int, blocks: int, budget: float) -> float:
    """Median over ``blocks`` of the mean time per call of ``iters`` calls (after a warm-up)."""
    for _ in range(max(2, iters // 10)):
        fn()
    times = []
    start = time.perf_counter()
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        times.append((time.perf_counter() - t0) / iters)
        if time.perf_counter() - start > budget and len(times) >= 3:
            break
    return statistics.median(times)


def data(case: dict) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    T, B, H, D = case["T"], case["B"], case["H"], 2 if case.get("bidir") else 1
    x = rng.standard_normal((T, B, H)).astype(np.float32)
    dy = rng.standard_normal((T, B, D * H)).astype(np.float32)
    return x, dy


# -- rnnkit -----------------------------------------------------------------------------------
def rnnkit_case(case: dict, onnx_dir: str) -> float:
    import rnnkit

    H, L, kind = case["H"], case.get("layers", 1), case["kind"]
    if kind == "memory":
        return memory_case(case)
    if kind == "matmul":  # NumPy's own product at the training step's largest shape
        T, B = case["T"], case["B"]
        a = np.random.default_rng(0).standard_normal((T * B, H)).astype(np.float32)
        w = np.random.default_rng(1).standard_normal((4 * H, H)).astype(np.float32)
        return timed(lambda: a @ w.T, case["iters"], case["blocks"], case["budget"])
    cls = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU}[case["cell"]]
    layer = cls(H, H, num_layers=L, bidirectional=case.get("bidir", False), seed=0)
    if kind == "train":
        x, dy = data(case)

        def train() -> None:
            layer.zero_grad()
            _, _, backward = layer.forward_train(x)
            backward(dy)

        return timed(train, case["iters"], case["blocks"], case["budget"])
    if kind == "infer":
        x, _ = data(case)
        return timed(lambda: layer(x), case["iters"], case["blocks"], case["budget"])
    if kind == "stream":
        model = layer if case["weights"] == "float32" else rnnkit.quantize(layer, case["weights"])
        stream = rnnkit.Stream(model)
        x = np.random.default_rng(0).standard_normal(H).astype(np.float32)
        return timed(lambda: stream.step(x), case["iters"], case["blocks"], case["budget"])
    if kind == "streams":
        return streams_case(layer, case)
    raise SystemExit(f"bench_worker: unknown case kind {kind!r}")


def streams_case(layer, case: dict) -> float:
    """Seconds to advance ``case["B"]`` independent streams by one step each: one `Stream.step`
    per stream, or (``RNNKIT_BENCH_STREAMS=pool``) one batched `StreamPool.step` for them all."""
    import rnnkit

    n, H = case["B"], case["H"]
    xs = np.random.default_rng(0).standard_normal((n, H)).astype(np.float32)
    if os.environ.get("RNNKIT_BENCH_STREAMS", "separate") == "pool":
        pool = rnnkit.StreamPool(layer)
        for i in range(n):
            pool.join(i)
        inputs = {i: xs[i] for i in range(n)}
        return timed(lambda: pool.step(inputs), case["iters"], case["blocks"], case["budget"])
    streams = [rnnkit.Stream(layer) for _ in range(n)]

    def step_each() -> None:
        for stream, x in zip(streams, xs, strict=True):
            stream.step(x)

    return timed(step_each, case["iters"], case["blocks"], case["budget"])


def memory_case(case: dict) -> float:
    """Bytes: growth of peak RSS from 10^4 to --steps streaming steps, or the peak traced
    memory of one training step (full or truncated BPTT over T)."""
    import resource
    import tracemalloc

    import rnnkit

    H = case["H"]
    if case["what"] == "stream":
        stream = rnnkit.Stream(rnnkit.LSTM(H, H, seed=0))
        x = np.ones(H, np.float32)
        for _ in range(10_000):
            stream.step(x)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for _ in range(case["steps"] - 10_000):
            stream.step(x)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return float((after - before) * 1024)  # ru_maxrss is in KiB on Linux
    layer = rnnkit.LSTM(H, H, seed=0)
    T, B, chunk = case["T"], case["B"], case.get("chunk") or case["T"]
    x = np.random.default_rng(0).standard_normal((T, B, H)).astype(np.float32)
    tracemalloc.start()
    state = None
    for t0 in range(0, T, chunk):  # truncated BPTT: forward and backward one chunk at a time
        y, state, backward = layer.forward_train(x[t0 : t0 + chunk], state)
        backward(np.ones_like(y))
        state = (state[0].copy(), state[1].copy())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return float(peak)


# -- PyTorch ----------------------------------------------------------------------------------
def torch_case(case: dict, onnx_dir: str) -> float:
    import torch

    torch.set_num_threads(int(THREADS))
    torch.manual_seed(0)
    H, L = case["H"], case.get("layers", 1)
    kind = case["kind"]
    if kind == "stream":
        x = torch.randn(1, H)
        if case["peer"] == "torch-cell":
            cell = torch.nn.LSTMCell(H, H)
            state = [(torch.zeros(1, H), torch.zeros(1, H))]

            def step() -> None:
                state[0] = cell(x, state[0])

        else:
            lstm = torch.nn.LSTM(H, H)
            xs = x[None]
            state = [(torch.zeros(1, 1, H), torch.zeros(1, 1, H))]

            def step() -> None:
                state[0] = lstm(xs, state[0])[1]

        with torch.inference_mode():
            return timed(step, case["iters"], case["blocks"], case["budget"])
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[case["cell"]]
    module = cls(H, H, num_layers=L, bidirectional=case.get("bidir", False))
    xn, dyn = data(case)
    x, dy = torch.from_numpy(xn), torch.from_numpy(dyn)
    if kind == "train":
        xg = x.clone().requires_grad_(True)

        def train() -> None:
            module.zero_grad(set_to_none=False)
            xg.grad = None
            y, _ = module(xg)
            y.backward(dy)

        return timed(train, case["iters"], case["blocks"], case["budget"])
    with torch.inference_mode():
        return timed(lambda: module(x), case["iters"], case["blocks"], case["budget"])


# -- ONNX Runtime -----------------------------------------------------------------------------
def ort_case(case: dict, onnx_dir: str) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(THREADS)
    opts.inter_op_num_threads = 1
    path = os.path.join(onnx_dir, case["onnx"])
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    H, L = case["H"], case.get("layers", 1)
    D = 2 if case.get("bidir") else 1
    if case["kind"] == "stream":
        x = np.random.default_rng(0).standard_normal((1, 1, H)).astype(np.float32)
        feeds = {names[0]: x}
        for name in names[1:]:
            feeds[name] = np.zeros((L * D, 1, H), np.float32)
        outs = [o.name for o in sess.get_outputs()]

        def step() -> None:
            result = sess.run(outs, feeds)
            for name, value in zip(names[1:], result[1:], strict=True):
                feeds[name] = value  # the state goes back in

        return timed(step, case["iters"], case["blocks"], case["budget"])
    x, _ = data(case)
    feeds = {names[0]: x}
    for name in names[1:]:
        feeds[name] = np.zeros((L * D, case["B"], H), np.float32)
    return timed(lambda: sess.run(None, feeds), case["iters"], case["blocks"], case["budget"])


def setup_rnnkit() -> str:
    """Import rnnkit and tune the process as a user's program would; where rnnkit came from.
    Trees from before `rnnkit.tune_process` tune it when imported (A/B runs compare both)."""
    import rnnkit

    if hasattr(rnnkit, "tune_process"):
        rnnkit.tune_process()
    return os.path.dirname(os.path.dirname(os.path.abspath(rnnkit.__file__)))


def main() -> int:
    from bench_machine import blas  # benchmarks/ is on sys.path: this script's folder

    lib, cases_path = sys.argv[1], sys.argv[2]
    onnx_dir = sys.argv[3] if len(sys.argv) > 3 else ""
    run = {"rnnkit": rnnkit_case, "torch": torch_case, "ort": ort_case}[lib]
    src = setup_rnnkit() if lib == "rnnkit" else None
    with open(cases_path) as fh:
        cases = json.load(fh)
    results = {c["id"]: run(c, onnx_dir) for c in cases}
    print(json.dumps({"worker": {"lib": lib, "rnnkit": src, "blas": blas()}}))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
