"""`make bench-serve`: `rnnkit serve` under load on loopback: steps per second and latency at 1,
100 and 1,000 concurrent streams of a 128-unit LSTM, memory per stream, and the same against
the server without its micro-batcher and against its old path through FastAPI.

Three servers run side by side, each a real ``rnnkit serve`` process (one thread): the server
as shipped (``batched``: steps on the raw-ASGI front, a request that finds the server idle
stepped at once, those that come in while a step is in flight run as one `StreamPool` step),
``per-request`` (``--no-batch``: each request stepped on its own as it arrives, the
single-stream fused step) and the named baseline ``fastapi`` (``--no-front --no-batch``: the
steps through FastAPI's routing, the server before the front). The cases alternate between
them (A B C A B C ...), and each number is the median over the repeats. The load generator
is a bounded asyncio client in this process (raw HTTP/1.1 keep-alive requests, or WebSocket
messages, JSON or binary; one connection per stream, uvloop when installed); with
``--pin``, the servers on one core and the client on the other. Every run has a fixed length;
the machine's load average before and after is printed with the results (other work on the
machine shows in the latencies).

Two kinds of load:
- ``closed``: each stream sends its next step as soon as the last one is answered; the
  steps per second are the server's capacity, and the latency is what a backlog of N streams
  costs (Little's law: about N / throughput).
- ``paced``: each stream sends one step every 1/RATE seconds (a sensor at RATE Hz), its phase
  random; latency counts from when the step was due, so a server that falls behind is charged
  for the wait (no coordinated omission). This is the case of live streams, where the target
  "p99 under 5 ms at 100 streams" applies. "p99 from send" counts from when the request was
  actually written instead: the difference is the client's own lateness (its timers wake up to
  a millisecond late, and its CPU is shared) and the server's backlog seen by a late send.

Also: `Stream.step` and a batched `StreamPool.step` timed in this process before any load (the
floor a server adds its HTTP work to), and the server's resident memory before and after
opening 10,000 streams (their states, ids and bookkeeping), over the state's own bytes.

    python benchmarks/bench_serve.py            # about 10 minutes
    python benchmarks/bench_serve.py --quick    # seconds: a smoke test

A fourth server, ``unpaced`` (``--no-paced``), steps a lone request's large layer on both
cores, as a stream fed back to back would; against the shipped ``batched`` (paced) on a layer
large enough to split, one live stream (the cost of waking the sleeping second core):

    python benchmarks/bench_serve.py --servers batched,unpaced --transports wsb --streams 1 \
        --input 40 --hidden 256 --rate 100
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
F, H = 16, 128  # the model: LSTM(16, 128), one layer
SERVERS = {
    "batched": [],
    "per-request": ["--no-batch"],
    "fastapi": ["--no-front", "--no-batch"],
    "unpaced": ["--no-paced"],  # as shipped, but a lone request's large layer split in two
}
DEFAULT_SERVERS = "batched,per-request,fastapi"
PEER = "fastapi"  # the ratios are against it


# -- a bounded HTTP/1.1 client ------------------------------------------------------------------
class Connection:
    """One keep-alive connection; `request` sends one request and reads its whole answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        answer = await self.reader.readuntil(b"\r\n\r\n")
        status = int(answer[9:12])
        found = re.search(rb"(?i)content-length: *(\d+)", answer)
        size = int(found.group(1)) if found else 0
        return status, await self.reader.readexactly(size)

    def close(self) -> None:
        self.writer.close()


class HttpStepper:
    """Steps one stream by ``POST /streams/{id}/step`` on its own keep-alive connection."""

    def __init__(self, conn: Connection, stream_id: str, body: bytes) -> None:
        self.conn, self.path, self.body = conn, f"/streams/{stream_id}/step", body

    @classmethod
    async def open(cls, host: str, port: int, stream_id: str, body: bytes) -> HttpStepper:
        return cls(await Connection.open(host, port), stream_id, body)

    async def step(self) -> bool:
        status, _ = await self.conn.request("POST", self.path, self.body)
        return status == 200

    async def close(self) -> None:
        self.conn.close()


