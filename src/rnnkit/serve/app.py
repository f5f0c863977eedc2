"""`create_app`: the HTTP and WebSocket routes of `rnnkit serve` (FastAPI) over a
`StreamService`.

    POST   /streams                 open a stream: {"id": "..."} optional -> 201 {"id": ...}
    POST   /streams/{id}/step       {"x": step} -> {"y": output}; {"xs": [steps]} -> {"ys": [...]}
    GET    /streams/{id}/state      {"id": ..., "state": [part (layers, hidden), ...]}
    POST   /streams/{id}/reset      back to zeros
    DELETE /streams/{id}            close it (in memory and in the store)
    WS     /streams/{id}/ws         each message {"x": ...} or {"xs": [...]} answered in turn
    GET    /health, /metrics        the model and the streams; Prometheus text
    GET    /openapi.json, /docs     the schema (FastAPI's)

Bodies are read and checked by hand, not by pydantic: a size limit before anything is parsed
(413), one-line messages (``{"error": "..."}``). The schema still documents every body
(``openapi_extra``). The app returned is FastAPI's wrapped in `StepFront` (`front.py`), which
serves the step route and the WebSocket itself, on a lean raw-ASGI path, and hands the rest to
FastAPI; with ``--no-front`` (``ServeConfig.front``) the FastAPI routes below serve them.
"""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations, which name
# classes imported inside `create_app`
import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from .._version import __version__
from .front import StepFront, dumps, loads, outputs
from .metrics import CONTENT_TYPE, Metrics
from .service import ServeError, StreamService

STEP_SCHEMA = {
    "type": "object",
    "description": "one step {'x': ...} or several {'xs': [...]}: a vector of input_size "
    "numbers per step (a token id for a language model)",
    "properties": {
        "x": {"oneOf": [{"type": "array", "items": {"type": "number"}}, {"type": "integer"}]},
        "xs": {
            "type": "array",
            "items": {
                "oneOf": [{"type": "array", "items": {"type": "number"}}, {"type": "integer"}]
            },
        },
    },
}
OPEN_SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$"}},
}


def _body_doc(schema: dict, required: bool) -> dict:
    return {
        "requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}
    }


def _error_doc(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"description": "refused: {'error': one line}"} for c in codes}


