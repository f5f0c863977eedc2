"""`rnnkit serve`: the HTTP and WebSocket routes over one `StreamPool`.

Responses equal `Stream.step` (a stream stepped alone runs the same fused step, and JSON carries
float32 values exactly); streams stepped together are batched and give the numbers of streams
stepped apart (to float32 rounding: a batched product sums in another order); bad requests fail
alone with a 4xx and one line; idle streams go to the store and come back, also through Redis
shared by two servers; a real server stopped by SIGTERM saves every stream and a restarted one
resumes them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import fakeredis
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import rnnkit
from rnnkit.serve.app import create_app
from rnnkit.serve.batcher import MicroBatcher
from rnnkit.serve.config import ServeConfig
from rnnkit.serve.service import StreamService
from rnnkit.serve.store import DirectoryStore, RedisStore

F = 4  # input features


def _lstm() -> rnnkit.LSTM:
    return rnnkit.LSTM(F, 24, num_layers=2, seed=3)


def _inputs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, F)).astype(np.float32)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _client(model=None, store=None, clock=None, **options) -> TestClient:
    service = StreamService(
        model if model is not None else _lstm(),
        store=store,
        config=ServeConfig(**options),
        clock=clock or time.monotonic,
    )
    return TestClient(create_app(service, log=open(os.devnull, "w")))


def _step(client, stream_id: str, x) -> np.ndarray:
    r = client.post(f"/streams/{stream_id}/step", json={"x": np.asarray(x).tolist()})
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["y"], np.float32)


# -- the numbers ------------------------------------------------------------------------------
def test_steps_chunks_and_state_equal_stream_step_exactly():
    model = _lstm()
    reference = rnnkit.Stream(model)
    xs = _inputs(12)
    with _client(model) as client:
        assert client.post("/streams", json={"id": "s1"}).json() == {"id": "s1"}
        for x in xs[:8]:
            assert np.array_equal(_step(client, "s1", x), reference.step(x))
        r = client.post("/streams/s1/step", json={"xs": xs[8:].tolist()})  # four at once
        ys = np.asarray(r.json()["ys"], np.float32)
        assert ys.shape == (4, 24)
        assert np.array_equal(ys, np.stack([reference.step(x) for x in xs[8:]]))
        state = client.get("/streams/s1/state").json()["state"]
        h, c = reference.state
        assert np.array_equal(np.asarray(state[0], np.float32), h[:, 0])
        assert np.array_equal(np.asarray(state[1], np.float32), c[:, 0])
        assert client.post("/streams/s1/reset").status_code == 200
        reference.reset()
        assert np.array_equal(_step(client, "s1", xs[0]), reference.step(xs[0]))
        assert client.delete("/streams/s1").json() == {"id": "s1", "closed": True}
        assert client.post("/streams/s1/step", json={"x": xs[0].tolist()}).status_code == 404


def test_a_language_model_steps_on_token_ids():
    lm = rnnkit.models.LanguageModel(11, "gru", hidden_size=16, num_layers=1, seed=0)
    reference = rnnkit.Stream(lm)
    with _client(lm) as client:
        sid = client.post("/streams").json()["id"]
        for token in (3, 1, 10, 0):
            assert np.array_equal(_step(client, sid, token), reference.step(token))
        r = client.post(f"/streams/{sid}/step", json={"x": 11})
        assert r.status_code == 422 and "token ids in [0, 11)" in r.json()["error"]
        r = client.post(f"/streams/{sid}/step", json={"x": 2.5})
        assert r.status_code == 422 and "integer token ids" in r.json()["error"]


def test_concurrent_streams_are_batched_and_give_the_numbers_of_separate_streams():
    model = _lstm()
    service = StreamService(model)
    app = create_app(service, log=open(os.devnull, "w"))
    n, steps = 24, 6
    xs = np.random.default_rng(1).standard_normal((steps, n, F)).astype(np.float32)

    async def run() -> np.ndarray:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            for i in range(n):
                await client.post("/streams", json={"id": f"s{i}"})

            async def one(i: int, x: np.ndarray) -> list:
                r = await client.post(f"/streams/s{i}/step", json={"x": x.tolist()})
                return r.json()["y"]

            out = []
            for t in range(steps):  # all streams at once, then the next step
                out.append(await asyncio.gather(*(one(i, xs[t, i]) for i in range(n))))
            return np.asarray(out, np.float32)

    got = asyncio.run(run())  # (steps, n, H)
    assert service.counts.steps == steps * n
    assert service.counts.rounds < service.counts.steps / 4  # several streams per round
    separate = [rnnkit.Stream(model) for _ in range(n)]
    want = np.array([[separate[i].step(xs[t, i]) for i in range(n)] for t in range(steps)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)


def test_a_stream_that_fails_in_a_batch_leaves_the_others_stepped_once():
    model = _lstm()
    pool = rnnkit.StreamPool(model)
    for s in "abc":
        pool.join(s)
    batcher = MicroBatcher(pool)
    reference = rnnkit.Stream(model)
    x = _inputs(1)[0]

    async def run():
        futures = {s: batcher.submit(s, x[None]) for s in "abc"}
        pool.leave("b")  # gone before the round runs: the batched step fails
        return await asyncio.gather(*futures.values(), return_exceptions=True)

    a, b, c = asyncio.run(run())
    assert isinstance(b, rnnkit.InputError) and "no stream 'b'" in str(b)
    want = reference.step(x)
    assert np.array_equal(a[0], want) and np.array_equal(c[0], want)
    assert np.array_equal(pool.state("a")[0], reference.state[0])  # stepped once, not twice


# -- bad requests -------------------------------------------------------------------------------
BAD = [
    ("post", "/streams/good/step", {"x": [1.0, float("nan"), 0.0, 0.0]}, 422, "finite numbers"),
    ("post", "/streams/good/step", {"x": [1.0, 2.0, 3.0]}, 422, "vectors of 4 numbers"),
    ("post", "/streams/good/step", {"xs": [[1.0] * 4, [1.0] * 5]}, 422, "vectors of 4 numbers"),
    ("post", "/streams/good/step", {"x": ["a", 1, 2, 3]}, 422, "vectors of 4 numbers"),
    ("post", "/streams/good/step", {"xs": []}, 422, "non-empty list"),
    ("post", "/streams/good/step", {"y": [1, 2, 3, 4]}, 422, "'x' (one step) or 'xs'"),
    ("post", "/streams/good/step", {"xs": [[1.0] * 4] * 400}, 413, "--max-body"),
    ("post", "/streams/good/step", b'{"x": [1, 2', 400, "not JSON"),
    ("post", "/streams/nobody/step", {"x": [1.0] * 4}, 404, "no stream 'nobody'"),
    ("get", "/streams/nobody/state", None, 404, "no stream 'nobody'"),
    ("delete", "/streams/nobody", None, 404, "no stream 'nobody'"),
    ("post", "/streams/bad*id/step", {"x": [1.0] * 4}, 422, "stream id"),
    ("post", "/streams", {"id": "good"}, 409, "exists already"),
    ("post", "/streams", {"id": 7}, 422, "'id' a string"),
    ("get", "/nowhere", None, 404, "Not Found"),
]


def test_bad_requests_get_a_4xx_and_one_line_and_leave_other_streams_untouched():
    model = _lstm()
    reference = rnnkit.Stream(model)
    xs = _inputs(len(BAD) + 1)
    with _client(model, max_body=4000) as client:
        client.post("/streams", json={"id": "good"})
        assert np.array_equal(_step(client, "good", xs[0]), reference.step(xs[0]))
        for (method, path, body, status, words), x in zip(BAD, xs[1:], strict=True):
            if isinstance(body, bytes):
                r = client.request(method, path, content=body)
            elif body is None:
                r = client.request(method, path)
            else:
                r = client.request(method, path, content=json.dumps(body))  # NaN as NaN
            assert r.status_code == status, (path, body, r.text)
            error = r.json()["error"]
            assert words in error and "\n" not in error, error
            # the good stream steps on as if nothing had happened
            assert np.array_equal(_step(client, "good", x), reference.step(x))
        text = client.get("/metrics").text
    counts = _samples(text)
    assert counts[("rnnkit_serve_steps_total", ())] == len(BAD) + 1
    assert counts[("rnnkit_serve_requests_total", ("/streams/{id}/step", "422"))] == 7


# -- WebSocket, metrics, schema ----------------------------------------------------------------
def test_websocket_steps_a_stream_per_message_and_survives_a_bad_one():
    model = _lstm()
    reference = rnnkit.Stream(model)
    xs = _inputs(6)
    with _client(model) as client:
        client.post("/streams", json={"id": "ws"})
        with client.websocket_connect("/streams/ws/ws") as ws:
            for x in xs[:3]:
                ws.send_text(json.dumps({"x": x.tolist()}))
                y = np.asarray(ws.receive_json()["y"], np.float32)
                assert np.array_equal(y, reference.step(x))
            ws.send_text('{"x": [1, 2]}')
            assert ws.receive_json() == {
                "error": "expected 'x' to hold vectors of 4 numbers, got shape (2,)",
                "status": 422,
            }
            ws.send_text(json.dumps({"xs": xs[3:].tolist()}))
            ys = np.asarray(ws.receive_json()["ys"], np.float32)
            assert np.array_equal(ys, np.stack([reference.step(x) for x in xs[3:]]))
        with client.websocket_connect("/streams/missing/ws") as ws:
            ws.send_text(json.dumps({"x": xs[0].tolist()}))
            assert ws.receive_json()["status"] == 404


def _samples(text: str) -> dict:
    return {
        (s.name, tuple(s.labels.values())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_parse_as_prometheus_text_and_count_what_happened():
    with _client() as client:
        for i in range(3):
            client.post("/streams", json={"id": f"m{i}"})
            _step(client, f"m{i}", _inputs(1)[0])
        client.post("/streams/m0/step", json={"x": [1]})
        samples = _samples(client.get("/metrics").text)
        health = client.get("/health").json()
        schema = client.get("/openapi.json").json()
    assert samples[("rnnkit_serve_streams", ())] == 3 == health["streams"]
    assert samples[("rnnkit_serve_opened_total", ())] == 3
    assert samples[("rnnkit_serve_steps_total", ())] == 3
    assert samples[("rnnkit_serve_batch_streams_count", ())] == 3
    assert samples[("rnnkit_serve_step_seconds_count", ())] == 3
    assert samples[("rnnkit_serve_requests_total", ("/streams/{id}/step", "422"))] == 1
    assert health["input"] == {"kind": "vector", "size": F}
    paths = schema["paths"]
    assert {"/streams", "/streams/{stream_id}/step", "/streams/{stream_id}/state"} <= set(paths)
    body = paths["/streams/{stream_id}/step"]["post"]["requestBody"]
    assert "xs" in body["content"]["application/json"]["schema"]["properties"]


# -- saved states -------------------------------------------------------------------------------
def test_idle_streams_go_to_the_folder_and_come_back_on_their_next_step(tmp_path):
    model = _lstm()
    clock = Clock()
    reference = rnnkit.Stream(model)
    xs = _inputs(4)
    service = StreamService(
        model, DirectoryStore(tmp_path), ServeConfig(idle_seconds=10), clock=clock
    )
    with TestClient(create_app(service, log=open(os.devnull, "w"))) as client:
        client.post("/streams", json={"id": "idle"})
        client.post("/streams", json={"id": "busy"})
        for x in xs[:2]:
            assert np.array_equal(_step(client, "idle", x), reference.step(x))
        clock.now = 8.0
        _step(client, "busy", xs[0])
        clock.now = 12.0
        assert service.sweep() == 1  # "idle" only: "busy" stepped 4 s ago
        assert sorted(service.last_used) == ["busy"]
        assert DirectoryStore(tmp_path).ids() == ["idle"]
        for x in xs[2:]:  # resumed from its file
            assert np.array_equal(_step(client, "idle", x), reference.step(x))
        assert service.counts.resumed == 1
        client.delete("/streams/idle")
        assert DirectoryStore(tmp_path).ids() == []


def test_two_servers_share_streams_through_redis():
    server = fakeredis.FakeServer()
    model = _lstm()
    reference = rnnkit.Stream(model)
    xs = _inputs(5)
    clocks = Clock(), Clock()
    services = [
        StreamService(
            model,
            RedisStore(fakeredis.FakeRedis(server=server), owner=name),
            ServeConfig(idle_seconds=5),
            clock=clock,
        )
        for name, clock in zip(("a", "b"), clocks, strict=True)
    ]
    apps = [create_app(s, log=open(os.devnull, "w")) for s in services]
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        a.post("/streams", json={"id": "shared"})
        for x in xs[:2]:
            assert np.array_equal(_step(a, "shared", x), reference.step(x))
        r = b.post("/streams/shared/step", json={"x": xs[2].tolist()})
        assert r.status_code == 409 and "held by another server process" in r.json()["error"]
        clocks[0].now = 6.0
        assert services[0].sweep() == 1  # idle on a: to Redis, lease released
        for x in xs[2:4]:  # b takes it on where a left it
            assert np.array_equal(_step(b, "shared", x), reference.step(x))
        assert a.post("/streams/shared/step", json={"x": xs[4].tolist()}).status_code == 409
    # b's shutdown saved it and let go: a may take it again
    assert np.array_equal(_step(TestClient(apps[0]), "shared", xs[4]), reference.step(xs[4]))


# -- a real server, SIGTERM and a restart -------------------------------------------------------
def _start(checkpoint: Path, states: Path) -> tuple[subprocess.Popen, str]:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_THREAD_TIMEOUT": "4",  # set: the command does not start itself again
        "PYTHONPATH": str(Path(rnnkit.__file__).parents[1]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnkit.cli", "serve", str(checkpoint), "--port", "0"]
        + ["--state-dir", str(states)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    said = ""
    while not (found := re.search(r"serve: .* on (http://127\.0\.0\.1:\d+) ", said)):
        line = proc.stderr.readline()  # (a warning from a library may come first)
        assert line, said + proc.stderr.read()
        said += line
    url = found.group(1)
    for _ in range(200):  # the socket is bound: wait until the app answers
        try:
            httpx.get(url + "/health", timeout=1.0)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return proc, url


def test_sigterm_saves_every_stream_and_a_restarted_server_resumes_them(tmp_path):
    model = _lstm()
    checkpoint = rnnkit.save(model, tmp_path / "lstm.safetensors")
    references = {s: rnnkit.Stream(model) for s in ("s0", "s1", "s2")}
    xs = _inputs(4)
    proc, url = _start(checkpoint, tmp_path / "states")
    try:
        with httpx.Client(base_url=url, timeout=120.0) as client:
            for sid, reference in references.items():
                client.post("/streams", json={"id": sid})
                for x in xs[:3]:
                    assert np.array_equal(_step(client, sid, x), reference.step(x))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "3 streams saved to" in err
    proc, url = _start(checkpoint, tmp_path / "states")
    try:
        with httpx.Client(base_url=url, timeout=120.0) as client:
            for (
                sid,
                reference,
            ) in references.items():  # the next output of each, as if never stopped
                assert np.array_equal(_step(client, sid, xs[3]), reference.step(xs[3]))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_serve_refuses_a_missing_checkpoint_and_an_unreachable_redis_with_one_line(
    tmp_path, capsys
):
    from rnnkit.cli import main

    missing = str(tmp_path / "none.safetensors")
    assert main(["serve", missing]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"rnnkit: error: load: no such checkpoint file {missing!r}"
    ]
    checkpoint = str(rnnkit.save(_lstm(), tmp_path / "lstm.safetensors"))
    assert main(["serve", checkpoint, "--redis", "redis://127.0.0.1:1/0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("rnnkit: error: --redis: cannot reach"), err


@pytest.mark.parametrize("store", ["directory", "redis"])
def test_a_state_saved_from_another_model_is_refused_with_409(tmp_path, store):
    clock = Clock()
    backend = (
        DirectoryStore(tmp_path)
        if store == "directory"
        else RedisStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()), owner="x")
    )
    first = StreamService(_lstm(), backend, ServeConfig(), clock=clock)
    first.open("s")
    first.save_all()
    bigger = rnnkit.LSTM(F, 32, num_layers=2, seed=4)  # another shape: another model
    with _client(bigger, store=backend) as client:
        r = client.post("/streams/s/step", json={"x": [0.0] * F})
    assert r.status_code == 409 and "different model" in r.json()["error"], r.text