class WsStepper:
    """Steps one stream by a message on its WebSocket (the `websockets` client)."""

    def __init__(self, ws: Any, body: bytes) -> None:
        self.ws, self.body = ws, body.decode()

    @classmethod
    async def open(cls, host: str, port: int, stream_id: str, body: bytes) -> WsStepper:
        from websockets.asyncio.client import connect

        url = f"ws://{host}:{port}/streams/{stream_id}/ws"
        ws = await connect(url, max_size=None, open_timeout=120)
        return cls(ws, body)

    async def step(self) -> bool:
        await self.ws.send(self.body)
        return not (await self.ws.recv()).startswith('{"error"')

    async def close(self) -> None:
        await self.ws.close()


class BinaryWsStepper:
    """Steps one stream by a binary message (little-endian float32) on its WebSocket, with the
    ``rnnkit.binary`` subprotocol; the answer is binary too (an error would be text)."""

    def __init__(self, ws: Any, body: bytes) -> None:
        self.ws, self.frame = ws, np.asarray(json.loads(body)["x"], "<f4").tobytes()

    @classmethod
    async def open(cls, host: str, port: int, stream_id: str, body: bytes) -> BinaryWsStepper:
        from websockets.asyncio.client import connect
        from websockets.typing import Subprotocol

        url = f"ws://{host}:{port}/streams/{stream_id}/ws"
        binary = [Subprotocol("rnnkit.binary")]
        ws = await connect(url, max_size=None, open_timeout=120, subprotocols=binary)
        return cls(ws, body)

    async def step(self) -> bool:
        await self.ws.send(self.frame)
        return isinstance(await self.ws.recv(), bytes)

    async def close(self) -> None:
        await self.ws.close()


TRANSPORTS: dict[str, Any] = {"http": HttpStepper, "ws": WsStepper, "wsb": BinaryWsStepper}


async def _open_streams(host: str, port: int, n: int, prefix: str) -> list[str]:
    conn = await Connection.open(host, port)
    ids = []
    for i in range(n):
        status, body = await conn.request(
            "POST", "/streams", json.dumps({"id": f"{prefix}{i}"}).encode()
        )
        assert status == 201, body
        ids.append(f"{prefix}{i}")
    conn.close()
    return ids


async def _load(
    host: str,
    port: int,
    ids: list[str],
    seconds: float,
    rate: float | None,
    seed: int,
    transport: str = "http",
) -> dict:
    """Step every stream for ``seconds`` (after a warm-up of a fifth of it), closed loop or
    paced at ``rate`` Hz; the steps answered and their latencies."""
    rng = np.random.default_rng(seed)
    bodies = [json.dumps({"x": rng.standard_normal(F).round(4).tolist()}).encode() for _ in ids]
    kind = TRANSPORTS[transport]
    gate = asyncio.Semaphore(64)  # connections opened at once

    async def connect(stream_id: str, body: bytes) -> Any:
        async with gate:
            return await kind.open(host, port, stream_id, body)

    conns = await asyncio.gather(*(connect(s, b) for s, b in zip(ids, bodies, strict=True)))
    latencies: list[float] = []
    from_send: list[float] = []  # paced: without the client's own lateness (timers, its CPU)
    counted = [0]
    warm = time.perf_counter() + seconds / 5
    end = warm + seconds
    errors = [0]

    async def one(i: int) -> None:
        conn = conns[i]
        due = time.perf_counter() + (random.random() / rate if rate else 0.0)
        while True:
            if rate:
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                start = due  # late sends are charged from when they were due
                due += 1.0 / rate
            else:
                start = time.perf_counter()
            sent = time.perf_counter()
            if max(start, sent) >= end:  # (a late server: stop on time too)
                return
            ok = await conn.step()
            done = time.perf_counter()
            if not ok:
                errors[0] += 1
            if start >= warm:
                latencies.append(done - start)
                from_send.append(done - sent)
            if warm <= done < end:
                counted[0] += 1  # answered within the measured window

    await asyncio.gather(*(one(i) for i in range(len(ids))))
    await asyncio.gather(*(c.close() for c in conns))
    lat, sent = np.array(latencies) * 1e3, np.array(from_send) * 1e3
    return {
        "steps_per_s": counted[0] / seconds,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
        "p99_sent_ms": float(np.percentile(sent, 99)) if sent.size else None,
        "errors": errors[0],
    }


