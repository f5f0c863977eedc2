"""Many series scored on Ray or Dask: partitions of series, each worker loading the model once.

``Forecaster.forecast_series``, ``Forecaster.predict`` (and its quantiles and intervals) and
``AnomalyDetector.detect`` take ``engine=``: ``"local"`` (this process, the default),
``"ray"``, ``"dask"``, or an `Engine` naming the number of workers or the address of a running
cluster. The CLI has the same as ``--engine``, ``--workers`` and ``--engine-address``.

How it runs (`map_partitions`):

- The caller cuts its series into **partitions** of consecutive series in input order (a
  series is never split; the partition size is the caller's and does not depend on the
  engine or the number of workers). Each partition is scored by one call of a module-level
  function ``fn(model, partition)``; the results come back in the partitions' order.
- **Local** calls ``fn`` on each partition in turn, in this process, with the model itself.
  The other engines call the same ``fn`` on the same partitions, so their numbers are the
  local ones bit for bit (tested).
- **Ray and Dask** get the model as the bytes of its checkpoint (`rnnkit.save`: safetensors
  and JSON, no pickle), put once into the cluster (``ray.put``, ``Client.scatter``); each
  worker process loads it on its first partition and keeps it for the next ones (keyed by the
  bytes' SHA-256), so a worker loads a model once however many partitions it scores.
- Without ``address``, a cluster on this machine is started for the call and shut down after
  it: Ray with ``ray.init(num_cpus=workers)`` on loopback, no dashboard, usage statistics off;
  Dask with ``distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
  processes=True)`` on loopback. Either way each worker is one process with one thread
  (``RNNKIT_NUM_THREADS``, ``OMP_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` set to 1) and
  imports this rnnkit (its source folder is put on the workers' ``PYTHONPATH``). When
  ``workers`` is not given, a Ray already initialised in this process, or a Dask ``Client``
  already made, is used as it is and left running. With ``address``, rnnkit connects to that
  cluster (``ray.init(address=...)``, shipping this rnnkit to its workers as a
  runtime-environment module; ``Client(address)``, whose workers must have this rnnkit
  installed) and uses its workers.

Ray and Dask are optional extras (``pip install 'rnnkit[ray]'``, ``'rnnkit[dask]'``),
imported only here, when asked for.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .errors import InputError, RnnkitError
from .io.checkpoint import load, save

KINDS = ("local", "ray", "dask")
# the module each engine needs, its name for people, and the extra that installs it
EXTRAS = {"ray": ("ray", "Ray", "ray"), "dask": ("distributed", "Dask", "dask")}
# one core per worker: rnnkit's own threads and the BLAS's
WORKER_ENV = {"RNNKIT_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
RAY_OBJECT_STORE = 128 * 2**20  # bytes; a model and a partition's series are small
SOURCE = Path(__file__).resolve().parent.parent  # the folder holding the rnnkit package

_P = TypeVar("_P")
_R = TypeVar("_R")


class MissingExtra(RnnkitError, ImportError):
    """An engine's package is not installed; the message names the extra that installs it."""


@dataclass(frozen=True)
class Engine:
    """Where partitions of series are scored: ``kind`` ("local", "ray" or "dask"), the
    ``workers`` of a cluster started for the call (None: the Ray or Dask client already
    running in this process, else a cluster of one worker per core), or the ``address`` of a
    running cluster to use instead (with its own workers)."""

    kind: str = "local"
    workers: int | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"engine: expected one of {', '.join(KINDS)}, got {self.kind!r}")
        w = self.workers
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 1):
            raise InputError(f"engine: workers must be a positive integer or None, got {w!r}")
        if self.kind == "local" and (w is not None or self.address is not None):
            raise InputError(
                "engine: workers and address go with engine 'ray' or 'dask'; 'local' runs in "
                "this process"
            )
        if self.address is not None and w is not None:
            raise InputError(
                f"engine: give workers (a cluster started for the call) or address (a running "
                f"cluster, with its own workers), not both; got workers={w}, "
                f"address={self.address!r}"
            )


