"""Shared fixtures."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from rnnkit.tuning import Tuning, using


@pytest.fixture
def tuned() -> Iterator[Callable[..., Tuning]]:
    """``tuned(**changes)``: the engine's `Tuning` with ``changes`` for the rest of the test
    (threads, thresholds, switches), the way a test asks the planner for a path."""
    with contextlib.ExitStack() as stack:
        yield lambda **changes: stack.enter_context(using(**changes))
