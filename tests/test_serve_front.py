"""`rnnkit serve`'s hot path: `StepFront`, the raw-ASGI layer that serves the step route and the
WebSocket in front of FastAPI, and the opportunistic batching of `MicroBatcher`.

The front answers what the FastAPI routes answer (``--no-front``), status and one-line message
alike, and its outputs equal `Stream.step` bit for bit; binary WebSocket messages (the
``rnnkit.binary`` subprotocol) carry little-endian float32 both ways; a request that finds the
batcher idle is stepped at once, and only those that come in while a step is in flight are
batched.
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

import numpy as np
import pytest
from fastapi.testclient import TestClient

import rnnkit
from rnnkit.serve import front
from rnnkit.serve.app import create_app
from rnnkit.serve.batcher import MicroBatcher
from rnnkit.serve.config import ServeConfig
from rnnkit.serve.front import BINARY, StepFront
from rnnkit.serve.service import StreamService

F, H = 4, 24


def _lstm() -> rnnkit.LSTM:
    return rnnkit.LSTM(F, H, num_layers=2, seed=3)


def _inputs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, F)).astype(np.float32)


def _client(model, **options) -> TestClient:
    service = StreamService(model, config=ServeConfig(**options))
    return TestClient(create_app(service, log=open(os.devnull, "w")))


def test_the_front_is_on_by_default_and_off_with_no_front():
    model = _lstm()
    quiet = open(os.devnull, "w")
    on = create_app(StreamService(model), log=quiet)
    off = create_app(StreamService(model, config=ServeConfig(front=False)), log=quiet)
    assert isinstance(on, StepFront) and not isinstance(off, StepFront)
    assert "/streams/{stream_id}/step" in on.openapi()["paths"]  # FastAPI's, through the front


@pytest.mark.parametrize("use_front", [True, False])
def test_http_and_websocket_steps_equal_stream_step_bit_for_bit(use_front):
    model = _lstm()
    reference = rnnkit.Stream(model)
    xs = _inputs(10)
    with _client(model, front=use_front) as client:
        client.post("/streams", json={"id": "s"})
        for x in xs[:3]:
            r = client.post("/streams/s/step", json={"x": x.tolist()})
            assert r.status_code == 200 and r.headers["content-type"] == "application/json"
            assert np.array_equal(np.asarray(r.json()["y"], np.float32), reference.step(x))
        r = client.post("/streams/s/step", json={"xs": xs[3:5].tolist()})
        want = np.stack([reference.step(x) for x in xs[3:5]])
        assert np.array_equal(np.asarray(r.json()["ys"], np.float32), want)
        with client.websocket_connect("/streams/s/ws") as ws:
            for x in xs[5:8]:
                ws.send_text(json.dumps({"x": x.tolist()}))
                y = np.asarray(ws.receive_json()["y"], np.float32)
                assert np.array_equal(y, reference.step(x))
            ws.send_bytes(json.dumps({"xs": xs[8:].tolist()}).encode())  # JSON in a binary frame
            ys = np.asarray(ws.receive_json()["ys"], np.float32)
            assert np.array_equal(ys, np.stack([reference.step(x) for x in xs[8:]]))
        state = client.get("/streams/s/state").json()["state"]
        assert np.array_equal(np.asarray(state[0], np.float32), reference.state[0][:, 0])


BAD = [
    ({"x": [1.0, float("nan"), 0.0, 0.0]}, 422),
    ({"x": [1.0, float("inf"), 0.0, 0.0]}, 422),
    ({"x": [1.0, 2.0, 3.0]}, 422),
    ({"xs": [[1.0] * 4, [1.0] * 5]}, 422),
    ({"x": ["a", 1, 2, 3]}, 422),
    ({"x": [1e400, 0, 0, 0]}, 422),
    ({"x": [2**70, 0, 0, 0]}, 200),  # a big integer is a number: json reads it, orjson does not
    ({"xs": []}, 422),
    ({"xs": 3}, 422),
    ({"y": [1, 2, 3, 4]}, 422),
    ({"x": [1.0] * 4, "xs": [[1.0] * 4]}, 422),
    ([1, 2, 3, 4], 422),
    ({"xs": [[1.0] * 4] * 400}, 413),
    (b'{"x": [1, 2', 400),
    (b"", 400),
    (b"\xff\xfe", 400),
    (b"[" * 1500 + b"]" * 1500, 400),  # nested too deep
    (b"[" * 100_000, 413),
]


@pytest.mark.parametrize(("body", "status"), BAD)
def test_bad_step_requests_get_the_answers_of_the_fastapi_route(body, status):
    """Status and one-line message as FastAPI's route gives them, and the stream untouched."""
    model = _lstm()
    answers = []
    for use_front in (True, False):
        reference = rnnkit.Stream(model)
        with _client(model, front=use_front, max_body=4000) as client:
            client.post("/streams", json={"id": "good"})
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            r = client.post("/streams/good/step", content=content)
            answers.append((r.status_code, r.json()))
            x = _inputs(1)[0]
            r = client.post("/streams/good/step", json={"x": x.tolist()})
            if status != 200:  # the good stream steps on as if nothing had happened
                assert np.array_equal(np.asarray(r.json()["y"], np.float32), reference.step(x))
    (got, answer), (want, _) = answers
    assert got == status == want, answers
    assert answers[0] == answers[1]
    if status != 200:
        assert "\n" not in answer["error"]