def as_engine(engine: str | Engine) -> Engine:
    """``engine`` as an `Engine` ("ray" is ``Engine("ray")``); a bad one is an `InputError`."""
    if isinstance(engine, Engine):
        return engine
    if isinstance(engine, str):
        return Engine(engine)
    raise InputError(f"engine: expected one of {', '.join(KINDS)} or an Engine, got {engine!r}")


def cores() -> int:
    """The cores this process may run on: the default number of workers."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def partitions(n: int, size: int) -> list[slice]:
    """Consecutive slices of ``size`` items covering ``range(n)`` (one empty one for n = 0)."""
    return [slice(a, min(a + size, n)) for a in range(0, n, size)] or [slice(0, 0)]


def need(kind: str) -> Any:
    """The module engine ``kind`` runs on, imported; `MissingExtra` naming the extra when it
    is not installed."""
    import importlib

    module, name, extra = EXTRAS[kind]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(
            f"engine {kind!r} needs {name}, which is not installed; pip install 'rnnkit[{extra}]'"
        ) from None


# -- the model as bytes, loaded once per worker ----------------------------------------------------
def to_bytes(model: Any) -> bytes:
    """The checkpoint of ``model`` (an estimator or a module; `rnnkit.save`) as bytes."""
    with tempfile.TemporaryDirectory(prefix="rnnkit-engine-") as tmp:
        path = Path(tmp) / "model.safetensors"
        save(model, path)
        return path.read_bytes()


def from_bytes(blob: bytes) -> Any:
    """The model of `to_bytes`'s bytes (`rnnkit.load`)."""
    with tempfile.TemporaryDirectory(prefix="rnnkit-engine-") as tmp:
        path = Path(tmp) / "model.safetensors"
        path.write_bytes(blob)
        return load(path)


_LOADED: dict[str, Any] = {}  # in a worker: the last model loaded, by the SHA-256 of its bytes


def _score(fn: Callable[[Any, _P], _R], key: str, blob: bytes, part: _P) -> _R:
    """One partition in a worker: the model loaded on the worker's first partition, reused."""
    model = _LOADED.get(key)
    if model is None:
        from threadpoolctl import threadpool_limits

        from .process import tune_process

        tune_process()  # malloc keeps large buffers, as in the `rnnkit` command's process
        threadpool_limits(limits=1, user_api="blas")  # for good: a worker is one thread
        model = from_bytes(blob)
        _LOADED.clear()  # one model at a time per worker
        _LOADED[key] = model
    return fn(model, part)


# -- the engines -------------------------------------------------------------------------------
def map_partitions(
    fn: Callable[[Any, _P], _R], model: Any, parts: Sequence[_P], engine: str | Engine = "local"
) -> list[_R]:
    """``[fn(model, p) for p in parts]`` on ``engine``, in the order of ``parts``. ``fn`` must
    be a module-level function (workers import it by name); ``model`` something `rnnkit.save`
    writes."""
    eng = as_engine(engine)
    if eng.kind == "local":
        return [fn(model, p) for p in parts]
    need(eng.kind)  # before any work: the extra is installed
    blob = to_bytes(model)
    key = hashlib.sha256(blob).hexdigest()
    if eng.kind == "ray":
        return _on_ray(fn, key, blob, list(parts), eng)
    return _on_dask(fn, key, blob, list(parts), eng)


def _on_ray(fn: Any, key: str, blob: bytes, parts: list[Any], eng: Engine) -> list[Any]:
    ray = need("ray")
    started = not ray.is_initialized()
    if not started and (eng.workers is not None or eng.address is not None):
        raise InputError(
            "engine: Ray is already running in this process (ray.init); workers or address "
            "would start or join another: use engine 'ray' for the running one, or call "
            "ray.shutdown() first"
        )
    if started:
        start_ray(eng.workers or cores(), eng.address)
    try:
        task = ray.remote(num_cpus=1)(_score)
        ref = ray.put(blob)  # once into the object store; each task reads it from there
        return list(ray.get([task.remote(fn, key, ref, p) for p in parts]))
    finally:
        if started:
            ray.shutdown()


