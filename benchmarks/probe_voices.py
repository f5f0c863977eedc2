"""A probe (not a benchmark): how long each speaker's clips last and how high they speak, for
comparing the synthetic voices (`rnnkit data voices`) with FSDD's speakers.

    python benchmarks/probe_voices.py /work/shared/data/speech/fsdd/recordings /work/runs/voices

Files are named ``{label}_{speaker}_{index}.wav``; for each directory and speaker it prints the
number of clips, their mean length in seconds and the median, 10th and 90th percentile of the
pitch (Hz) over voiced frames. The pitch is a plain autocorrelation estimate: 40 ms Hann
windows every 10 ms, frames within 10 dB of the clip's loudest, the strongest lag for 60-400
Hz kept when its correlation is above 0.3 of the frame's energy, every file read at 8 kHz
(FSDD's rate and the voices'). It is good enough to rank voices, not to measure them.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from rnnkit.audio.wav import read_wav  # noqa: E402
from rnnkit.errors import InputError  # noqa: E402

RATE = 8000

WINDOW, HOP = 0.04, 0.01
LOW_HZ, HIGH_HZ = 60.0, 400.0


def pitches(x: np.ndarray, rate: int) -> list[float]:
    """The pitch (Hz) of each voiced frame of ``x`` (see the module's docstring)."""
    n, hop = int(WINDOW * rate), int(HOP * rate)
    if len(x) < n:
        return []
    starts = range(0, len(x) - n + 1, hop)
    energy = np.array([np.sum(x[i : i + n] ** 2) for i in starts])
    loud = energy >= 0.1 * energy.max()
    lo, hi = int(rate / HIGH_HZ), int(rate / LOW_HZ)
    out = []
    window = np.hanning(n)
    for i, keep in zip(starts, loud, strict=True):
        if not keep:
            continue
        f = x[i : i + n] * window
        ac = np.correlate(f, f, "full")[n - 1 :]
        k = lo + int(np.argmax(ac[lo:hi]))
        if ac[0] > 0 and ac[k] > 0.3 * ac[0]:
            out.append(rate / k)
    return out


def speakers(directory: Path) -> dict[str, list[Path]]:
    """The ``.wav`` files of ``directory`` by speaker (the name's second field)."""
    groups: dict[str, list[Path]] = collections.defaultdict(list)
    for path in sorted(directory.glob("*.wav")):
        parts = path.stem.split("_")
        if len(parts) < 3:
            raise SystemExit(f"{path}: expected a name label_speaker_index.wav")
        groups[parts[1]].append(path)
    if not groups:
        raise SystemExit(f"{directory}: no .wav files (expected label_speaker_index.wav)")
    return groups


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="directories of label_speaker_index.wav")
    args = parser.parse_args(argv)
    print(
        f"{'directory':<14} {'speaker':<12} {'clips':>5} {'mean s':>7} {'pitch p10':>9} "
        f"{'median':>7} {'p90':>5}"
    )
    for directory in args.dirs:
        if not directory.is_dir():
            raise SystemExit(f"{directory}: not a directory (expected one of .wav files)")
        for speaker, paths in sorted(speakers(directory).items()):
            seconds, hz = [], []
            for path in paths:
                try:
                    x = read_wav(path, RATE)
                except InputError as error:  # a bad file: its one line, not a traceback
                    raise SystemExit(str(error)) from None
                seconds.append(len(x) / RATE)
                hz += pitches(x, RATE)
            p10, p50, p90 = np.percentile(hz, [10, 50, 90]) if hz else (np.nan,) * 3
            print(
                f"{directory.name[:14]:<14} {speaker[:12]:<12} {len(paths):>5} "
                f"{np.mean(seconds):>7.2f} {p10:>9.0f} {p50:>7.0f} {p90:>5.0f}"
            )


if __name__ == "__main__":
    main()
