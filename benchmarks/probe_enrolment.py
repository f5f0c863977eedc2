"""A probe (not a benchmark): how many of a new speaker's recordings per-speaker normalisation
(`train classify --speaker-norm`) needs. A model trained with it, and a manifest of recordings
of speakers it never heard (``path,label,speaker``); each speaker's recordings are shuffled
(seeded) and cut into groups of K, and each group is normalised by its own statistics, as if
the speaker had given only K recordings together. Prints the accuracy per K (1: each
recording by itself, the per-recording normalisation; all: the speaker's every recording).

    python benchmarks/probe_enrolment.py MODEL --test TEST.csv [--sizes 1,5,10,20,50,all]
        [--reference MODEL_TRAINED_WITHOUT_IT]

It uses the library as `rnnkit evaluate` does (`rnnkit.tasks.classify.audio_proba`, with the
model's test-time VTLP), with the groups as the speaker column; the features of each recording
are computed once per group size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import warnings
from pathlib import Path

import numpy as np

THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from rnnkit.data.labelled import read_labelled  # noqa: E402
from rnnkit.errors import InputError, RnnkitWarning  # noqa: E402
from rnnkit.tasks.classify import audio_proba, front_end, load_classifier  # noqa: E402


def sizes_of(text: str) -> list[int | None]:
    """``1,5,all`` -> [1, 5, None] (None: all of a speaker's recordings)."""
    out: list[int | None] = []
    for part in text.split(","):
        part = part.strip()
        if part == "all":
            out.append(None)
        elif part.isdigit() and int(part) > 0:
            out.append(int(part))
        else:
            raise argparse.ArgumentTypeError(f"expected sizes >= 1 or 'all', got {part!r}")
    return out


def groups_of(speakers: list[str], size: int | None, seed: int) -> list[str]:
    """Each speaker's recordings in a seeded random order, cut into groups of ``size``."""
    rng = np.random.default_rng(seed)
    out = [""] * len(speakers)
    for speaker in sorted(set(speakers)):
        index = rng.permutation([i for i, s in enumerate(speakers) if s == speaker])
        for k, i in enumerate(index):
            out[int(i)] = f"{speaker}/{0 if size is None else k // size}"
    return out


def cpu() -> str:
    """The CPU's model name (/proc/cpuinfo), else the platform's machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a model from 'rnnkit train classify --speaker-norm'")
    ap.add_argument("--test", required=True, help="a manifest path,label,speaker")
    ap.add_argument("--sizes", type=sizes_of, default=sizes_of("1,2,5,10,20,50,all"))
    ap.add_argument("--seed", type=int, default=0, help="the order the groups are cut in (0)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument(
        "--reference",
        default=None,
        help="a model trained alike without --speaker-norm, scored on the same files (none)",
    )
    args = ap.parse_args()
    try:
        clf, front = load_classifier(args.model), front_end(args.model)
        if front is None or front.norm != "speaker":
            raise InputError(f"{args.model!r} was not trained with --speaker-norm")
        data = read_labelled(args.test, what="--test")
        if data.speakers is None:
            raise InputError(f"--test {args.test!r} has no 'speaker' column")
    except InputError as exc:
        raise SystemExit(f"probe_enrolment: {exc}") from None
    labels = np.asarray(data.labels)
    warnings.simplefilter("ignore", RnnkitWarning)  # the small groups are the point here
    print(
        f"where: {cpu()}, python {platform.python_version()}, threads "
        + ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in THREADS)
    )
    print(f"{len(labels)} recordings of {len(set(data.speakers))} speakers")
    print("recordings per group | accuracy | per speaker")
    rows = []
    for size in args.sizes:
        groups = groups_of(data.speakers, size, args.seed)
        proba = audio_proba(clf, front, list(data.texts), "--test", groups)
        right = clf.classes_[proba.argmax(axis=1)].astype(str) == labels
        per = {
            s: float(np.mean(right[np.asarray(data.speakers) == s]))
            for s in sorted(set(data.speakers))
        }
        rows.append({"size": size or "all", "accuracy": float(right.mean()), "speakers": per})
        print(
            f"{size or 'all':>20} | {right.mean() * 100:7.1f} % | "
            + ", ".join(f"{s} {a * 100:.1f}" for s, a in per.items())
        )
    if args.reference is not None:
        ref, ref_front = load_classifier(args.reference), front_end(args.reference)
        if ref_front is None:
            raise SystemExit(f"probe_enrolment: {args.reference!r} is not an audio classifier")
        proba = audio_proba(ref, ref_front, list(data.texts), "--test", data.speakers)
        right = ref.classes_[proba.argmax(axis=1)].astype(str) == labels
        rows.append({"size": "reference", "accuracy": float(right.mean())})
        print(f"{'reference (' + ref_front.norm + ')':>20} | {right.mean() * 100:7.1f} %")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
