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


Kind = Callable[[str], Any] | tuple[str, ...] | None  # a type, the choices, or FLAG
FLAG = None  # on with --X, off with --no-X
# (option, parameter, kind, a test of a value given, what is expected, help before the default)
_OPTIONS: tuple[tuple[str, str, Kind, Callable[[Any], bool] | None, str, str], ...] = (
    ("--members", "members", int, lambda v: v >= 1, "a positive count", "GRUs in the ensemble"),
    (
        "--hidden",
        "hidden_size",
        int,
        lambda v: v >= 1,
        "a positive size",
        "hidden units of each GRU",
    ),
    (
        "--steps",
        "steps",
        int,
        lambda v: v >= 1,
        "a positive count",
        "training steps of the network on the probationary values",
    ),
    (
        "--surprise",
        "surprise",
        ("members", "mixture"),
        None,
        "",
        "the raw surprise: the mean of each member's own (members) or that under the members' "
        "mixture (mixture)",
    ),
    (
        "--network-weight",
        "network_weight",
        float,
        lambda v: 0 < v <= 1,
        "a weight in (0, 1]",
        "the weight of the network's part of the score",
    ),
    (
        "--season",
        "season",
        _season,
        lambda v: v == "auto" or v >= 0,
        "'auto' or a period of 0 rows or more",
        "the period of the seasonal difference in rows: auto (found in the probationary values) "
        "or a number (0: none)",
    ),
    (
        "--season-rise",
        "season_rise",
        FLAG,
        None,
        "",
        "with --season auto, a period's autocorrelation peak must stand 2/sqrt(n) above the "
        "lags before it",
    ),
    (
        "--transform",
        "transform",
        ("auto", "none"),
        None,
        "",
        "auto: the network reads log(1 + x) for a non-negative series that fits that scale "
        "better; none: the values as they are",
    ),
    ("--level", "level", FLAG, None, "", "the recent level: each value against the last ones'"),
    (
        "--level-log",
        "level_log",
        FLAG,
        None,
        "",
        "the recent level on the log scale too, when the network reads log(1 + x)",
    ),
    (
        "--range-check",
        "range_check",
        _off_or(float),
        lambda v: v >= 0,
        "0 or more, or off",
        "a value beyond the range so far by more than this share of it scores 1 (off: never)",
    ),
    (
        "--alarm",
        "alarm",
        _off_or(float),
        lambda v: 0 < v <= 1,
        "a score in (0, 1], or off",
        "a score at least this high halves the next --rest scores (off: never)",
    ),
    (
        "--rest",
        "rest",
        int,
        lambda v: v >= 0,
        "0 rows or more",
        "rows whose scores are halved after an alarm",
    ),
    (
        "--familiar",
        "familiar",
        _off_or(float),
        lambda v: v > 0,
        "a positive share of the range, or off",
        "an alarm at a spike within this share of the range of one alarmed before is halved "
        "(off: never)",
    ),
    (
        "--familiar-jump",
        "familiar_jump",
        float,
        lambda v: v > 0,
        "a positive share of the range",
        "with --familiar, a spike is a jump of at least this share of the range so far",
    ),
    (
        "--echo",
        "echo",
        _off_or(float),
        lambda v: v > 0,
        "a positive number of standard deviations, or off",
        "the network's alarm at a value within half this many standard deviations of the recent "
        "mean, just after one at least this many away, is halved as the outlier's echo (off: "
        "never)",
    ),
    (
        "--resolution",
        "resolution",
        _off_or(float),
        lambda v: v > 0,
        "a positive share of the range, or off",
        "the recent levels' alarm at a value within this share of the range so far of their "
        "window's mean is halved (off: never)",
    ),
    (
        "--network-resolution",
        "network_resolution",
        _off_or(float),
        lambda v: v > 0,
        "a positive share of the range, or off",
        "the same for the network's alarm (off: never)",
    ),
    (
        "--short-window",
        "short_window",
        int,
        lambda v: v >= 1,
        "a positive row count",
        "the likelihood's short window of surprises",
    ),
    (
        "--long-window",
        "long_window",
        int,
        lambda v: v >= 1,
        "a positive row count",
        "the likelihood's long window, the stream's own history of surprises",
    ),
    (
        "--learn-steps",
        "learn_steps",
        int,
        lambda v: v >= 1,
        "a positive count",
        "with --learn-every: AdamW steps of each update",
    ),
    (
        "--learn-lr",
        "learn_lr",
        float,
        lambda v: v > 0,
        "a positive learning rate",
        "with --learn-every: the learning rate of the updates",
    ),
)


def _shown(value: Any) -> str:
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def add_detector_arguments(p: Any) -> None:
    """The options of `AnomalyDetector`'s parameters, in a group of their own."""
    group = p.add_argument_group("detector", "AnomalyDetector's parameters (README)")
    for option, name, kind, _, _, text in _OPTIONS:
        default = _DEFAULTS[name]
        shown = "a quarter of --probation" if name == "rest" else _shown(default)
        kwargs: dict[str, Any] = {"dest": name, "default": default}
        if kind is FLAG:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(kind, tuple):
            kwargs["choices"] = kind
            kwargs["default"] = "none" if default is None else default
        else:
            kwargs["type"] = kind
        group.add_argument(option, help=f"{text} (default: {shown})", **kwargs)


def detector_params(args: Any) -> dict[str, Any]:
    """The parameters the options give, checked: a one-line `InputError` naming the option and
    what was expected."""
    params: dict[str, Any] = {}
    for option, name, _, ok, expected, _ in _OPTIONS:
        value = getattr(args, name)
        if name == "transform" and value == "none":
            value = None
        if ok is not None and value is not None and not ok(value):
            raise InputError(f"{option}: expected {expected}, got {_shown(value)}")
        params[name] = value
    return params
