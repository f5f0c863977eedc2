"""Data-parallel training: N processes, each on its shard of every batch, gradients all-reduced
through ``torch.distributed`` (the gloo backend, on CPU) before the optimizer step.

A run is N copies of the same command started by ``torchrun`` (one machine or several), which
sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; `Distributed.from_environment`
joins the process group when ``WORLD_SIZE`` is above 1 and is None otherwise, so one process
trains as before. ``rnnkit train ... --nproc N`` starts ``torchrun`` for one machine (`launch`).

What each step does (`Trainer` calls it between the backward and the clipping):
- every rank runs the objective on its rows of the global batch (`shard`: contiguous, the same
  split of the same batch on every rank, as PyTorch's ``DistributedSampler`` does), giving its
  mean loss over its ``w`` weights (its ``n`` units, or the objective's ``loss_weight`` when the
  loss is a mean over something else: target tokens, class weights) and that mean's gradients;
- the gradients are summed as ``sum_r w_r g_r / sum_r w_r``: the gradient of the mean over the
  whole global batch, exactly what one process on the whole batch computes;
- the model's gradient arrays are views into a few flat buffers (`GradientBuckets`, at most
  `BUCKET_BYTES` each), seen by torch through ``torch.from_numpy`` without a copy, so a step
  sends one message per bucket plus one of five float64 numbers (the loss, ``w``, ``n``, a stop
  asked for by a signal on any rank, the clock) and copies nothing;
- clipping, the divergence guard and AdamW then run on every rank on the same numbers, so the
  weights stay identical without being sent again.

Rank 0 alone evaluates (the loss is broadcast, so early stopping and the guard decide alike on
every rank), writes checkpoints, logs and plots; every rank reads the ``.last`` checkpoint to
resume. The carried state (the language model's hidden state) is gathered to rank 0 before a
save, so a checkpoint holds the whole batch's state and resumes on any number of ranks that
divides the batch. A rank that stops (killed, out of memory) breaks the next collective on the
others: they report which rank is missing (`DistributedError`), and the run resumes from the
last checkpoint with ``--resume``.

``torch`` is imported only here and only when a run is distributed (the ``distributed`` extra).
"""

from __future__ import annotations

import atexit
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np

from ..errors import DistributedError, InputError, RnnkitError
from ..layers.module import Module

BUCKET_BYTES = 25 * 2**20  # PyTorch DDP's default bucket size
GRACE_SECONDS = 2.0  # after a broken collective: how long the ranks still alive have to say so
TIMEOUT_MINUTES = 30.0  # a collective that waits longer for a silent rank fails
_JOINED: Any = None  # the store of the process group this process joined


