"""Issue 18's cases run against an rnnkit source tree: what each command does with bad input.

    python scripts/reliability_cases.py [SRC]      # SRC: a tree's src folder (default: ours)

Each case runs in a fresh folder as a user would type it (``python -m rnnkit.cli ...`` with
``PYTHONPATH=SRC``) and prints one Markdown row: the case, the exit status, the last line on
stderr (or what Python raised) and whether the files it must not touch came out unchanged.
Run it on the tree before a change and after it to get the before/after table of a closing
note; tests/test_reliability.py holds the same cases as assertions.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
TEXT *= 30
TINY = "--hidden 8 --layers 1 --embedding 4 --batch 2 --bptt 8 --eval-every 5 --sample 0".split()


def run(src: Path, args: list[str], cwd: Path, stdin: str = "") -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(src), OPENBLAS_THREAD_TIMEOUT="4")
    proc = subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )
    return proc.returncode, last_line(proc.stderr)


def last_line(err: str) -> str:
    """The last line rnnkit wrote as itself (an error, a warning), else the last line."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    own = [line for line in lines if line.startswith("rnnkit")]
    return (own or lines or [""])[-1]


def python(src: Path, code: str, cwd: Path) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(src), OPENBLAS_THREAD_TIMEOUT="4")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env
    )
    lines = [line for line in (proc.stderr + proc.stdout).strip().splitlines() if line.strip()]
    return proc.returncode, (lines[-1] if lines else "")


def train(*extra: str, out: str = "lm.safetensors") -> list[str]:
    return ["train", "lm", "--text", "t.txt", *TINY, "--out", out, *extra]