@pytest.mark.parametrize("path", ["/streams/nobody/step", "/streams/bad*id/step"])
def test_unknown_or_malformed_stream_ids_get_the_fastapi_answers(path):
    answers = []
    for use_front in (True, False):
        with _client(_lstm(), front=use_front) as client:
            r = client.post(path, json={"x": [1.0] * 4})
            answers.append((r.status_code, r.json()))
    assert answers[0] == answers[1] and answers[0][0] in (404, 422), answers


def test_other_routes_and_methods_pass_through_to_fastapi():
    with _client(_lstm()) as client:
        assert client.post("/streams", json={"id": "a"}).status_code == 201
        assert client.get("/streams/a/step").status_code == 405  # FastAPI: method not allowed
        assert client.post("/streams/a/b/step", json={"x": [0] * 4}).status_code == 404
        assert client.get("/health").json()["streams"] == 1
        assert "rnnkit_serve_requests_total" in client.get("/metrics").text


def test_binary_websocket_messages_round_trip_as_little_endian_float32():
    model = _lstm()
    reference = rnnkit.Stream(model)
    xs = _inputs(7, seed=2)
    with _client(model, max_body=4000) as client:
        client.post("/streams", json={"id": "b"})
        with client.websocket_connect("/streams/b/ws", subprotocols=[BINARY]) as ws:
            assert ws.accepted_subprotocol == BINARY
            for x in xs[:3]:
                ws.send_bytes(x.astype("<f4").tobytes())
                y = np.frombuffer(ws.receive_bytes(), "<f4")
                assert np.array_equal(y, reference.step(x))
            ws.send_bytes(xs[3:6].astype("<f4").tobytes())  # three steps in one message
            ys = np.frombuffer(ws.receive_bytes(), "<f4").reshape(3, H)
            assert np.array_equal(ys, np.stack([reference.step(x) for x in xs[3:6]]))
            ws.send_bytes(b"\x00" * 10)  # not whole steps: a text error, the socket stays open
            assert ws.receive_json() == {
                "error": "expected a binary message of whole steps of vectors of 4 numbers "
                "(float32), 16 bytes each, got 10 bytes",
                "status": 422,
            }
            bad = xs[6].copy()
            bad[1] = np.nan
            ws.send_bytes(bad.astype("<f4").tobytes())
            assert ws.receive_json()["status"] == 422
            ws.send_bytes(b"\x00" * 16 * 300)  # over --max-body
            assert ws.receive_json()["status"] == 413
            ws.send_text(json.dumps({"x": xs[6].tolist()}))  # text messages stay JSON
            y = np.asarray(ws.receive_json()["y"], np.float32)
            assert np.array_equal(y, reference.step(xs[6]))
        with client.websocket_connect("/streams/b/ws") as ws:  # no subprotocol: binary is JSON
            assert ws.accepted_subprotocol is None
            ws.send_bytes(xs[0].astype("<f4").tobytes())
            assert ws.receive_json()["status"] == 400
        with client.websocket_connect("/streams/gone/ws", subprotocols=[BINARY]) as ws:
            ws.send_bytes(xs[0].astype("<f4").tobytes())
            assert ws.receive_json() == {"error": "no stream 'gone'", "status": 404}


def test_binary_messages_of_a_language_model_carry_int32_token_ids():
    lm = rnnkit.models.LanguageModel(11, "gru", hidden_size=16, num_layers=1, seed=0)
    reference = rnnkit.Stream(lm)
    with _client(lm) as client:
        sid = client.post("/streams").json()["id"]
        with client.websocket_connect(f"/streams/{sid}/ws", subprotocols=[BINARY]) as ws:
            ws.send_bytes(np.array([3, 1, 10], "<i4").tobytes())
            ys = np.frombuffer(ws.receive_bytes(), "<f4").reshape(3, -1)
            want = np.stack([reference.step(t) for t in (3, 1, 10)]).astype(np.float32)
            assert np.array_equal(ys, want)
            ws.send_bytes(np.array([11], "<i4").tobytes())
            assert "token ids in [0, 11)" in ws.receive_json()["error"]


