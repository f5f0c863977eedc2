"""`rnnkit serve`: live streams served over HTTP and WebSocket by one `StreamPool`.

The layers, bottom up: `config` (`ServeConfig`, the options), `store` (where idle and saved
states go: a folder, or Redis shared by several server processes), `batcher` (`MicroBatcher`:
a request that finds the server idle is stepped at once, those that come in while a step is in
flight run as one batched step), `service`
(`StreamService`: streams opened, stepped, read, reset, closed, saved; no web framework),
`metrics` (Prometheus counters), `app` (`create_app`: the FastAPI routes), `front`
(`StepFront`: the step route and the WebSocket served on a lean raw-ASGI path in front of
FastAPI) and `run` (uvicorn, with uvloop and httptools when installed).

FastAPI, uvicorn and prometheus_client (the ``serve`` extra) are imported by `app`, `metrics`
and `run` only, orjson (also in the extra; json without it) by `front` only, redis (the
``redis`` extra) by `store.RedisStore` only: ``import rnnkit`` loads none of them.
"""
