"""Options defined once: the argparse options generated from a config dataclass, and back."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

from rnnkit.cli import build_parser
from rnnkit.config import (
    add_options,
    default_text,
    from_args,
    option,
    positive_int,
    probability,
)
from rnnkit.serve.config import ServeConfig
from rnnkit.tasks.adding import AddingConfig
from rnnkit.tasks.lm import LMRunConfig, SampleConfig


@dataclass(frozen=True)
class Toy:
    size: int = option(8, help="a size", type=positive_int)
    rate: float = option(0.5, help="a rate in 10 % steps", type=probability)
    name: str = option("a", help="a name", choices=("a", "b"))
    limit: int | None = option(None, help="a limit", default_help="no limit")
    scale: float | None = option(None, help="a scale")
    shout: bool = option(False, help="say it louder")
    quiet: bool = option(True, help="say less")
    count: int = option(3, help="how many", flag="--n")
    hidden: int = 4  # not an option: no metadata


class _Parser:
    """argparse's exit on a bad value, caught to look at its message."""

    @staticmethod
    def make():
        import argparse

        class P(argparse.ArgumentParser):
            def error(self, message):
                raise ValueError(message)

        p = P(prog="toy")
        add_options(p, Toy)
        return p


def test_options_parse_into_the_dataclass_with_their_types():
    p = _Parser.make()
    cfg = from_args(Toy, p.parse_args([]))
    assert cfg == Toy()
    cfg = from_args(
        Toy,
        p.parse_args(
            ["--size", "16", "--rate", "0.25", "--name", "b", "--limit", "7", "--scale", "1e-3"]
            + ["--shout", "--no-quiet", "--n", "5"]
        ),
    )
    assert cfg == Toy(16, 0.25, "b", 7, 1e-3, True, False, 5)
    assert type(cfg.size) is int and type(cfg.limit) is int and type(cfg.scale) is float
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.size = 3  # type: ignore[misc]


def test_from_args_takes_overrides_and_another_config():
    cfg = from_args(Toy, Toy(size=2), count=9)
    assert (cfg.size, cfg.count, cfg.limit) == (2, 9, None)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--size", "0"], "argument --size: expected a positive integer, got '0'"),
        (["--size", "x"], "argument --size: expected a positive integer, got 'x'"),
        (["--rate", "1.5"], "argument --rate: expected a probability in [0, 1), got '1.5'"),
        (["--limit", "many"], "argument --limit: expected an integer, got 'many'"),
        (["--scale", "big"], "argument --scale: expected a number, got 'big'"),
        (["--name", "c"], "argument --name: invalid choice: 'c' (choose from 'a', 'b')"),
        (["--count", "1"], "unrecognized arguments: --count 1"),
        (["--hidden", "1"], "unrecognized arguments: --hidden 1"),
    ],
)
def test_bad_values_name_the_option_and_what_was_expected(args, message):
    with pytest.raises(ValueError) as info:
        _Parser.make().parse_args(args)
    assert str(info.value).replace('"', "'").startswith(message.split(" (choose")[0])


def _help_entries(help_text: str) -> dict[str, str]:
    """``--help`` output as {option: its help text on one line}."""
    entries: dict[str, str] = {}
    current = None
    for line in help_text.splitlines():
        m = re.match(r"^  (-[-\w]+)", line)
        if m:
            current = m.group(1)
            entries[current] = line
        elif current is not None and line.startswith("   "):
            entries[current] += " " + line.strip()
        else:
            current = None
    return {k: " ".join(v.split()) for k, v in entries.items()}


def test_toy_help_shows_every_default():
    entries = _help_entries(_Parser.make().format_help())
    assert "(default: 8)" in entries["--size"]
    assert "in 10 % steps (default: 0.5)" in entries["--rate"]
    assert "(default: no limit)" in entries["--limit"]
    assert "(default: none)" in entries["--scale"]
    assert (
        entries["--shout"].startswith("--shout, --no-shout")
        and "(default: False)" in (entries["--shout"])
    )
    assert entries["--shout"].count("(default:") == 1
    assert "(default: True)" in entries["--quiet"]
    assert "(default: 3)" in entries["--n"]
    assert "--hidden" not in entries
    lm = {f.name: default_text(f) for f in dataclasses.fields(LMRunConfig)}
    assert (lm["hidden"], lm["lr"], lm["steps"], lm["out"]) == (
        "512",
        "0.003",
        "none",
        ("runs/lm.safetensors"),
    )


@pytest.mark.parametrize(
    "argv, cls",
    [
        (["train", "lm", "--help"], LMRunConfig),
        (["demo", "--help"], AddingConfig),
        (["generate", "--help"], SampleConfig),
        (["stream", "--help"], None),  # options of the serving process, none of them config
        (["serve", "--help"], ServeConfig),
    ],
)
def test_help_shows_every_field_of_the_run_config_with_its_default(argv, cls):
    proc = subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, "COLUMNS": "100"},
    )
    assert proc.returncode == 0, proc.stderr
    entries = _help_entries(proc.stdout)
    for f in dataclasses.fields(cls) if cls is not None else ():
        flag = {"warmup_steps": "--warmup"}.get(f.name, "--" + f.name.replace("_", "-"))
        assert flag in entries, f"{f.name}: no {flag} in --help"
        shown = re.search(r"\(default: ([^)]*(\([^)]*\))?[^)]*)\)", entries[flag])
        assert shown, f"{flag} shows no default: {entries[flag]!r}"
        if f.name != "cell":  # the demo's own --cell: all three cells, or one
            assert shown.group(1) == default_text(f), (flag, shown.group(1))
    for entry in _help_entries(proc.stdout).values():  # the hand-written ones too
        assert entry.startswith("-h") or "(default: " in entry, entry


def test_train_lm_options_keep_their_names_and_defaults():
    args = build_parser().parse_args(["train", "lm"])
    assert from_args(LMRunConfig, args) == LMRunConfig()
    assert (args.resume, args.sample, args.json) == (False, 400, False)
    args = build_parser().parse_args(
        ["train", "lm", "--warmup", "7", "--tie-weights", "--vocab-size", "99", "--steps", "5"]
    )
    cfg = from_args(LMRunConfig, args)
    assert (cfg.warmup_steps, cfg.tie_weights, cfg.vocab_size, cfg.steps) == (7, True, 99, 5)