def create_app(service: StreamService, log: Any = None) -> Any:
    """The ASGI app (`StepFront` over FastAPI's, or FastAPI's alone with ``front=False`` in the
    service's config). At shutdown it saves every stream to the service's store and says so on
    ``log`` (stderr)."""
    from fastapi import FastAPI, Request, WebSocket
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import Response
    from starlette.exceptions import HTTPException
    from starlette.websockets import WebSocketDisconnect

    log = log or sys.stderr
    metrics = Metrics(service)
    limit = service.config.max_body

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(_sweep(service))
        try:
            yield
        finally:
            sweeper.cancel()
            saved = service.save_all()
            where = service.store.describe() if service.store is not None else None
            said = f"{saved} streams saved to {where}" if where else "no store, states not saved"
            print(f"rnnkit serve: stopped; {said}", file=log, flush=True)

    app = FastAPI(
        title="rnnkit serve",
        version=__version__,
        description="Live streams of one recurrent model, stepped in batches.",
        lifespan=lifespan,
    )

    def answer(route: str, payload: Any, status: int = 200) -> Response:
        metrics.requests.labels(route, str(status)).inc()
        return Response(dumps(payload), status, media_type="application/json")

    def refuse(route: str, status: int, message: str) -> Response:
        return answer(route, {"error": message}, status)

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> Response:
        return refuse(_route(request), exc.status, str(exc))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        return refuse(_route(request), exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return refuse(_route(request), 422, f"{where}: {first.get('msg', 'invalid')}")

    async def read_json(request: Request, required: bool = True) -> Any:
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > limit:
            raise ServeError(413, f"request body of {size} bytes; the most is {limit} (--max-body)")
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise ServeError(413, f"request body over {limit} bytes (--max-body)")
            chunks.append(chunk)
        body = b"".join(chunks)
        if not body.strip() and not required:
            return {}
        return loads(body)

    @app.post(
        "/streams",
        status_code=201,
        summary="open a stream (from zeros)",
        openapi_extra=_body_doc(OPEN_SCHEMA, required=False),
        responses=_error_doc(409, 413, 422, 503),
    )
    async def open_stream(request: Request) -> Response:
        body = await read_json(request, required=False)
        if not isinstance(body, dict) or not (
            body.get("id") is None or isinstance(body["id"], str)
        ):
            raise ServeError(422, "expected a JSON object, with 'id' a string if given")
        return answer("/streams", {"id": service.open(body.get("id"))}, 201)

    @app.post(
        "/streams/{stream_id}/step",
        summary="step a stream by one input or several",
        openapi_extra=_body_doc(STEP_SCHEMA, required=True),
        responses=_error_doc(400, 404, 409, 413, 422),
    )
    async def step_stream(stream_id: str, request: Request) -> Response:
        xs, many = service.read_inputs(await read_json(request))
        start = time.perf_counter()
        ys = await service.step(stream_id, xs)
        metrics.latency.observe(time.perf_counter() - start)
        return answer("/streams/{id}/step", outputs(ys, many))

    @app.get("/streams/{stream_id}/state", summary="a stream's state", responses=_error_doc(404))
    async def stream_state(stream_id: str) -> Response:
        parts = service.state(stream_id)
        return answer(
            "/streams/{id}/state", {"id": stream_id, "state": [p.tolist() for p in parts]}
        )

    @app.post("/streams/{stream_id}/reset", summary="reset to zeros", responses=_error_doc(404))
    async def reset_stream(stream_id: str) -> Response:
        service.reset(stream_id)
        return answer("/streams/{id}/reset", {"id": stream_id})

    @app.delete("/streams/{stream_id}", summary="close a stream", responses=_error_doc(404))
    async def close_stream(stream_id: str) -> Response:
        service.close(stream_id)
        return answer("/streams/{id}", {"id": stream_id, "closed": True})

    @app.get("/health", summary="the model, the streams held, the store")
    async def health() -> Response:
        return answer("/health", {"status": "ok", **service.describe()})

    @app.get("/metrics", summary="Prometheus text format")
    async def prometheus() -> Response:
        metrics.requests.labels("/metrics", "200").inc()
        return Response(metrics.text(), media_type=CONTENT_TYPE)

    @app.websocket("/streams/{stream_id}/ws")
    async def stream_socket(websocket: WebSocket, stream_id: str) -> None:
        """Each message a step request as in /step; each answer its output or its error
        (``{"error": ..., "status": ...}``); an error leaves the connection open."""
        route = "/streams/{id}/ws"
        await websocket.accept()
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("text") or message.get("bytes") or b""
                try:
                    if len(data) > limit:
                        raise ServeError(413, f"message over {limit} bytes (--max-body)")
                    xs, many = service.read_inputs(loads(data))
                    ys = await service.step(stream_id, xs)
                    out = outputs(ys, many)
                    metrics.requests.labels(route, "200").inc()
                except ServeError as exc:
                    metrics.requests.labels(route, str(exc.status)).inc()
                    out = {"error": str(exc), "status": exc.status}
                await websocket.send_text(dumps(out).decode())
        except WebSocketDisconnect:
            return

    return StepFront(app, service, metrics) if service.config.front else app


async def _sweep(service: StreamService) -> None:
    """Idle streams to the store, the others' leases renewed, a few times per idle period."""
    every = min(5.0, service.config.idle_seconds / 4)
    while True:
        await asyncio.sleep(every)
        try:
            service.sweep()
        except Exception as exc:  # noqa: BLE001 - a store that failed once may come back
            print(f"rnnkit serve: saving idle streams failed: {exc}", file=sys.stderr, flush=True)


def _route(request: Any) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", "unmatched").replace("{stream_id}", "{id}")
