"""Options defined once: frozen dataclasses whose fields carry their help text, and the
command-line options generated from them.

    @dataclass(frozen=True)
    class RunConfig:
        cell: str = option("lstm", help="recurrent cell", choices=("lstm", "gru", "rnn"))
        hidden: int = option(512, help="hidden size", type=positive_int)
        steps: int | None = option(None, help="budget in optimizer steps", default_help="none")
        tie_weights: bool = option(False, help="share the embedding and output weights")

    add_options(parser, RunConfig)   # --cell, --hidden, --steps, --tie-weights/--no-tie-weights
    cfg = from_args(RunConfig, parser.parse_args())

Every generated option shows its default, ``(default: 512)``; the type comes from the
annotation (``int``, ``float``, ``str``, ``bool``, and ``X | None``) unless ``type`` names a
stricter parser such as `positive_int`. A bad value ends with argparse's one-line error naming
the option and what was expected: ``argument --hidden: expected a positive integer, got '0'``.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "add_options",
    "default_text",
    "flag_of",
    "from_args",
    "integer",
    "nonneg_float",
    "nonneg_int",
    "number",
    "option",
    "positive_float",
    "positive_int",
    "probability",
]

_KEY = "rnnkit.option"  # the key of a field's metadata that `option` fills


def option(
    default: Any,
    *,
    help: str,
    choices: Sequence[Any] | None = None,
    metavar: str | None = None,
    flag: str | None = None,
    type: Callable[[str], Any] | None = None,
    default_help: str | None = None,
) -> Any:
    """A dataclass field with a default and what a command line needs to offer it.

    ``help`` is plain text (a ``%`` needs no escaping); ``flag`` replaces the option name
    made from the field's (``vocab_size`` -> ``--vocab-size``); ``type`` parses the text
    instead of the annotation's type; ``default_help`` says in words what the default means
    (for ``None``, say) and is shown instead of the value.
    """
    spec = {
        "help": help,
        "choices": tuple(choices) if choices is not None else None,
        "metavar": metavar,
        "flag": flag,
        "type": type,
        "default_help": default_help,
    }
    return dataclasses.field(default=default, metadata={_KEY: spec})


# -- parsers of option values: each says what it expected and what came ------------------------
def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def nonneg_float(text: str) -> float:
    value = number(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = nonneg_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def probability(text: str) -> float:
    value = nonneg_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1), got {text!r}")
    return value


_PARSERS: dict[Any, Callable[[str], Any]] = {int: integer, float: number, str: str}


# -- generating the options ----------------------------------------------------------------------
class _BooleanOption(argparse.BooleanOptionalAction):
    """``--x/--no-x`` with the help text as given (some Pythons append the default again)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        help = kwargs.get("help")
        super().__init__(*args, **kwargs)
        self.help = help


def flag_of(f: dataclasses.Field) -> str:
    """The option name of a field: its ``flag``, else ``--`` and the name with dashes."""
    spec = f.metadata.get(_KEY) or {}
    return spec.get("flag") or "--" + f.name.replace("_", "-")


def default_text(f: dataclasses.Field) -> str:
    """How ``--help`` shows a field's default."""
    spec = f.metadata.get(_KEY) or {}
    if spec.get("default_help") is not None:
        return spec["default_help"]
    return "none" if f.default is None else str(f.default)


def add_options(parser: argparse.ArgumentParser, cls: type, exclude: Sequence[str] = ()) -> None:
    """Add one option for each field of the dataclass ``cls`` declared with `option`, in
    field order, except those named in ``exclude``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(_KEY)
        if spec is None or f.name in exclude:
            continue
        flag = flag_of(f)
        help = f"{spec['help']} (default: {default_text(f)})".replace("%", "%%")
        kind = _base_type(hints[f.name], cls, f.name)
        if kind is bool:
            parser.add_argument(
                flag, dest=f.name, action=_BooleanOption, default=f.default, help=help
            )
            continue
        parser.add_argument(
            flag,
            dest=f.name,
            type=spec["type"] or _PARSERS[kind],
            default=f.default,
            choices=spec["choices"],
            metavar=spec["metavar"] or (None if spec["choices"] else _metavar(flag)),
            help=help,
        )


def from_args(cls: type, namespace: Any, **overrides: Any) -> Any:
    """The dataclass ``cls`` from the attributes of ``namespace`` named after its fields (an
    ``argparse.Namespace``, or another config); a field it lacks keeps its default, and
    ``overrides`` win over both."""
    values = {
        f.name: getattr(namespace, f.name)
        for f in dataclasses.fields(cls)
        if f.init and hasattr(namespace, f.name)
    }
    values.update(overrides)
    return cls(**values)


def _base_type(hint: Any, cls: type, name: str) -> Any:
    """``int`` for ``int`` and for ``int | None``; an error for what has no option type."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else None
    if hint is bool or hint in _PARSERS:
        return hint
    raise TypeError(f"add_options: {cls.__name__}.{name} has no option type: {hint!r}")


def _metavar(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_").upper()