def replace(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag``'s value replaced, or the flag added."""
    if flag not in argv:
        return [*argv, flag, value]
    i = argv.index(flag)
    return [*argv[: i + 1], value, *argv[i + 2 :]]


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    n = int.from_bytes(data[:8], "little")
    data[8 + n + (len(data) - 8 - n) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def setup(src: Path, d: Path) -> None:
    (d / "t.txt").write_text(TEXT)
    (d / "notes.txt").write_text("my notes\n")
    (d / "sub").mkdir()
    python(
        src,
        "import numpy as np, rnnkit\n"
        "g = rnnkit.GRU(3, 4, seed=0); rnnkit.save(g, 'gru.safetensors')\n"
        "s = rnnkit.Stream(g); s.step(np.ones(3, np.float32)); s.save_state('gru.state')\n",
        d,
    )


def sigterm_stream(src: Path, d: Path) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(src), OPENBLAS_THREAD_TIMEOUT="4")
    state = d / "live.state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnkit.cli", "stream", "gru.safetensors", "--state", str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=d,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("1,2,3\n")
    proc.stdin.flush()
    proc.stdout.readline()  # the answer: the line was processed
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    last = err.strip().splitlines()[-1] if err.strip() else ""
    return proc.returncode, f"{last} | state file written: {state.exists()}"


def resume(first: list[str], second: list[str]):
    def case(src: Path, d: Path) -> tuple[int, str]:
        run(src, first, d)
        return run(src, second, d)

    return case


def cases() -> list[tuple[str, object, tuple[str, ...]]]:
    reverse = "import pathlib as p; p.Path('u.txt').write_text(p.Path('t.txt').read_text()[::-1])"
    truncate = (
        "import json, rnnkit\n"
        "from safetensors import safe_open\n"
        "from safetensors.numpy import save_file\n"
        "with safe_open('lm.safetensors', 'numpy') as f:\n"
        "    meta = dict(f.metadata()); t = {k: f.get_tensor(k) for k in f.keys()}\n"
        "extra = json.loads(meta['extra']); extra['vocab'] = extra['vocab'][:3]\n"
        "meta['extra'] = json.dumps(extra)\n"
        "try:\n    from rnnkit.files import digest; meta['checksum'] = digest(t, meta)\n"
        "except ImportError:\n    pass\n"
        "save_file(t, 'lm.safetensors', metadata=meta)\n"
    )
    future = truncate.replace(
        "extra = json.loads(meta['extra']); extra['vocab'] = extra['vocab'][:3]\n"
        "meta['extra'] = json.dumps(extra)\n",
        "meta['format_version'] = '99'\n",
    )
    steps6 = train("--steps", "6")

    def with_setup(code: str, then: list[str], first: list[str] | None = steps6):
        def case(src: Path, d: Path) -> tuple[int, str]:
            if first:
                run(src, first, d)
            python(src, code, d)
            return run(src, then, d)

        return case

    def flipped(name: str, then: list[str], first: list[str] | None = None):
        def case(src: Path, d: Path) -> tuple[int, str]:
            if first:
                run(src, first, d)
            flip(d / name)
            return run(src, then, d, stdin="1,2,3\n")

        return case

    gen = ["generate", "lm.safetensors", "--length", "5"]
    return [
        ("--out is the --text", train("--steps", "3", out="t.txt"), ("t.txt",)),
        ("--out is a file not rnnkit's", train("--steps", "3", out="notes.txt"), ("notes.txt",)),
        ("--out /sys/x.safetensors", train("--steps", "3", out="/sys/x.safetensors"), ()),
        ("--out is a folder", train("--steps", "3", out="sub"), ()),
        ("--out /proc/x/y.safetensors", train("--steps", "3", out="/proc/x/y.safetensors"), ()),
        (
            "stream --state /nodir/x.state",
            ["stream", "gru.safetensors", "--state", "/proc/nodir/x.state"],
            (),
        ),
        ("SIGTERM to rnnkit stream", sigterm_stream, ()),
        ("--lr 1e6 --steps 30", train("--steps", "30", "--lr", "1e6"), ()),
        (
            "--resume with another --text",
            with_setup(reverse, replace(train("--steps", "6", "--resume"), "--text", "u.txt")),
            (),
        ),
        (
            "--steps 20, then --resume --steps 40",
            resume(train("--steps", "20"), train("--steps", "40", "--resume")),
            (),
        ),
        (
            "--resume with another --batch",
            resume(steps6, replace(train("--steps", "6", "--resume"), "--batch", "3")),
            (),
        ),
        ("flipped byte in a checkpoint", flipped("lm.safetensors", gen, steps6), ()),
        (
            "flipped byte in a stream state",
            flipped("gru.state", ["stream", "gru.safetensors", "--state", "gru.state"]),
            (),
        ),
        ("checkpoint format_version 99", with_setup(future, gen), ()),
        (
            "--valid in another alphabet",
            with_setup(
                "open('greek.txt', 'w').write('αβγδ' * 99)",
                train("--steps", "3", "--valid", "greek.txt"),
                None,
            ),
            (),
        ),
        (
            "--prime the model never saw",
            with_setup("", ["generate", "lm.safetensors", "--prime", "ΩΨ", "--length", "5"]),
            (),
        ),
        ("--hidden 100000", replace(train("--steps", "3"), "--hidden", "100000"), ()),
        ("truncated vocabulary metadata", with_setup(truncate, gen), ()),
        ("--warmup -1", train("--steps", "3", "--warmup", "-1"), ()),
        ("--version", ["--version"], ()),
    ]


API = [
    ("from_torch(42)", "import rnnkit; rnnkit.from_torch(42)"),
    (
        "from_torch(bfloat16 GRU)",
        "import torch, rnnkit; m = rnnkit.from_torch(torch.nn.GRU(3, 4).to(torch.bfloat16));"
        "print('ok', type(m).__name__, m.dtype)",
    ),
    ("load(None)", "import rnnkit; rnnkit.load(None)"),
    ("save({}, path)", "import rnnkit; rnnkit.save({}, 'x.safetensors')"),
    (
        "export_onnx into a missing folder",
        "import rnnkit; rnnkit.export_onnx(rnnkit.GRU(3, 4), '/nodir/x.onnx')",
    ),
    ("export_onnx onto a folder", "import rnnkit; rnnkit.export_onnx(rnnkit.GRU(3, 4), 'sub')"),
    (
        "Stream.save_state into a missing folder",
        "import numpy as np, rnnkit; s = rnnkit.Stream(rnnkit.GRU(3, 4)); "
        "s.step(np.ones(3, np.float32)); s.save_state('/nodir/x.state')",
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", nargs="?", default=str(ROOT / "src"), help="an rnnkit src folder")
    src = Path(parser.parse_args().src).resolve()
    print(f"rnnkit tree: {src}\n")
    print("| case | exit | last stderr line | files intact |\n|---|---|---|---|")
    for name, case, intact in cases():
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            setup(src, d)
            before = {f: (d / f).read_bytes() for f in intact}
            t0 = time.perf_counter()
            code, last = case(src, d) if callable(case) else run(src, case, d, "1,2,3\n")
            kept = all((d / f).read_bytes() == b for f, b in before.items()) if intact else ""
            seconds = time.perf_counter() - t0
            last = last.replace("|", "/")[:160]
            print(f"| {name} | {code} | {last} ({seconds:.0f} s) | {kept} |", flush=True)
    for name, code in API:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "sub").mkdir()
            status, last = python(src, code, Path(tmp))
            print(f"| {name} | {status} | {last.replace('|', '/')[:160]} | |", flush=True)


if __name__ == "__main__":
    main()