def start_ray(workers: int, address: str | None = None) -> None:
    """``ray.init``: a cluster of ``workers`` CPUs on loopback (no dashboard, usage statistics
    off), or a connection to the cluster at ``address``; workers import this rnnkit."""
    ray = need("ray")
    env = dict(WORKER_ENV)
    if address is None:
        path = os.environ.get("PYTHONPATH")
        env["PYTHONPATH"] = str(SOURCE) + (os.pathsep + path if path else "")
        runtime: dict[str, Any] = {"env_vars": env}
        options: dict[str, Any] = {
            "num_cpus": workers,
            "include_dashboard": False,
            "_node_ip_address": "127.0.0.1",
            "object_store_memory": RAY_OBJECT_STORE,
        }
    else:
        runtime = {"env_vars": env, "py_modules": [str(SOURCE / "rnnkit")]}
        options = {"address": address}
    with _environ(RAY_USAGE_STATS_ENABLED="0"):
        ray.init(runtime_env=runtime, logging_level=logging.ERROR, log_to_driver=False, **options)


def _on_dask(fn: Any, key: str, blob: bytes, parts: list[Any], eng: Engine) -> list[Any]:
    distributed = need("dask")
    owned: list[Any] = []
    client = None
    if eng.address is not None:
        client = distributed.Client(eng.address, set_as_default=False)
        owned.append(client)
    elif eng.workers is None:
        with contextlib.suppress(ValueError):
            client = distributed.default_client()  # the user's own, left running
    if client is None:
        cluster, client = start_dask(eng.workers or cores(), set_as_default=False)
        owned += [client, cluster]
    try:
        data = client.scatter(blob, broadcast=True)  # once onto every worker
        futures = [client.submit(_score, fn, key, data, p, pure=False) for p in parts]
        return list(client.gather(futures))
    finally:
        for thing in owned:
            thing.close()


def start_dask(workers: int, set_as_default: bool = True) -> tuple[Any, Any]:
    """A ``distributed.LocalCluster`` of ``workers`` processes of one thread each on loopback,
    and a ``Client`` of it (the default client until closed, if ``set_as_default``); workers
    import this rnnkit."""
    distributed = need("dask")
    path = os.environ.get("PYTHONPATH")
    env = {**WORKER_ENV, "PYTHONPATH": str(SOURCE) + (os.pathsep + path if path else "")}
    import dask

    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which hands every large
    # freed buffer back to the system: forecasts ran 3-4 times slower in a worker than here.
    # Without it, `tune_process` gives the workers rnnkit's own malloc settings.
    keep_malloc = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    with dask.config.set(keep_malloc):
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
            env=env,
        )
    return cluster, distributed.Client(cluster, set_as_default=set_as_default)


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Environment variables set for a block, then put back."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- the command line ----------------------------------------------------------------------------
def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """``--engine``, ``--workers``, ``--engine-address`` (``rnnkit forecast``, ``detect``)."""
    from .config import positive_int

    p.add_argument(
        "--engine",
        choices=KINDS,
        default="local",
        help="where the series are scored: this process, or partitions of them on Ray or Dask "
        "workers, each loading the model once (default: local)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="with --engine ray or dask: worker processes of the cluster started for the run "
        "(default: one per core)",
    )
    p.add_argument(
        "--engine-address",
        default=None,
        help="with --engine ray or dask: the address of a running cluster to use instead "
        "(ray: HOST:PORT or ray://HOST:PORT; dask: tcp://HOST:PORT) (default: none)",
    )


def engine_from_args(args: argparse.Namespace) -> Engine:
    """The `Engine` of ``--engine``, ``--workers`` and ``--engine-address``."""
    if args.engine == "local" and (args.workers is not None or args.engine_address is not None):
        flag = "--workers" if args.workers is not None else "--engine-address"
        raise InputError(f"{flag}: goes with --engine ray or dask; --engine local is one process")
    if args.workers is not None and args.engine_address is not None:
        raise InputError(
            "--workers: a cluster at --engine-address has its own workers; give one of them"
        )
    return Engine(args.engine, args.workers, args.engine_address)
