"""The rnnkit and scikit-learn sides of `make eval-sentiment`, one fold per process.

    python benchmarks/sentiment_sides.py rnnkit FOLD.npz PARAMS.json
    python benchmarks/sentiment_sides.py tfidf FOLD.npz PARAMS.json

rnnkit: ``SequenceClassifier(**PARAMS).fit(train texts, y, valid texts, y)`` as a user would
call it; its vocabulary must be the one the fold file gives PyTorch (checked). Throughput is
the estimator's own ``throughput_`` (sequences over the seconds spent in training steps,
without the first 20 steps: compiling, first allocations). tfidf: word 1-2 gram TF-IDF and logistic
regression, ``C`` picked on the same validation part. Each prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_sentiment import load_data  # noqa: E402


def _parts(npz) -> dict[str, tuple[list[str], np.ndarray]]:
    texts, rows, y = load_data()[0], npz["rows"], npz["y"]
    return {
        name: ([texts[rows[i]] for i in npz[name]], y[npz[name]])
        for name in ("train", "valid", "test")
    }


def run_rnnkit(npz, params: dict) -> dict:
    from rnnkit import SequenceClassifier

    parts = _parts(npz)
    clf = SequenceClassifier(**params)
    (x_train, y_train), (x_valid, y_valid) = parts["train"], parts["valid"]
    t0 = time.perf_counter()
    clf.fit(x_train, list(y_train), x_valid, list(y_valid))
    fit_seconds = time.perf_counter() - t0
    if list(clf.vocab_.tokens) != npz["vocab"].tolist():
        raise SystemExit("sentiment_sides: rnnkit's vocabulary differs from the fold file's")
    per_epoch = -(-len(parts["train"][0]) // params["batch_size"])
    return {
        "accuracy": clf.score(parts["test"][0], list(parts["test"][1])),
        "seq_per_s": clf.throughput_,
        "steps": clf.n_steps_,
        "epochs": clf.n_steps_ / per_epoch,
        "stopped": clf.stopped_,
        "fit_seconds": fit_seconds,
        "best_val_loss": clf.best_val_loss_,
    }


def run_tfidf(npz, params: dict) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    parts = _parts(npz)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    X_train = vectorizer.fit_transform(parts["train"][0])
    X_valid, X_test = (vectorizer.transform(parts[k][0]) for k in ("valid", "test"))
    t0 = time.perf_counter()
    scored = []
    for C in (0.3, 1.0, 3.0, 10.0, 30.0):
        model = LogisticRegression(C=C, max_iter=2000).fit(X_train, parts["train"][1])
        scored.append((model.score(X_valid, parts["valid"][1]), C, model))
    valid_accuracy, C, model = max(scored, key=lambda s: (s[0], -s[1]))
    return {
        "accuracy": float(model.score(X_test, parts["test"][1])),
        "C": C,
        "valid_accuracy": float(valid_accuracy),
        "fit_seconds": time.perf_counter() - t0,
    }


def main() -> None:
    side, fold, params = sys.argv[1], Path(sys.argv[2]), json.loads(Path(sys.argv[3]).read_text())
    npz = np.load(fold)
    run = {"rnnkit": run_rnnkit, "tfidf": run_tfidf}[side]
    print(json.dumps(run(npz, params)))


if __name__ == "__main__":
    main()