def environment_rank() -> tuple[int, int]:
    """``(rank, world size)`` from ``RANK`` and ``WORLD_SIZE`` (set by ``torchrun``); ``(0, 1)``
    outside a distributed run."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0, 1
    return (rank, world) if world > 1 else (0, 1)


def is_writer() -> bool:
    """Whether this process writes logs, checkpoints and plots: rank 0, or a lone process."""
    return environment_rank()[0] == 0


def shard(n: int, part: tuple[int, int] | None) -> slice:
    """The rows of a batch of ``n`` that rank ``part[0]`` of ``part[1]`` works on: contiguous,
    sizes differing by at most one (``numpy.array_split``'s); all of them for ``part=None``."""
    if part is None:
        return slice(0, n)
    rank, world = part
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def check_divides(batch: int, world: int, what: str) -> None:
    """A batch of parallel streams whose state is carried must split evenly over the ranks."""
    if batch % world:
        raise InputError(
            f"{what} {batch} does not split evenly over {world} processes; expected a multiple "
            f"of {world}"
        )


def modules_of(model: Module) -> Iterator[Module]:
    yield model
    for child in model.children.values():
        yield from modules_of(child)


class GradientBuckets:
    """The model's gradient arrays moved into a few flat buffers (one dtype each, at most
    ``bucket_bytes``), every ``grads`` entry replaced by a view of its buffer, so the
    all-reduce reads and writes the arrays the backward accumulates into, with no copy.
    Tied weights (one array under two keys) stay one view."""

    def __init__(self, model: Module, bucket_bytes: int = BUCKET_BYTES) -> None:
        grads = list(model.named_grads().values())
        self.flats: list[np.ndarray] = []
        views: dict[int, np.ndarray] = {}
        start = 0
        while start < len(grads):
            dtype, size, stop = grads[start].dtype, 0, start
            while stop < len(grads) and grads[stop].dtype == dtype:
                if stop > start and (size + grads[stop].size) * dtype.itemsize > bucket_bytes:
                    break
                size += grads[stop].size
                stop += 1
            flat = np.zeros(size, dtype=dtype)
            offset = 0
            for g in grads[start:stop]:
                view = flat[offset : offset + g.size].reshape(g.shape)
                view[...] = g
                views[id(g)] = view
                offset += g.size
            self.flats.append(flat)
            start = stop
        for module in modules_of(model):
            for key, g in module.grads.items():
                if id(g) in views:
                    module.grads[key] = views[id(g)]
        for key, g in model.named_grads().items():
            if not any(np.shares_memory(g, flat) for flat in self.flats):
                raise RnnkitError(
                    f"distributed training: gradient {key!r} of {type(model).__name__} is held "
                    "outside the module's grads; expected every gradient in a grads dict"
                )
        self.nbytes = sum(f.nbytes for f in self.flats)


@dataclass
class CommStats:
    """What the collectives cost so far: seconds inside them, steps, bytes sent per step."""

    seconds: float = 0.0
    steps: int = 0
    bytes_per_step: int = 0
    messages_per_step: int = 0
    step_seconds: list[float] = field(default_factory=list)  # each step's all-reduce


class Distributed:
    """This process's place in a data-parallel run, and the collectives the `Trainer` needs."""

    def __init__(self, rank: int, world: int, store: Any = None) -> None:
        self.rank, self.world = rank, world
        self.part = (rank, world)
        self._store = store
        self.buckets: GradientBuckets | None = None
        self.stats = CommStats()
        self._step_times: list[float] = []

    @classmethod
    def from_environment(cls) -> Distributed | None:
        """Join the process group that ``torchrun`` describes in the environment (``RANK``,
        ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``); None when ``WORLD_SIZE`` is absent
        or 1."""
        global _JOINED
        rank, world = environment_rank()
        if world == 1:
            return None
        if _JOINED is not None:  # a second run in this process (cross-validation folds)
            return cls(rank, world, _JOINED)
        try:
            import torch.distributed as dist
        except ImportError:
            raise InputError(
                "distributed training needs torch: pip install 'rnnkit[distributed]'"
            ) from None
        addr = os.environ.get("MASTER_ADDR", "127.0.0.1")
        port = int(os.environ.get("MASTER_PORT", "29500"))
        timeout = timedelta(minutes=TIMEOUT_MINUTES)
        # under torchrun the agent holds the store, so it outlives any rank; else rank 0 does
        agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
        try:
            store = dist.TCPStore(
                addr, port, world, is_master=rank == 0 and not agent, timeout=timeout
            )
            if not dist.is_initialized():
                dist.init_process_group(
                    "gloo",
                    store=dist.PrefixStore("rnnkit/group", store),
                    rank=rank,
                    world_size=world,
                    timeout=timeout,
                )
        except RuntimeError as exc:
            raise DistributedError(
                f"distributed training: rank {rank} of {world} could not join the group at "
                f"{addr}:{port} ({_first_line(exc)})"
            ) from None
        _JOINED = dist.PrefixStore("rnnkit/health", store)
        atexit.register(_leave)
        return cls(rank, world, _JOINED)

    # -- setting up -------------------------------------------------------------------------
    def attach(self, model: Module) -> None:
        """Move the gradients into buckets, give every rank rank 0's weights, and give each
        rank its own dropout draws (its generators jumped ``rank`` times)."""
        self.buckets = GradientBuckets(model)
        self.stats.bytes_per_step = self.buckets.nbytes + 5 * 8
        self.stats.messages_per_step = len(self.buckets.flats) + 1
        self.broadcast_arrays(list(model.named_parameters().values()))
        self.jump_generators(model)

    def jump_generators(self, model: Module) -> None:
        for gen in model.generators().values():
            bits = gen.bit_generator
            if self.rank and hasattr(bits, "jumped"):
                bits.state = bits.jumped(self.rank).state

    # -- the collectives --------------------------------------------------------------------
    def reduce_step(
        self,
        step: int,
        loss: float,
        n: int,
        stop: bool,
        elapsed: float,
        weight: float | None = None,
    ) -> tuple[float, int, bool, float]:
        """The gradients of the whole global batch on every rank, from each rank's gradients
        of its mean loss over ``weight`` (default ``n``, its units); returns the global mean
        loss, the global ``n``, whether any rank was asked to stop, and the ranks' mean
        clock."""
        import torch
        import torch.distributed as dist

        assert self.buckets is not None, "Distributed.attach(model) first"
        t0 = time.perf_counter()
        w = float(n if weight is None else weight)
        for flat in self.buckets.flats:
            flat *= w
        numbers = np.array([loss * w if w else 0.0, w, n, float(stop), elapsed])
        tensors = [torch.from_numpy(numbers)] + [torch.from_numpy(f) for f in self.buckets.flats]
        try:
            works = [dist.all_reduce(t, op=dist.ReduceOp.SUM, async_op=True) for t in tensors]
            for work in works:
                work.wait()
        except RuntimeError as exc:
            self.fail(exc, step)
        total = numbers[1]  # the weights; numbers[2]: the units
        if total > 0:
            for flat in self.buckets.flats:
                flat *= 1.0 / total
        seconds = time.perf_counter() - t0
        self.stats.seconds += seconds
        self.stats.steps += 1
        self.stats.step_seconds.append(seconds)
        mean_loss = numbers[0] / total if total > 0 else math.nan
        units = int(round(numbers[2]))
        return float(mean_loss), units, bool(numbers[3] > 0), float(numbers[4]) / self.world

    def broadcast_values(self, values: list[float], step: int) -> list[float]:
        """Rank 0's ``values`` on every rank (its validation loss, its clock)."""
        import torch

        data = np.array(values, dtype=np.float64)
        self._collective("broadcast", [torch.from_numpy(data)], step)
        return [float(v) for v in data]

    def broadcast_arrays(self, arrays: list[np.ndarray], step: int = 0) -> None:
        """Rank 0's arrays copied into every rank's, in place (packed into one message)."""
        import torch

        if not arrays:
            return
        dtype = np.result_type(*arrays)
        flat = np.concatenate([a.reshape(-1).astype(dtype) for a in arrays])
        self._collective("broadcast", [torch.from_numpy(flat)], step)
        offset = 0
        for a in arrays:
            a[...] = flat[offset : offset + a.size].reshape(a.shape)
            offset += a.size

    def gather_rows(
        self, arrays: dict[str, np.ndarray], axis: int, step: int
    ) -> dict[str, np.ndarray]:
        """Every rank's ``arrays`` (the same keys and shapes on every rank) joined along
        ``axis`` in rank order: the carried state of the whole batch."""
        import torch
        import torch.distributed as dist

        keys = sorted(arrays)
        present = self.broadcast_values([float(len(keys))], step)[0]
        if present != len(keys):  # rank 0 carries nothing (a new pass starts) while others do
            return {}
        out = {}
        for key in keys:
            local = np.ascontiguousarray(arrays[key])
            parts = [np.empty_like(local) for _ in range(self.world)]
            try:
                dist.all_gather([torch.from_numpy(p) for p in parts], torch.from_numpy(local))
            except RuntimeError as exc:
                self.fail(exc, step)
            out[key] = np.concatenate(parts, axis=axis)
        return out

    def _collective(self, name: str, tensors: list[Any], step: int) -> None:
        import torch.distributed as dist

        try:
            for t in tensors:
                if name == "broadcast":
                    dist.broadcast(t, src=0)
                else:
                    dist.all_reduce(t)
        except RuntimeError as exc:
            self.fail(exc, step)

    # -- a rank lost ------------------------------------------------------------------------
    def missing_ranks(self, step: int) -> list[int] | None:
        """The ranks that did not report themselves alive within `GRACE_SECONDS` of a broken
        collective, through the rendezvous store; None when the store is gone too."""
        if self._store is None:
            return None
        try:
            self._store.set(f"alive/{step}/{self.rank}", "1")
            deadline = time.monotonic() + GRACE_SECONDS
            while True:
                alive = [self._store.check([f"alive/{step}/{r}"]) for r in range(self.world)]
                if all(alive) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        except RuntimeError:
            return None
        return [r for r in range(self.world) if not alive[r]]

    def fail(self, exc: BaseException, step: int) -> None:
        """Raise the one-line `DistributedError` for a collective that broke at ``step``."""
        missing = self.missing_ranks(step)
        if missing is None:
            agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
            who = "a rank" if agent else "rank 0 (which holds the group's store)"
        elif missing:
            who = ("rank " if len(missing) == 1 else "ranks ") + ", ".join(map(str, missing))
        else:
            who = "a rank"
        raise DistributedError(
            f"distributed training: {who} of {self.world} stopped during step {step + 1}; "
            f"rank {self.rank} stops too ({_first_line(exc)}); resume from the last "
            "checkpoint with --resume"
        ) from None

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            try:
                dist.destroy_process_group()
            except RuntimeError:
                pass


def _leave() -> None:
    """At exit: the process group destroyed (its gloo threads joined) and the store dropped
    while the interpreter still runs; left to the C++ destructors, a rank could end with
    "terminate called without an active exception" (SIGABRT) after a run that went well."""
    global _JOINED
    _JOINED = None
    import torch.distributed as dist

    if dist.is_initialized():
        try:
            dist.destroy_process_group()
        except RuntimeError:
            pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


# -- starting a run on one machine ----------------------------------------------------------
def launch(nproc: int, argv: list[str]) -> int:
    """Run ``rnnkit <argv>`` as ``nproc`` processes on this machine through ``torchrun``
    (``torch.distributed.run``, in this process, with this interpreter): a rendezvous on a free
    loopback port, ``RNNKIT_NUM_THREADS`` and ``OMP_NUM_THREADS`` set to the cores over
    ``nproc`` unless set. Returns the exit status: 0, or the failed rank's (1 for a signal),
    after one line naming the rank that failed first."""
    try:
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
        from torch.distributed.run import parse_args, run
    except ImportError:
        raise InputError("--nproc needs torch: pip install 'rnnkit[distributed]'") from None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = str(max(1, (cores or 1) // nproc))
    for key in ("RNNKIT_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(key, threads)
    args = parse_args(
        [
            "--standalone",
            f"--nproc-per-node={nproc}",
            "--max-restarts=0",
            "--monitor-interval=0.2",
            "--module",
            "rnnkit.cli",
            *argv,
        ]
    )
    try:
        run(args)
    except ChildFailedError as exc:
        rank, failure = _root_cause(exc.failures)
        if failure.exitcode < 0:
            how, status = f"was killed by {failure.signal_name()}", 1
        else:
            how, status = f"exited with status {failure.exitcode}", failure.exitcode
        print(
            f"rnnkit: error: --nproc {nproc}: rank {rank} (pid {failure.pid}) {how}; the other "
            "ranks were stopped; resume from the last checkpoint with --resume",
            file=sys.stderr,
            flush=True,
        )
        return status
    return 0


def _root_cause(failures: dict[int, Any]) -> tuple[int, Any]:
    """The rank that failed first: one killed by a signal before one that exited on its own
    (a survivor reports the lost rank and exits; torchrun stops the rest with SIGTERM)."""
    killed = sorted(r for r, f in failures.items() if f.exitcode < 0 and f.exitcode != -15)
    if killed:
        return killed[0], failures[killed[0]]
    rank = min(failures, key=lambda r: (failures[r].timestamp, r))
    return rank, failures[rank]
