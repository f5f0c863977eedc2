"""`make eval-sentiment`: movie-review polarity (Pang and Lee, 10,662 snippets), stratified
K-fold cross-validation; rnnkit's `SequenceClassifier` beside the same network in PyTorch and a
TF-IDF + logistic regression baseline, and Kim (2014)'s published CNN numbers.

Per fold, interleaved, each side in its own process with the same thread pins:

1. rnnkit: the `SequenceClassifier` that ``rnnkit train classify`` trains by default (words
   seen at least twice, embedding 128, bidirectional LSTM 64, mean pooling, dropout 0.5),
   with the budget below (`benchmarks/sentiment_sides.py`);
2. PyTorch: the same network, vocabulary ids, validation split, batches, optimizer,
   schedule and budget (`benchmarks/sentiment_torch.py`);
3. TF-IDF (word 1-2 grams) + LogisticRegression, C picked on the validation split.

Each fold's training part loses a stratified 10 % (seeded) for validation: early stopping
and best weights for the networks, C for the baseline. Writes sentiment.json and sentiment.md
into --out (runs/eval-sentiment; --quick: runs/eval-sentiment-quick) and prints the table.

    python benchmarks/eval_sentiment.py                      # 10 folds, 6 epochs per side
    python benchmarks/eval_sentiment.py --folds 5 --minutes-per-fold 1
    python benchmarks/eval_sentiment.py --quick              # seconds: a smoke test
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "sentiment"
THREADS = "2"
SEED = 0
VALIDATION = 0.1
PUBLISHED = (  # Kim (2014), "Convolutional Neural Networks for Sentence Classification", MR
    ("CNN-rand (Kim 2014, published)", 76.1),
    ("CNN-static (Kim 2014, published; word2vec)", 81.0),
    ("CNN-non-static (Kim 2014, published; word2vec)", 81.5),
)
SIDES = ("rnnkit", "torch", "tfidf")
NAMES = {
    "rnnkit": "rnnkit SequenceClassifier",
    "torch": "PyTorch, same network",
    "tfidf": "TF-IDF 1-2 grams + LogisticRegression",
}


def load_data() -> tuple[list[str], np.ndarray]:
    """The snippets (latin-1) and labels (1 positive, 0 negative)."""
    files = [DATA / "rt-polarity.pos", DATA / "rt-polarity.neg"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"eval-sentiment: the data is missing: {', '.join(missing)}")
    pos, neg = (f.read_text(encoding="latin-1").splitlines() for f in files)
    return pos + neg, np.array([1] * len(pos) + [0] * len(neg))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[key] = THREADS
    env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # as in `make bench`, both sides
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    return env


def _side(side: str, fold: Path, params: Path) -> dict:
    script = "sentiment_torch.py" if side == "torch" else "sentiment_sides.py"
    args = [str(fold), str(params)] if side == "torch" else [side, str(fold), str(params)]
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"eval-sentiment: the {side} side failed with status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_fold(
    path: Path, texts: list[str], y: np.ndarray, rows, train, test, params: dict
) -> None:
    """The fold's indices (train, valid, test) into the snippets, which are ``rows`` of the
    data set, and every snippet's ids in the vocabulary of the training part, built as
    `SequenceClassifier.fit` builds it."""
    from rnnkit.data.labelled import stratified_split
    from rnnkit.data.text import Vocabulary

    keep, held = stratified_split(y[train].tolist(), VALIDATION, SEED)
    train_i, valid_i = train[keep], train[held]
    vocab = Vocabulary.build(
        [texts[i] for i in train_i], params["tokens"], params["max_vocab"], params["min_count"]
    )
    ids = vocab.encode_many(texts)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in ids])])
    np.savez(
        path,
        flat=np.concatenate(ids),
        offsets=offsets,
        y=y,
        rows=rows,
        train=train_i,
        valid=valid_i,
        test=test,
        vocab=np.array(vocab.tokens),
    )


def machine() -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_machine

    flags = bench_machine.isa() or []
    versions = bench_machine.versions()
    return {
        "cpu_model": bench_machine.cpu_model(),
        "cores": os.cpu_count(),
        "avx512": any(f.startswith("avx512") for f in flags),
        "load_average": os.getloadavg(),
        "versions": {k: versions.get(k) for k in ("python", "numpy", "numba", "torch")}
        | {"scikit-learn": _version("scikit-learn")},
        "threads": {k: v for k, v in _env().items() if k.endswith("_NUM_THREADS")}
        | {"torch.set_num_threads": int(THREADS)},
    }


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def table(result: dict) -> str:
    folds, params = result["folds"], result["params"]
    ran = f"{len(folds)} of {result['k']}" if len(folds) < result["k"] else f"{len(folds)}"

    acc = {s: [f[s]["accuracy"] * 100 for f in folds] for s in SIDES}
    speed = {s: [f[s]["seq_per_s"] for f in folds] for s in ("rnnkit", "torch")}
    ratios = [r / t for r, t in zip(speed["rnnkit"], speed["torch"], strict=True)]
    budget = result["budget"]
    lines = [
        f"Movie-review polarity (Pang and Lee, {result['n']:,} snippets), stratified "
        f"{result['k']}-fold cross-validation (seed {SEED}), folds run: {ran}; "
        f"budget per side and fold: {budget}; "
        f"tokens: {params['tokens']}.",
        "",
        "| model | accuracy % (mean ± std over folds) | epochs (mean) | train seq/s (median) |",
        "|---|---|---|---|",
    ]
    for side in SIDES:
        a = acc[side]
        std = statistics.stdev(a) if len(a) > 1 else 0.0
        epochs = f"{statistics.mean(f[side]['epochs'] for f in folds):.1f}" if side in speed else ""
        rate = f"{statistics.median(speed[side]):,.0f}" if side in speed else ""
        mean = statistics.mean(a)
        lines.append(f"| {NAMES[side]} | {mean:.1f} ± {std:.1f} | {epochs} | {rate} |")
    for name, value in PUBLISHED:
        lines.append(f"| {name} | {value:.1f} | | |")
    m = result["machine"]
    threads = ", ".join(f"{k}={v}" for k, v in m["threads"].items())
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    lines += [
        "",
        f"Training throughput rnnkit / PyTorch on the same batches: "
        f"{statistics.median(ratios):.2f}x (median over folds; per fold "
        f"{', '.join(f'{r:.2f}' for r in ratios)}).",
        f"Where it ran: {m['cpu_model']}, {m['cores']} cores, AVX-512 "
        f"{'yes' if m['avx512'] else 'no'}, load average {m['load_average'][0]:.1f} at the "
        f"start; {versions}; {threads}. {result['date']}, {result['minutes']:.0f} minutes.",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folds", type=int, default=10, help="stratified folds (default 10)")
    ap.add_argument(
        "--epochs", type=float, default=6, help="budget per side and fold, patience 3 (6)"
    )
    ap.add_argument("--minutes-per-fold", type=float, default=None, help="instead of --epochs")
    ap.add_argument("--run-folds", type=int, default=None, help="only the first N folds")
    ap.add_argument("--tokens", default="word", choices=("word", "char"), help="default word")
    ap.add_argument("--quick", action="store_true", help="2 folds of 300 snippets, 1 epoch")
    ap.add_argument("--out", type=Path, default=None, help="default runs/eval-sentiment")
    args = ap.parse_args()
    from sklearn.model_selection import StratifiedKFold

    from rnnkit.tasks.classify import ClassifyConfig, estimator

    texts, y = load_data()
    rows = np.arange(len(texts))
    if args.quick:
        rows = np.random.default_rng(SEED).permutation(len(texts))[:300]
        texts, y = [texts[i] for i in rows], y[rows]
        args.folds, args.epochs, args.minutes_per_fold, args.run_folds = 2, 1, None, None
    out = args.out or ROOT / "runs" / ("eval-sentiment-quick" if args.quick else "eval-sentiment")
    out.mkdir(parents=True, exist_ok=True)
    minutes = args.minutes_per_fold
    budget = {"epochs": None, "minutes": minutes} if minutes else {"epochs": args.epochs}
    # the model `rnnkit train classify` trains by default (words seen at least twice, ...)
    cli = dataclasses.replace(ClassifyConfig(), tokens=args.tokens, seed=SEED, **budget)
    params = estimator(cli).set_params(verbose=False).get_params()
    budget_text = f"{minutes:g} minutes" if minutes else f"{args.epochs:g} epochs"
    budget_text += f" (patience {params['patience']}, best validation loss kept)"
    result = {
        "date": datetime.date.today().isoformat(),
        "n": len(texts),
        "k": args.folds,
        "budget": budget_text,
        "params": params,
        "machine": machine(),
        "folds": [],
    }
    start = time.perf_counter()
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=SEED).split(texts, y)
    with tempfile.TemporaryDirectory(prefix="eval-sentiment-") as tmp:
        params_path = Path(tmp) / "params.json"
        params_path.write_text(json.dumps(params))
        for k, (train, test) in enumerate(folds):
            if args.run_folds is not None and k >= args.run_folds:
                break
            fold = Path(tmp) / f"fold{k}.npz"
            write_fold(fold, texts, y, rows, train, test, params)
            got = {side: _side(side, fold, params_path) for side in SIDES}
            result["folds"].append(got)
            print(
                f"fold {k + 1}/{args.folds}: "
                + "  ".join(f"{s} {got[s]['accuracy']:.3f}" for s in SIDES)
                + f"  seq/s rnnkit {got['rnnkit']['seq_per_s']:,.0f} "
                f"torch {got['torch']['seq_per_s']:,.0f}",
                flush=True,
            )
    result["minutes"] = (time.perf_counter() - start) / 60
    text = table(result)
    (out / "sentiment.json").write_text(json.dumps(result, indent=1))
    (out / "sentiment.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