async def _metrics(host: str, port: int) -> dict[str, float]:
    conn = await Connection.open(host, port)
    _, text = await conn.request("GET", "/metrics")
    conn.close()
    out = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


# -- the servers ---------------------------------------------------------------------------------
def _start(checkpoint: Path, extra: list[str], core: int | None) -> tuple[subprocess.Popen, int]:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OPENBLAS_THREAD_TIMEOUT": "4",
        "PYTHONPATH": str(ROOT / "src"),
    }
    cmd = [sys.executable, "-m", "rnnkit.cli", "serve", str(checkpoint), "--port", "0", *extra]
    if core is not None:
        cmd = ["taskset", "-c", str(core), *cmd]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    said = ""
    while not (found := re.search(r"serve: .* on http://127\.0\.0\.1:(\d+) ", said)):
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"bench_serve: the server did not start: {said}")
        said += line
    port = int(found.group(1))
    for _ in range(600):
        try:
            asyncio.run(_metrics("127.0.0.1", port))
            break
        except OSError:
            time.sleep(0.05)
    return proc, port


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- the floor: rnnkit in this process, before any load -------------------------------------------
def _floor(model, n_streams: tuple[int, ...]) -> dict:
    import rnnkit

    x = np.random.default_rng(0).standard_normal(F).astype(np.float32)
    out = {}
    stream = rnnkit.Stream(model)
    times = []
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(2000):
            stream.step(x)
        times.append((time.perf_counter() - t) / 2000)
    out["Stream.step_us"] = statistics.median(times) * 1e6
    for n in n_streams:
        pool = rnnkit.StreamPool(model)
        for i in range(n):
            pool.join(i)
        inputs = {i: x for i in range(n)}
        reps = max(5, 2000 // n)
        times = []
        for _ in range(7):
            t = time.perf_counter()
            for _ in range(reps):
                pool.step(inputs)
            times.append((time.perf_counter() - t) / reps)
        out[f"StreamPool.step_{n}_us_per_stream"] = statistics.median(times) / n * 1e6
    return out


def main() -> int:
    global F, H  # --input, --hidden
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short runs, fewer streams")
    p.add_argument("--seconds", type=float, default=3.0, help="length of each measured run")
    p.add_argument("--repeats", type=int, default=3, help="runs of each case per server")
    p.add_argument("--rate", type=float, default=10.0, help="steps per second per paced stream")
    p.add_argument(
        "--transports",
        default="http,ws,wsb",
        help="comma-separated: http (POST /step), ws (JSON messages), wsb (binary messages)",
    )
    p.add_argument(
        "--servers",
        default=DEFAULT_SERVERS,
        help=f"comma-separated, of {', '.join(SERVERS)} ({DEFAULT_SERVERS})",
    )
    p.add_argument(
        "--streams", default=None, help="comma-separated stream counts (1,100,1000; quick 1,10,50)"
    )
    p.add_argument("--input", type=int, default=F, help=f"the LSTM's input size ({F})")
    p.add_argument("--hidden", type=int, default=H, help=f"the LSTM's hidden size ({H})")
    p.add_argument("--pin", action="store_true", help="servers on one core, client on another")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-serve", help="output folder")
    args = p.parse_args()
    F, H = args.input, args.hidden
    unknown = set(args.servers.split(",")) - set(SERVERS)
    if unknown:
        raise SystemExit(f"bench_serve: --servers: unknown {sorted(unknown)} (of {list(SERVERS)})")
    sys.path.insert(0, str(ROOT / "src"))
    import resource

    from bench_machine import blas, describe, git_commit

    import rnnkit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    counts: tuple[int, ...] = (1, 10, 50) if args.quick else (1, 100, 1000)
    if args.streams:
        counts = tuple(int(n) for n in args.streams.split(","))
    seconds = 1.0 if args.quick else args.seconds
    repeats = 1 if args.quick else args.repeats
    held = 500 if args.quick else 10_000

    two = args.pin and hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2
    load_before = os.getloadavg()
    cores = sorted(os.sched_getaffinity(0)) if two else []
    model = rnnkit.LSTM(F, H, seed=0)
    floor = _floor(model, tuple(n for n in counts if n > 1))
    try:
        import uvloop

        uvloop.install()
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    if two:
        os.sched_setaffinity(0, {cores[1]})  # the load generator on one core, servers on the other
    machine = describe(blas(), keep_env=True)
    machine["rnnkit_commit"] = git_commit(ROOT / "src")
    results: dict = {"machine": machine, "floor": floor, "cases": {}, "memory": {}}
    # the client's start-up objects out of the collector's full passes (a stall of some 100 ms
    # each, which the latencies would charge to the server), as the server does
    gc.collect()
    gc.freeze()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = rnnkit.save(model, Path(tmp) / f"lstm{H}.safetensors")
        servers = {
            name: _start(checkpoint, extra, cores[0] if two else None)
            for name, extra in SERVERS.items()
            if name in args.servers.split(",")
        }
        try:
            host = "127.0.0.1"
            # memory: streams held, no connections
            first = next(iter(servers))
            _, port = servers[first]
            pid = servers[first][0].pid
            before = _rss_mb(pid)
            asyncio.run(_open_streams(host, port, held, "held"))
            after = _rss_mb(pid)
            results["memory"] = {
                "streams": held,
                "rss_before_mb": before,
                "rss_after_mb": after,
                "bytes_per_stream": (after - before) * 2**20 / held,
                "state_bytes": 2 * H * 4,
            }
            ids = {name: asyncio.run(_open_streams(host, port_, max(counts), "s"))
                   for name, (_, port_) in servers.items()}  # fmt: skip
            for name, (_, port_) in servers.items():  # compile and warm both paths, untimed
                for n in (1, min(32, max(counts))):
                    asyncio.run(_load(host, port_, ids[name][:n], 1.0, None, seed=99))
            plan = [(t, load, rate) for t in args.transports.split(",")
                    for load, rate in (("closed", None), ("paced", args.rate))]  # fmt: skip
            for transport, load, rate in plan:
                for n in counts:
                    # binary messages need the front: not the FastAPI path
                    serving = {k: v for k, v in servers.items() if transport != "wsb" or k != PEER}
                    runs: dict[str, list[dict]] = {name: [] for name in serving}
                    for r in range(repeats):
                        for name, (proc, port_) in serving.items():  # A B C A B C
                            m0 = asyncio.run(_metrics(host, port_))
                            cpu0 = _cpu_seconds(proc.pid)
                            try:
                                got = asyncio.run(
                                    _load(host, port_, ids[name][:n], seconds, rate, r, transport)
                                )
                            except (OSError, TimeoutError) as exc:  # the case fails, not the run
                                print(f"{transport} {load} {n} {name}: {exc!r}", file=sys.stderr)
                                continue
                            cpu1 = _cpu_seconds(proc.pid)
                            m1 = asyncio.run(_metrics(host, port_))
                            steps = m1["rnnkit_serve_steps_total"] - m0["rnnkit_serve_steps_total"]
                            rounds = (
                                m1["rnnkit_serve_rounds_total"] - m0["rnnkit_serve_rounds_total"]
                            )
                            got["mean_batch"] = steps / rounds if rounds else 0.0
                            # the server's CPU per step: little changed by other work on the
                            # machine, unlike the latencies (accepting the connections is in it)
                            got["cpu_us_per_step"] = (cpu1 - cpu0) / steps * 1e6 if steps else None
                            got["rss_mb"] = _rss_mb(proc.pid)
                            runs[name].append(got)
                    key = f"{transport} {load} {n}"
                    if not all(runs.values()):
                        continue
                    results["cases"][key] = {
                        name: {k: _median([g[k] for g in gs]) for k in gs[0]}
                        for name, gs in runs.items()
                    }
                    print(_line(key, results["cases"][key]), file=sys.stderr, flush=True)
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.communicate(timeout=60)
    results["settings"] = {
        "load_average": [list(load_before), list(os.getloadavg())],
        "seconds": seconds,
        "repeats": repeats,
        "rate_hz": args.rate,
        "model": f"LSTM({F}, {H}), one layer",
        "client": f"raw HTTP/1.1 keep-alive or websockets on {loop_name}, "
        "one connection per stream",
        "cores": f"servers on core {cores[0]}, client on core {cores[1]}"
        if two
        else "servers and client unpinned",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve.json").write_text(json.dumps(results, indent=2))
    table = _table(results)
    (args.out / "serve.md").write_text(table + "\n")
    print(table)
    return 0


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} us"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _line(key: str, case: dict) -> str:
    return f"{key}: {json.dumps(case)}"


def _table(results: dict) -> str:
    m, floor, mem = results["machine"], results["floor"], results["memory"]
    s = results["settings"]
    lines = [
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['system']}; numpy {m['numpy']}, "
        f"rnnkit commit {m['rnnkit_commit']}; {s.get('model', 'LSTM(16, 128)')}; "
        f"{s['cores']}; {s['client']}; "
        f"{s['seconds']} s per run, median of {s['repeats']}, "
        f"paced streams at {s['rate_hz']:g} Hz; "
        f"load average (1 min) {s['load_average'][0][0]:.1f} before, "
        f"{s['load_average'][1][0]:.1f} after",
        "",
        "| via | load | streams | server | steps/s | p50 ms | p99 ms | p99 from send ms "
        f"| streams per batched step | server CPU per step | / {PEER}: steps/s, p99 |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, case in results["cases"].items():
        transport, load, n = key.split()
        peer = case.get(PEER)
        for name, c in case.items():
            shown = (
                f"{_ratio(c['steps_per_s'], peer['steps_per_s'])}, "
                f"{_ratio(c['p99_ms'], peer['p99_ms'])}"
                if peer is not None and name != PEER
                else ""
            )
            lines.append(
                f"| {transport} | {load} | {n} | {name} | {c['steps_per_s']:.0f} "
                f"| {_ms(c['p50_ms'])} | {_ms(c['p99_ms'])} | {_ms(c.get('p99_sent_ms'))} "
                f"| {c['mean_batch']:.1f} | {_us(c['cpu_us_per_step'])} | {shown} |"
            )
    lines += [
        "",
        f"In-process floor (no HTTP): `Stream.step` {floor['Stream.step_us']:.1f} us"
        + "".join(
            f"; `StreamPool.step` of {k.split('_')[1]} streams {v:.2f} us per stream"
            for k, v in floor.items()
            if k.startswith("StreamPool")
        )
        + ".",
        f"Memory: {mem['streams']} streams held: server RSS {mem['rss_before_mb']:.1f} -> "
        f"{mem['rss_after_mb']:.1f} MB, {mem['bytes_per_stream']:.0f} bytes per stream "
        f"(its state alone: {mem['state_bytes']} bytes).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
