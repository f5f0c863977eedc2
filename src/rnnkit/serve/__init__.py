"""`rnnkit serve`: live streams served over HTTP and WebSocket by one `StreamPool`.

The layers, bottom up: `config` (`ServeConfig`, the options), `store` (where idle and saved
states go: a folder, or Redis shared by several server processes), `batcher` (`MicroBatcher`:
the steps of streams that arrive together run as one batched step), `service`
(`StreamService`: streams opened, stepped, read, reset, closed, saved; no web framework),
`metrics` (Prometheus counters), `app` (`create_app`: the FastAPI routes) and `run` (uvicorn).

FastAPI, uvicorn and prometheus_client (the ``serve`` extra) are imported by `app`, `metrics`
and `run` only, redis (the ``redis`` extra) by `store.RedisStore` only: ``import rnnkit``
loads none of them.
"""
