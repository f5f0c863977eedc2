"""`rnnkit.explain`: which execution path a model takes for an input, and why.

    >>> import numpy as np, rnnkit
    >>> lstm = rnnkit.LSTM(8, 128)
    >>> print(rnnkit.explain(lstm, np.zeros((100, 1, 8), np.float32)))   # doctest: +SKIP
    LSTM, infer, input (100, 1, 8) float32: single-pair (2 cores): one sequence, inference; ...

The answer comes from the planner (`rnnkit.engine.plan`), the same call the model makes when it
runs, so it cannot disagree with what runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .engine.plan import Plan
from .errors import InputError
from .layers.recurrent import Recurrent
from .stream.steps import build_plan, hook_of

MODES = ("infer", "train", "stream")


@dataclass(frozen=True)
class Explanation:
    """The plan of one call: the model, the mode, the input's shape and dtype, and the plan."""

    model: str
    mode: str
    shape: tuple[int, ...]
    dtype: str
    plan: Plan

    @property
    def path(self) -> str:
        return self.plan.path

    def __str__(self) -> str:
        return f"{self.model}, {self.mode}, input {self.shape} {self.dtype}: {self.plan}"


def explain(model: Any, x: Any, mode: str = "infer", lengths: Any = None) -> Explanation:
    """The path ``model`` takes for input ``x``: ``mode`` is ``infer`` (``model(x)``), ``train``
    (``model.forward_train(x)``) or ``stream`` (``Stream(model).step(x)``: ``x`` is one step,
    of one stream or of a batch of streams)."""
    name = type(model).__name__
    if mode not in MODES:
        raise InputError(f"explain: mode must be one of {MODES}, got {mode!r}")
    arr = np.asarray(x)
    if mode == "stream":
        return Explanation(name, mode, arr.shape, str(arr.dtype), _stream_plan(model, arr))
    hook = hook_of(model)
    core = hook.core if hook is not None else None
    if not isinstance(core, Recurrent):
        raise InputError(f"explain: {name} has no recurrent stack the planner knows")
    if core is model:
        xt, _, _, _ = model._prepare(x, None, lengths)  # validated, time-major (T, B, F)
    else:  # the model's own input (token ids, say): the stack sees (T, B, its features)
        lead = arr.shape[:2] if arr.ndim >= 2 else (arr.shape[0], 1)
        xt = np.empty((*lead, core.input_size), core.dtype)
    plan = core.plan(xt, mode == "train")
    return Explanation(name, mode, arr.shape, str(arr.dtype), plan)


def _stream_plan(model: Any, x: np.ndarray) -> Plan:
    plan = build_plan(model)
    if plan is None:
        why = "bidirectional" if getattr(model, "bidirectional", False) else "no step plan"
        return Plan("general", 1, lambda: (f"{why}: one step through the sequence forward",))
    one = x.ndim == (0 if getattr(model, "takes_ids", False) else 1)
    return plan.plan(None if one else int(x.shape[0]))