def test_json_without_orjson_reads_and_writes_the_same(monkeypatch):
    payload = {"y": [0.1, -2.5e-08, 3.0, float(np.float32(0.3))], "id": "s"}
    with_orjson = front.dumps(payload)
    monkeypatch.setattr(front, "orjson", None)
    assert json.loads(front.dumps(payload)) == json.loads(with_orjson) == payload
    assert front.loads(b'{"x": [NaN, 1]}')["x"][1] == 1
    with pytest.raises(rnnkit.RnnkitError, match="not JSON"):
        front.loads(b"{")


# -- opportunistic batching -------------------------------------------------------------------
def test_a_request_that_finds_the_batcher_idle_is_stepped_at_once():
    model = _lstm()
    pool = rnnkit.StreamPool(model)
    for s in "abcd":
        pool.join(s)
    rounds: list[int] = []
    batcher = MicroBatcher(pool, on_round=rounds.append)
    reference = rnnkit.Stream(model)
    x = _inputs(1)[0]

    async def run():
        first = batcher.submit("a", x[None])
        assert first.done() and rounds == [1]  # no waiting for company
        later = [batcher.submit(s, x[None]) for s in "bcd"]  # came in while "a" was in flight
        assert not any(f.done() for f in later)
        await asyncio.sleep(0)
        assert all(f.done() for f in later) and rounds == [1, 3]  # one batched round
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the batcher is idle again: the next request goes at once
        again = batcher.submit("a", x[None])
        assert again.done() and rounds == [1, 3, 1]
        return [await f for f in (first, *later)]

    outs = asyncio.run(run())
    want = reference.step(x)
    assert np.array_equal(outs[0][0], want)  # alone: the fused step, bit for bit
    for out in outs[1:]:
        np.testing.assert_allclose(out[0], want, rtol=1e-5, atol=2e-6)  # batched


def test_no_batch_steps_every_request_at_once():
    pool = rnnkit.StreamPool(_lstm())
    for s in "ab":
        pool.join(s)
    rounds: list[int] = []
    batcher = MicroBatcher(pool, batched=False, on_round=rounds.append)
    x = _inputs(2)

    async def run():
        futures = [batcher.submit(s, x) for s in "ab"]
        assert all(f.done() for f in futures)

    asyncio.run(run())
    assert rounds == [1, 1, 1, 1]


# -- a real server ------------------------------------------------------------------------------
def test_a_real_server_runs_uvloop_and_httptools_and_serves_the_front(tmp_path):
    """Under uvicorn (not the test client): the start line names the event loop and the HTTP
    parser, and HTTP and binary WebSocket steps answer `Stream.step`'s numbers."""
    import httpx
    from websockets.sync.client import connect

    model = _lstm()
    reference = rnnkit.Stream(model)
    checkpoint = rnnkit.save(model, tmp_path / "lstm.safetensors")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_THREAD_TIMEOUT": "4"}
    env["PYTHONPATH"] = str(Path(rnnkit.__file__).parents[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnkit.cli", "serve", str(checkpoint), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        said = ""
        while not (found := re.search(r"serve: .* on http://(127\.0\.0\.1:\d+) ", said)):
            line = proc.stderr.readline()
            assert line, said
            said += line
        assert "uvloop, httptools" in said, said
        address = found.group(1)
        xs = _inputs(3, seed=5)
        with httpx.Client(base_url=f"http://{address}", timeout=60.0) as client:
            for _ in range(200):  # the socket is bound: wait until the app answers
                try:
                    client.get("/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            client.post("/streams", json={"id": "real"})
            r = client.post("/streams/real/step", json={"x": xs[0].tolist()})
            assert np.array_equal(np.asarray(r.json()["y"], np.float32), reference.step(xs[0]))
        with connect(f"ws://{address}/streams/real/ws", subprotocols=[BINARY]) as ws:
            assert ws.subprotocol == BINARY
            ws.send(xs[1:].astype("<f4").tobytes())
            ys = np.frombuffer(ws.recv(timeout=60), "<f4").reshape(2, H)
        assert np.array_equal(ys, np.stack([reference.step(x) for x in xs[1:]]))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
