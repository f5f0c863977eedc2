"""The execution planner: which path runs a recurrent layer, decided in one place.

Given the cell, the dtype, the shapes, the mode (train, infer or stream), the weights' format and
the cores at hand, `plan_sequence` and `plan_stream` return a `Plan`: a value that names the path
and says why, so that the choice can be printed (`rnnkit.explain`) and tested. Every threshold
comes from the one `Tuning` object (`rnnkit.tuning`); nothing else in the engine chooses
a path. `docs/ENGINE.md` lists the paths, with the benchmark lines that justify each.

The paths of a sequence (a layer's forward, and its backward, which follows its forward):

* ``reference``: the cells' NumPy step functions, one step at a time (the specification).
* ``quantized``: the same step loop over int8 or bfloat16 weights, their products on the compact
  weights up to `Tuning.quant_small_batch` rows, else on weights widened once per call.
* ``batch``: the compiled time loop (`kernels.loops`), the batch cut into one chunk of rows per
  core; its products read packed panels (`kernels.tile`) from four rows up.
* ``single``: one sequence's inference, the whole time loop one compiled call
  (`kernels.step.sequence`), one core.
* ``single-pair``: the same on two cores, each half the hidden units, meeting at every step.

The paths of a stream step (one input of one stream, or one of each of a batch of streams):

* ``stream``: per layer, one compiled call doing both products and the gates
  (`kernels.step`), from the weights as stored (float, int8, bfloat16).
* ``stream-split``: the same, with the two products split between the cores (large layers).
* ``stream-batch``: a step of B streams: one BLAS product per matrix and the batch loop's gates.
* ``general``: the sequence path over one step (bidirectional models cannot stream; models
  without a step plan).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numba
import numpy as np

from ..cells import CellSpec
from ..kernels import loops as kl
from ..kernels import tile as kt
from ..threads import row_chunks, side_by_side
from ..tuning import current

SEQUENCE_PATHS = ("reference", "quantized", "batch", "single", "single-pair")
STREAM_PATHS = ("stream", "stream-split", "stream-batch", "general")


class Plan(NamedTuple):
    """The path chosen for one call, the cores it runs on, and why: one clause per decision,
    written only when asked (``why``), since a plan is made at every call and most are never
    printed (a named tuple: made in a fraction of a frozen dataclass's microseconds)."""

    path: str
    cores: int
    reasons: Callable[[], tuple[str, ...]]
    panels: bool = False  # single sequences: the products read packed panels
    widened: bool = False  # quantized: the recurrent weight widened once for the whole call

    @property
    def why(self) -> tuple[str, ...]:
        return self.reasons()

    def __str__(self) -> str:
        cores = "1 core" if self.cores == 1 else f"{self.cores} cores"
        return f"{self.path} ({cores}): " + "; ".join(self.why)


def weight_format(W: object, dtype: np.dtype) -> str:
    """``float`` (an array of the layer's dtype), ``int8`` or ``bfloat16`` (`rnnkit.quantize`),
    or ``other``."""
    if type(W) is np.ndarray:
        return "float" if W.dtype == dtype else "other"
    kind = getattr(W, "kind", None)
    return kind if kind in ("int8", "bfloat16") else "other"


def plan_sequence(cell: CellSpec, x: np.ndarray, W_hh: object, train: bool) -> Plan:
    """The path of one direction of one layer over ``x`` (T, B, F) with recurrent weight
    ``W_hh``; ``train`` keeps what the backward needs."""
    tuning = current()
    T, B, _ = x.shape
    dtype = x.dtype
    fmt = weight_format(W_hh, dtype)
    if tuning.kernels == "reference":
        return Plan("reference", 1, lambda: ("RNNKIT_KERNELS=reference",))
    if fmt in ("int8", "bfloat16"):
        small = B <= tuning.quant_small_batch
        how = "compact weights" if small else "weights widened once per call"
        return Plan(
            "quantized", 1, lambda: (f"{fmt} weights", f"{B} rows: {how}"), widened=not small
        )
    if fmt != "float" or dtype not in (np.float32, np.float64):
        return Plan("reference", 1, lambda: (f"no kernels for {dtype} with these weights",))
    if B == 1 and not train and tuning.single_sequence:
        return _plan_single(cell, T, np.asarray(W_hh), dtype)
    cores = len(row_chunks(B, kl.MIN_ROWS))

    def why() -> tuple[str, ...]:
        out = ["training: the loop keeps the gates" if train else f"inference of {B} sequences"]
        if B == 1 and not train:
            out.append("single_sequence off")
        out.append(f"{cores} chunk(s) of rows")
        out.append("products on packed panels" if B >= kt.ROWS else "products row by row")
        return tuple(out)

    return Plan("batch", cores, why)


def _plan_single(cell: CellSpec, T: int, W_hh: np.ndarray, dtype: np.dtype) -> Plan:
    tuning = current()
    GH, H = W_hh.shape
    macs = GH * H
    pair = macs >= tuning.pair_macs and side_by_side(2) and numba.get_num_threads() >= 2
    width = kt.panel_width(dtype)
    whole = H % (2 * width if pair else width) == 0
    long_enough = T >= max(tuning.panel_steps, kt.ROWS)
    panels = whole and long_enough

    def why() -> tuple[str, ...]:
        out = ["one sequence, inference"]
        if pair:
            out.append(f"{macs:,} multiply-adds a step >= pair_macs {tuning.pair_macs:,}")
        elif macs < tuning.pair_macs:
            out.append(f"{macs:,} multiply-adds a step < pair_macs {tuning.pair_macs:,}")
        else:
            out.append("the second core is not free")
        if panels:
            out.append(f"packed panels ({T} steps >= panel_steps {tuning.panel_steps})")
        elif not whole:
            out.append(f"rows of W_hh (panels of {width} do not divide the units)")
        else:
            out.append(f"rows of W_hh ({T} steps < panel_steps {tuning.panel_steps})")
        return tuple(out)

    return Plan("single-pair" if pair else "single", 2 if pair else 1, why, panels)


def split_stream_layer(W_ih: np.ndarray, W_hh: np.ndarray, paced: bool = False) -> bool:
    """Whether one layer's stream step shares its two products between the cores: from
    `Tuning.split_macs` multiply-adds or `Tuning.split_bytes` of weights (float or int8; never
    bfloat16, whose widening is the bound). Never for a ``paced`` stream, whose inputs arrive
    at the pace of the world (live audio every 10 ms): between steps the second core's thread
    falls asleep, and waking it took 10-15 ms of some steps where the step itself takes 0.2-0.8
    ms (a GRU 256 transcriber, AMD EPYC, 2026-12-04)."""
    if paced:
        return False
    tuning = current()
    macs = W_ih.shape[0] * (W_ih.shape[1] + W_hh.shape[1])
    large = macs >= tuning.split_macs or W_ih.nbytes + W_hh.nbytes >= tuning.split_bytes
    return large and W_ih.dtype != np.uint16


def plan_stream(
    splits: list[bool], formats: list[str], batch: int | None = None, paced: bool = False
) -> Plan:
    """The stream path of a stack whose layers split as ``splits`` (`split_stream_layer`) with
    weights of ``formats``; ``batch`` streams stepped at once (None: one); ``paced``: inputs
    that arrive at the pace of the world, never split."""
    if batch is not None:
        if any(f != "float" for f in formats):
            return Plan("general", 1, lambda: (f"{batch} streams with {formats[0]} weights",))
        return Plan("stream-batch", 1, lambda: (f"{batch} streams: one product per matrix",))
    fmt = ", ".join(sorted(set(formats)))
    if any(splits):
        which = [k for k, s in enumerate(splits) if s]
        return Plan("stream-split", 2, lambda: (f"{fmt} weights", f"layers {which} split"))
    if paced:
        return Plan("stream", 1, lambda: (f"{fmt} weights", "paced: every layer on one core"))
    return Plan("stream", 1, lambda: (f"{fmt} weights", "every layer on one core"))
