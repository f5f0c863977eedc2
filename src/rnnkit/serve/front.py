"""`StepFront`: the hot path of `rnnkit serve`, a small raw-ASGI app in front of FastAPI.

It serves the two routes that carry the steps itself and hands every other request (open,
state, reset, close, health, metrics, the OpenAPI schema; and lifespan) to the FastAPI app
unchanged:

    POST /streams/{id}/step    the body read, size-checked and parsed by hand, the inputs
                               checked by `StreamService.read_inputs`, the answer written as
                               two ASGI messages: no routing table, no pydantic, no Request
                               or Response objects
    WS   /streams/{id}/ws      each message a step request as in /step, answered in JSON; or,
                               with the subprotocol ``rnnkit.binary`` chosen by the client, a
                               binary message of little-endian numbers (`read_binary`), answered
                               with the outputs as little-endian float32

Answers and one-line errors are those of the FastAPI routes (`app.py`), which stay declared
there for the schema and serve the steps when the front is off (``--no-front``). JSON goes
through orjson when it is installed, else the standard library's json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np

from .service import ServeError, StreamService

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

BINARY = "rnnkit.binary"  # the WebSocket subprotocol of binary steps
PREFIX = "/streams/"

orjson: Any
try:
    import orjson
except ImportError:  # the standard library's json, a little slower
    orjson = None


def loads(body: bytes | str) -> Any:
    """JSON, as `json.loads` reads it (NaN and Infinity included, which `read_inputs`
    refuses with a clearer message); a `ServeError` 400 for what is not JSON."""
    if orjson is not None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # NaN, numbers past 64 bits, non-UTF-8 bodies: json's reading, or its error
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ServeError(400, f"the body is not JSON ({exc})") from None
    except RecursionError:
        raise ServeError(400, "the body is JSON nested too deep") from None


def dumps(payload: Any) -> bytes:
    """Compact JSON bytes (floats written exactly: they read back to the same values)."""
    if orjson is not None:
        return orjson.dumps(payload)
    return json.dumps(payload, separators=(",", ":")).encode()


def outputs(ys: list[np.ndarray], many: bool) -> dict[str, Any]:
    """The JSON answer to a step request: ``{"y": ...}``, or ``{"ys": [...]}`` for several."""
    return {"ys": [y.tolist() for y in ys]} if many else {"y": ys[0].tolist()}


class StepFront:
    """The ASGI app `create_app` returns: the step routes here, the rest to ``app``."""

    def __init__(self, app: Any, service: StreamService, metrics: Any) -> None:
        self.app, self.service, self.metrics = app, service, metrics
        self.limit = service.config.max_body
        self._counters: dict[tuple[str, int], Any] = {}

    def __getattr__(self, name: str) -> Any:  # openapi(), routes, state: the FastAPI app's
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind, path = scope["type"], scope.get("path", "")
        if path.startswith(PREFIX):
            if kind == "http" and scope["method"] == "POST" and path.endswith("/step"):
                stream_id = path[len(PREFIX) : -len("/step")]
                if stream_id and "/" not in stream_id:
                    return await self._http_step(stream_id, scope, receive, send)
            elif kind == "websocket" and path.endswith("/ws"):
                stream_id = path[len(PREFIX) : -len("/ws")]
                if stream_id and "/" not in stream_id:
                    return await self._socket(stream_id, scope, receive, send)
        await self.app(scope, receive, send)

    def _count(self, route: str, status: int) -> None:
        counter = self._counters.get((route, status))
        if counter is None:
            counter = self.metrics.requests.labels(route, str(status))
            self._counters[route, status] = counter
        counter.inc()

    # -- POST /streams/{id}/step ----------------------------------------------------------------
    async def _http_step(self, stream_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        route = "/streams/{id}/step"
        try:
            xs, many = self.service.read_inputs(loads(await self._body(scope, receive)))
            start = time.perf_counter()
            ys = await self.service.step(stream_id, xs)
            self.metrics.latency.observe(time.perf_counter() - start)
            status, body = 200, dumps(outputs(ys, many))
        except ServeError as exc:
            status, body = exc.status, dumps({"error": str(exc)})
        self._count(route, status)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        """The request's body, refused (413) past ``--max-body`` before it is read when its
        Content-Length says so, else as soon as it grows past it."""
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > self.limit:
                    raise ServeError(
                        413,
                        f"request body of {value.decode()} bytes; the most is {self.limit} "
                        "(--max-body)",
                    )
                break
        message = await receive()
        body = message.get("body", b"")
        if not message.get("more_body"):
            if len(body) > self.limit:
                raise ServeError(413, f"request body over {self.limit} bytes (--max-body)")
            return body
        chunks, total = [body], len(body)
        while message.get("more_body"):
            message = await receive()
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.limit:
                raise ServeError(413, f"request body over {self.limit} bytes (--max-body)")
            chunks.append(chunk)
        return b"".join(chunks)

    # -- WS /streams/{id}/ws --------------------------------------------------------------------
    async def _socket(self, stream_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Each message answered in turn, an error as ``{"error": ..., "status": ...}`` (a text
        message) that leaves the connection open."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        binary = BINARY in scope.get("subprotocols", ())
        await send({"type": "websocket.accept", "subprotocol": BINARY if binary else None})
        try:
            await self._messages(stream_id, binary, receive, send)
        except OSError:  # the client went away while its answer was being sent
            return

    async def _messages(self, stream_id: str, binary: bool, receive: Receive, send: Send) -> None:
        route = "/streams/{id}/ws"
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return  # websocket.disconnect
            data = message.get("bytes")
            answer: dict[str, Any]
            try:
                if data is not None and binary:
                    if len(data) > self.limit:
                        raise ServeError(413, f"message over {self.limit} bytes (--max-body)")
                    ys = await self.service.step(stream_id, self.service.read_binary(data))
                    self._count(route, 200)
                    out = np.asarray(ys, dtype="<f4")  # (T, output size)
                    await send({"type": "websocket.send", "bytes": out.tobytes()})
                    continue
                data = message.get("text") or data or b""
                if len(data) > self.limit:
                    raise ServeError(413, f"message over {self.limit} bytes (--max-body)")
                xs, many = self.service.read_inputs(loads(data))
                answer = outputs(await self.service.step(stream_id, xs), many)
                self._count(route, 200)
            except ServeError as exc:
                self._count(route, exc.status)
                answer = {"error": str(exc), "status": exc.status}
            await send({"type": "websocket.send", "text": dumps(answer).decode()})
