"""The README's example runs, and the public surface is what the README documents."""

from __future__ import annotations

import re
from pathlib import Path

import rnnkit

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_examples_run(tmp_path, monkeypatch):
    blocks = _python_blocks(README.read_text())
    assert blocks, "the README has no python example"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        code = block.replace("/tmp/", f"{tmp_path}/")
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})


def test_public_names_are_documented_in_the_readme():
    text = README.read_text()
    undocumented = [
        name
        for name in rnnkit.__all__
        if not name.startswith("_")
        and not name.endswith("Error")
        and f"`{name}" not in text
        and f"{name}(" not in text
        and f"`{name}`" not in text
    ]
    assert undocumented == []


def test_all_names_exist():
    for name in rnnkit.__all__:
        assert hasattr(rnnkit, name), name
