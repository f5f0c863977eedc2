"""SequenceClassifier and the classify task: it learns, round-trips, follows scikit-learn's
conventions, and the CLI turns bad input into one line naming the file and the line."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import rnnkit
from rnnkit.cli import main
from rnnkit.data.batches import bucket_batches, pad
from rnnkit.data.labelled import stratified_split
from rnnkit.data.text import Vocabulary


def sign_task(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = [rng.standard_normal((int(rng.integers(3, 15)), 1)).astype(np.float32) for _ in range(n)]
    return X, np.array([int(x.sum() > 0) for x in X])


FAST = dict(hidden_size=16, dropout=0.0, lr=1e-2, patience=None)


@pytest.fixture(scope="module")
def fitted():
    X, y = sign_task()
    return rnnkit.SequenceClassifier(epochs=12, **FAST).fit(X, y), X, y


def test_learns_the_sign_of_a_sum(fitted):
    clf, _, _ = fitted
    X, y = sign_task(200, seed=1)  # unseen sequences
    assert clf.score(X, y) >= 0.93
    assert clf.predict_proba(X).shape == (200, 2)
    assert np.allclose(clf.predict_proba(X).sum(1), 1)


def test_learns_whether_a_word_appears():
    rng = np.random.default_rng(0)
    words = ["a", "b", "c", "d"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(2, 8)))) for _ in range(300)]
    labels = ["yes" if "d" in t.split() else "no" for t in texts]
    clf = rnnkit.SequenceClassifier(tokens="word", pooling="max", epochs=8, **FAST)
    clf.fit(texts, labels)
    assert clf.score(texts, labels) >= 0.95
    assert list(clf.classes_) == ["no", "yes"]
    assert clf.vocab_.tokens[0] == "<unk>"


@pytest.mark.parametrize("pooling", ["last", "attention"])
def test_token_ids_with_other_poolings(pooling):
    rng = np.random.default_rng(1)
    X = [rng.integers(0, 5, size=int(rng.integers(2, 9))) for _ in range(200)]
    y = [int(3 in x) for x in X]
    clf = rnnkit.SequenceClassifier(pooling=pooling, cell="gru", steps=20, **FAST).fit(X, y)
    assert clf.predict(X).shape == (200,)


def test_save_load_round_trip(fitted, tmp_path):
    clf, X, _ = fitted
    path = tmp_path / "clf.safetensors"
    rnnkit.save(clf, path)
    again = rnnkit.load(path)
    assert isinstance(again, rnnkit.SequenceClassifier)
    assert again.get_params() == clf.get_params()
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert b"pickle" not in path.read_bytes()[:2000]


def test_params_and_clone():
    clf = rnnkit.SequenceClassifier(hidden_size=8, class_weight={"a": 2.0})
    params = clf.get_params()
    assert params["hidden_size"] == 8 and params["class_weight"] == {"a": 2.0}
    assert clf.set_params(hidden_size=4) is clf and clf.hidden_size == 4
    with pytest.raises(rnnkit.InputError, match="unknown parameter 'hidden'"):
        clf.set_params(hidden=3)
    copy = type(clf)(**clf.get_params())
    assert copy.get_params() == clf.get_params()
    assert "hidden_size=4" in repr(clf)


def test_predict_before_fit_is_a_clear_error():
    with pytest.raises(rnnkit.NotFittedError, match="before fit"):
        rnnkit.SequenceClassifier().predict(["x"])


def test_bad_fit_input():
    clf = rnnkit.SequenceClassifier(steps=1)
    with pytest.raises(rnnkit.InputError, match="one class only"):
        clf.fit(["a", "b"], [1, 1])
    with pytest.raises(rnnkit.InputError, match="one label per sequence"):
        clf.fit(["a", "b"], [1])
    with pytest.raises(rnnkit.InputError, match="mixes"):
        clf.fit(["a", np.array([1, 2])], [0, 1])


def test_cross_val_score_and_grid_search():
    """scikit-learn (in the test extras) sees an estimator: clone, cross_val_score and
    GridSearchCV work on it."""
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, cross_val_score

    X, y = sign_task(150)
    clf = rnnkit.SequenceClassifier(epochs=8, **FAST)
    assert clone(clf).get_params() == clf.get_params()
    scores = cross_val_score(clf, X, y, cv=3)
    assert scores.mean() > 0.8
    search = GridSearchCV(clf, {"pooling": ["mean", "last"]}, cv=2).fit(X, y)
    assert search.best_params_["pooling"] in ("mean", "last")
    assert search.best_estimator_.score(X, y) > 0.8


def test_bucketing_and_padding():
    lengths = np.array([5, 1, 3, 9, 2, 7, 4, 8])
    batches = bucket_batches(lengths, 3, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(8))
    seqs = [np.arange(n) for n in lengths]
    x, lens = pad(seqs, np.array([1, 3]))
    assert x.shape == (9, 2) and lens.tolist() == [1, 9] and x[1:, 0].sum() == 0
    train, held = stratified_split(["a"] * 10 + ["b"] * 20, 0.1)
    assert len(held) == 3 and len(train) == 27


def test_vocabulary_min_count():
    vocab = Vocabulary.build(["a a b", "a c c"], "word", min_count=2)
    assert vocab.tokens == ("<unk>", "a", "c")
    assert vocab.encode_many(["b a", ""])[1].tolist() == [0]


# -- the CLI ---------------------------------------------------------------------------------
def write_rows(path, rows, delimiter=","):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter=delimiter).writerows(rows)
    return str(path)


def examples(n=120, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = list(rng.choice(["the", "film", "was", "a", "plot"], size=4))
        words.append("good" if label == "pos" else "bad")
        rows.append([" ".join(words), label])
    return rows


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_train_evaluate_predict(tmp_path, capsys):
    train = write_rows(tmp_path / "train.csv", [["text", "label"], *examples()])
    test = write_rows(
        tmp_path / "test.tsv", [["label", "text"], *[r[::-1] for r in examples(40, 1)]], "\t"
    )
    out = str(tmp_path / "m.safetensors")
    flags = ["--hidden", "16", "--min-count", "1", "--lr", "0.01", "--epochs", "6"]
    code, stdout, err = run(
        ["train", "classify", "--train", train, "--test", test, "--out", out, *flags, "--json"],
        capsys,
    )
    assert code == 0, err
    metrics = json.loads(stdout.splitlines()[-1])
    assert metrics["val_accuracy"] >= 0.9 and metrics["test_accuracy"] >= 0.9
    assert "test_macro_f1" in metrics
    code, stdout, _ = run(["evaluate", out, "--test", test, "--json"], capsys)
    last = json.loads(stdout.splitlines()[-1])
    assert code == 0 and last["accuracy"] >= 0.9 and "macro_f1" in last
    lines = tmp_path / "lines.txt"
    lines.write_text("the film was good\nthe plot was bad\n")
    code, stdout, _ = run(["predict", out, str(lines), "--json"], capsys)
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert code == 0 and [r["label"] for r in rows] == ["pos", "neg"]
    # a second run onto the same file is fine; onto a file that is not rnnkit's is refused
    other = tmp_path / "notes.safetensors"
    other.write_text("mine")
    code, _, err = run(["train", "classify", "--train", train, "--out", str(other)], capsys)
    assert code == 2 and "--force" in err


def test_cli_folder_per_label(tmp_path, capsys):
    for text, label in examples(80):
        folder = tmp_path / "data" / label
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "part.txt", "a") as fh:
            fh.write(text + "\n")
    out = str(tmp_path / "m.safetensors")
    argv = ["train", "classify", "--train", str(tmp_path / "data"), "--out", out]
    code, stdout, err = run([*argv, "--hidden", "8", "--epochs", "1", "--json"], capsys)
    assert code == 0, err
    assert "val_accuracy" in json.loads(stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "name, content, expected",
    [
        (
            "nolabel.csv",
            "text,category\nhello,a\n",
            "nolabel.csv' line 1 (the header) has no column 'label'",
        ),
        ("empty.csv", "", "empty.csv' is empty"),
        ("one.csv", "text,label\na,x\nb,x\n", "one class only"),
        ("ragged.csv", "text,label\na,x\nb,y,z\n", "ragged.csv' line 3 has 3 fields, expected 2"),
        ("latin.csv", b"text,label\na,x\ncaf\xe9,y\n", "latin.csv' is not valid UTF-8 (line 3"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, capsys, name, content, expected):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    out = str(tmp_path / "m.safetensors")
    code, _, err = run(["train", "classify", "--train", str(path), "--out", out], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("rnnkit: error:")
    assert expected in err


# -- cross-validation, plots -----------------------------------------------------------------
def test_stratified_folds_cover_each_class_evenly():
    from rnnkit.data.labelled import stratified_folds

    labels = ["a"] * 10 + ["b"] * 7
    folds = stratified_folds(labels, 3, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(17))
    for fold in folds:
        n_b = sum(labels[i] == "b" for i in fold)
        assert 3 <= sum(labels[i] == "a" for i in fold) <= 4 and 2 <= n_b <= 3
    assert [f.tolist() for f in folds] == [f.tolist() for f in stratified_folds(labels, 3, 1)]
    with pytest.raises(rnnkit.InputError, match="class 'b' has 7 example"):
        stratified_folds(labels, 8)


def test_cli_cross_validation(tmp_path, capsys):
    train = write_rows(tmp_path / "train.csv", [["text", "label"], *examples(90)])
    out = tmp_path / "m.safetensors"
    flags = ["--hidden", "8", "--min-count", "1", "--lr", "0.01", "--epochs", "4"]
    argv = ["train", "classify", "--train", train, "--out", str(out), "--cv", "3", *flags]
    code, stdout, err = run([*argv, "--json"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout.splitlines()[-1])
    assert len(metrics["cv_accuracy"]) == 3 and metrics["cv_accuracy_mean"] >= 0.8
    assert metrics["cv_accuracy_std"] == pytest.approx(np.std(metrics["cv_accuracy"]))
    assert "cross-validation accuracy" in stdout and out.exists()  # the final model
    code, _, err = run([*argv[:-8], "--cv", "1"], capsys)
    assert code == 2 and "at least 2 folds" in err


def test_cli_evaluate_draws_a_confusion_matrix(tmp_path, capsys):
    train = write_rows(tmp_path / "train.csv", [["text", "label"], *examples(60)])
    out = tmp_path / "m.safetensors"
    flags = ["--hidden", "8", "--min-count", "1", "--epochs", "1"]
    assert run(["train", "classify", "--train", train, "--out", str(out), *flags], capsys)[0] == 0
    code, stdout, err = run(["evaluate", str(out), "--test", train, "--json"], capsys)
    assert code == 0, err
    default = tmp_path / "m.confusion.png"
    assert f"confusion matrix: {default}" in stdout and default.read_bytes()[:4] == b"\x89PNG"
    last = json.loads(stdout.splitlines()[-1])
    assert np.sum(last["confusion"]) == 60 and len(last["confusion"]) == 2
    mine = tmp_path / "mine.png"
    mine.write_text("not a plot")  # refused before any work, then replaced with --force
    code, _, err = run(["evaluate", str(out), "--test", train, "--plot", str(mine)], capsys)
    assert code == 2 and "--plot" in err and "--force" in err
    code, _, _ = run(
        ["evaluate", str(out), "--test", train, "--plot", str(mine), "--force"], capsys
    )
    assert code == 0 and mine.read_bytes()[:4] == b"\x89PNG"


def test_confusion_matrix_counts():
    from rnnkit.metrics import confusion_matrix

    m = confusion_matrix(["a", "a", "b", "c"], ["a", "b", "b", "a"], ["a", "b", "c"])
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_cli_predict_explain_draws_attention(tmp_path, capsys):
    train = write_rows(tmp_path / "train.csv", [["text", "label"], *examples(60)])
    flags = ["--hidden", "8", "--min-count", "1", "--epochs", "1"]
    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"the film {w} good\n" for w in ["was", "a", "plot"] * 4))
    for pooling in ("attention", "mean"):
        out = str(tmp_path / f"{pooling}.safetensors")
        argv = ["train", "classify", "--train", train, "--out", out, "--pooling", pooling]
        assert run([*argv, *flags], capsys)[0] == 0
    png = tmp_path / "why.png"
    argv = ["predict", str(tmp_path / "attention.safetensors"), str(lines), "--explain", str(png)]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    assert len(stdout.splitlines()) == 12 and f"attention heat map: {png}" in err
    assert png.read_bytes()[:4] == b"\x89PNG"
    argv[1] = str(tmp_path / "mean.safetensors")
    code, _, err = run(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "pools with 'mean'" in err and "--pooling attention" in err


def test_attention_weights_sum_to_one_over_each_input():
    rng = np.random.default_rng(1)
    X = [rng.integers(0, 5, size=int(rng.integers(2, 9))) for _ in range(40)]
    y = [int(3 in x) for x in X]
    clf = rnnkit.SequenceClassifier(pooling="attention", steps=2, **FAST).fit(X, y)
    weights = clf.attention_weights(X[:5])
    assert [len(a) for a in weights] == [len(x) for x in X[:5]]
    assert np.allclose([a.sum() for a in weights], 1.0)
    with pytest.raises(rnnkit.InputError, match="pooling='attention'"):
        rnnkit.SequenceClassifier(steps=1, **FAST).fit(X, y).attention_weights(X)


def test_label_smoothing_softens_the_fit_and_checks_its_range(capsys, tmp_path):
    X, y = sign_task(120)
    plain = rnnkit.SequenceClassifier(epochs=15, **FAST).fit(X, y)
    smooth = rnnkit.SequenceClassifier(epochs=15, label_smoothing=0.4, **FAST).fit(X, y)
    # the target is 1 - 0.4 + 0.2 = 0.8 on the label: less confident, as accurate
    confidence = [np.mean(c.predict_proba(X).max(1)) for c in (plain, smooth)]
    assert confidence[1] < confidence[0] - 0.05, confidence
    assert smooth.score(X, y) > 0.9
    with pytest.raises(rnnkit.InputError, match=r"label_smoothing must be in \[0, 1\), got 1"):
        rnnkit.SequenceClassifier(steps=1, label_smoothing=1.0, **FAST).fit(X, y)
    (tmp_path / "t.csv").write_text("text,label\n" + "good one,a\nbad one,b\n" * 6)
    with pytest.raises(SystemExit) as exit_:  # argparse's one-line error
        main(["train", "classify", "--train", str(tmp_path / "t.csv"), "--label-smoothing", "1",
              "--out", str(tmp_path / "m.safetensors")])  # fmt: skip
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "argument --label-smoothing: expected a number in [0, 1)" in err
