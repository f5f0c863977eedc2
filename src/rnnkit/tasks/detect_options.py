"""``rnnkit detect``'s options for `AnomalyDetector`'s parameters, and their checks.

Each option sets the parameter of the same name (``--hidden``: ``hidden_size``); its default is
the detector's own, read from `AnomalyDetector`'s signature, so the help text and the Python
class cannot disagree. The network's architecture and training beyond these (``cell``,
``num_layers``, ``lr``, ``chunk``, ``warmup``) stay Python parameters.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any

from ..errors import InputError
from ..estimators.anomaly import AnomalyDetector

_DEFAULTS = {name: p.default for name, p in inspect.signature(AnomalyDetector).parameters.items()}


def _off_or(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An option's type that also takes ``off`` (the parameter's None)."""

    def parse(text: str) -> Any:
        if text.strip().lower() in ("off", "none"):
            return None
        return kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its error
    return parse


def _season(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or a period in rows (0: none), got {text!r}"
        ) from None


# (option, parameter, a test of a value given, what is expected, help before the default)
_OPTIONS: tuple[tuple[str, str, Callable[[Any], bool] | None, str, str], ...] = (
    ("--members", "members", lambda v: v >= 1, "a positive count", "GRUs in the ensemble"),
    ("--hidden", "hidden_size", lambda v: v >= 1, "a positive size", "hidden units of each GRU"),
    (
        "--steps",
        "steps",
        lambda v: v >= 1,
        "a positive count",
        "training steps of the network on the probationary values",
    ),
    (
        "--surprise",
        "surprise",
        None,
        "",
        "the raw surprise: the mean of each member's own (members) or that under the members' "
        "mixture (mixture)",
    ),
    (
        "--network-weight",
        "network_weight",
        lambda v: 0 < v <= 1,
        "a weight in (0, 1]",
        "the weight of the network's part of the score",
    ),
    (
        "--season",
        "season",
        lambda v: v == "auto" or v >= 0,
        "'auto' or a period of 0 rows or more",
        "the period of the seasonal difference in rows: auto (found in the probationary values) "
        "or a number (0: none)",
    ),
    (
        "--season-rise",
        "season_rise",
        None,
        "",
        "with --season auto, a period's autocorrelation peak must stand 2/sqrt(n) above the "
        "lags before it",
    ),
    (
        "--transform",
        "transform",
        None,
        "",
        "auto: the network reads log(1 + x) for a non-negative series that fits that scale "
        "better; none: the values as they are",
    ),
    ("--level", "level", None, "", "the recent level: each value against the last ones'"),
    (
        "--level-log",
        "level_log",
        None,
        "",
        "the recent level on the log scale too, when the network reads log(1 + x)",
    ),
    (
        "--range-check",
        "range_check",
        lambda v: v >= 0,
        "0 or more, or off",
        "a value beyond the range so far by more than this share of it scores 1 (off: never)",
    ),
    (
        "--alarm",
        "alarm",
        lambda v: 0 < v <= 1,
        "a score in (0, 1], or off",
        "a score at least this high halves the next --rest scores (off: never)",
    ),
    (
        "--rest",
        "rest",
        lambda v: v >= 0,
        "0 rows or more",
        "rows whose scores are halved after an alarm",
    ),
    (
        "--short-window",
        "short_window",
        lambda v: v >= 1,
        "a positive row count",
        "the likelihood's short window of surprises",
    ),
    (
        "--long-window",
        "long_window",
        lambda v: v >= 1,
        "a positive row count",
        "the likelihood's long window, the stream's own history of surprises",
    ),
    (
        "--learn-steps",
        "learn_steps",
        lambda v: v >= 1,
        "a positive count",
        "with --learn-every: AdamW steps of each update",
    ),
    (
        "--learn-lr",
        "learn_lr",
        lambda v: v > 0,
        "a positive learning rate",
        "with --learn-every: the learning rate of the updates",
    ),
)

_TYPES: dict[str, Any] = {
    "members": int,
    "hidden_size": int,
    "steps": int,
    "network_weight": float,
    "season": _season,
    "range_check": _off_or(float),
    "alarm": _off_or(float),
    "rest": int,
    "short_window": int,
    "long_window": int,
    "learn_steps": int,
    "learn_lr": float,
}
_CHOICES = {"surprise": ("members", "mixture"), "transform": ("auto", "none")}
_FLAGS = ("season_rise", "level", "level_log")


def _shown(value: Any) -> str:
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def add_detector_arguments(p: Any) -> None:
    """The options of `AnomalyDetector`'s parameters, in a group of their own."""
    group = p.add_argument_group("detector", "AnomalyDetector's parameters (README)")
    for option, name, _, _, text in _OPTIONS:
        default = _DEFAULTS[name]
        shown = "a quarter of --probation" if name == "rest" else _shown(default)
        kwargs: dict[str, Any] = {"dest": name, "default": default}
        if name in _FLAGS:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif name in _CHOICES:
            kwargs["choices"] = _CHOICES[name]
            kwargs["default"] = "none" if default is None else default
        else:
            kwargs["type"] = _TYPES[name]
        group.add_argument(option, help=f"{text} (default: {shown})", **kwargs)


def detector_params(args: Any) -> dict[str, Any]:
    """The parameters the options give, checked: a one-line `InputError` naming the option and
    what was expected."""
    params: dict[str, Any] = {}
    for option, name, ok, expected, _ in _OPTIONS:
        value = getattr(args, name)
        if name == "transform" and value == "none":
            value = None
        if ok is not None and value is not None and not ok(value):
            raise InputError(f"{option}: expected {expected}, got {_shown(value)}")
        params[name] = value
    return params
