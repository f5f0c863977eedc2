"""Test-time VTLP's pick (`rnnkit.audio.tta.pick_views`, ``--tta-pick``): the mean of the
views, or per recording the view of the lowest entropy; saved with an audio model and used by
``evaluate`` and ``predict``; a model saved before it loads with the mean; the evaluation's
sides score every pick from the same per-view probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from by_path import benchmark
from rnnkit.audio import FrontEnd, read_wav
from rnnkit.audio.tta import pick_views, warped_proba
from rnnkit.cli import main
from rnnkit.errors import InputError
from rnnkit.estimators.classifier import SequenceClassifier
from rnnkit.io.checkpoint import load, load_checkpoint
from rnnkit.tasks.classify import audio_proba
from test_speech_tta import RATE, tone_folders


def test_confident_keeps_each_recordings_lowest_entropy_view():
    probas = np.array(
        [
            [[0.5, 0.5], [0.9, 0.1], [0.6, 0.4]],  # view 0
            [[0.2, 0.8], [0.5, 0.5], [0.6, 0.4]],  # view 1
            [[0.4, 0.6], [0.7, 0.3], [0.0, 1.0]],  # view 2: a certain one, with a 0
        ]
    )
    got = pick_views(probas, "confident")
    np.testing.assert_array_equal(got, [[0.2, 0.8], [0.9, 0.1], [0.0, 1.0]])
    np.testing.assert_array_equal(pick_views(probas), probas.mean(axis=0))
    np.testing.assert_array_equal(pick_views(probas, "mean"), probas.mean(axis=0))
    # equal entropies: the first view of them (the order of the factors)
    same = np.array([[[0.3, 0.7]], [[0.7, 0.3]]])
    np.testing.assert_array_equal(pick_views(same, "confident"), [[0.3, 0.7]])
    # the pick is not the mean: the mean's argmax differs here
    flip2 = np.array([[[0.4, 0.6]], [[0.4, 0.6]], [[0.95, 0.05]], [[0.2, 0.8]], [[0.3, 0.7]]])
    assert pick_views(flip2, "mean").argmax() == 1 and pick_views(flip2, "confident").argmax() == 0


@pytest.mark.parametrize("pick", ["median", "", None, 1])
def test_a_bad_pick_is_a_one_line_error(pick):
    with pytest.raises(InputError, match="tta_pick must be one of") as info:
        pick_views(np.full((3, 2, 2), 0.5), pick)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="SequenceClassifier: tta_pick must be one of"):
        SequenceClassifier(tta_pick=pick).fit([np.zeros((2, 1))] * 2, [0, 1])


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("pick")
    files = tone_folders(root, 1)
    out = root / "m.safetensors"
    argv = ["train", "classify", "--train", str(root / "train"), "--hidden", "8", "--epochs", "1"]
    assert main([*argv, "--tta-pick", "confident", "--out", str(out)]) == 0
    return str(out), files, root


def test_the_saved_pick_is_what_evaluate_and_predict_use(model, capsys):
    path, files, root = model
    clf, front = load(path), FrontEnd()
    assert (clf.tta_pick, clf.tta_warps) == ("confident", 5)
    views = np.stack(
        [
            clf.predict_proba([front.features(read_wav(f, RATE), warp=a) for f in files])
            for a in (0.9, 0.95, 1.0, 1.05, 1.1)
        ]
    )
    got = audio_proba(clf, front, files, "t")
    np.testing.assert_allclose(got, pick_views(views, "confident"), rtol=0, atol=1e-12)
    entropy = -np.sum(views * np.log(views), axis=2)
    np.testing.assert_allclose(got, views[entropy.argmin(0), np.arange(len(files))], atol=1e-12)
    assert not np.allclose(got, views.mean(axis=0))  # not the mean
    samples = [read_wav(f, RATE) for f in files]
    factors = [0.9, 0.95, 1.0, 1.05, 1.1]
    mean = warped_proba(clf.predict_proba, samples, front, factors)
    np.testing.assert_allclose(mean, views.mean(axis=0), rtol=0, atol=1e-12)
    clf.set_params(tta_pick="mean")
    np.testing.assert_allclose(audio_proba(clf, front, files, "t"), mean, rtol=0, atol=1e-12)
    assert main(["evaluate", path, "--test", str(root / "train"), "--json"]) == 0


def test_a_model_saved_before_the_pick_loads_with_the_mean(model):
    path, files, _ = model
    ckpt = load_checkpoint(path)
    del ckpt.metadata["params"]["tta_pick"]
    old = SequenceClassifier._from_checkpoint(ckpt, path)
    assert old.tta_pick == "mean"
    new = load(path).set_params(tta_pick="mean")
    np.testing.assert_array_equal(
        audio_proba(old, FrontEnd(), files, "t"), audio_proba(new, FrontEnd(), files, "t")
    )


def test_the_default_pick_is_the_mean(model, tmp_path):
    _, _, root = model
    out = tmp_path / "d.safetensors"
    argv = ["train", "classify", "--train", str(root / "train"), "--hidden", "4", "--epochs", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    assert load(str(out)).tta_pick == "mean"


def _eval_speech():
    return benchmark("eval_speech")


def test_the_evaluation_scores_every_pick_from_the_same_views():
    ev = _eval_speech()
    rng = np.random.default_rng(0)
    yt, yv = rng.integers(0, 3, 40), rng.integers(0, 3, 30)

    def member():
        vt = rng.dirichlet(np.ones(3) * 0.5, size=(5, 40))
        vv = rng.dirichlet(np.ones(3) * 0.5, size=(5, 30))
        return {
            "view_test_proba": vt,
            "view_valid_proba": vv,
            "seq_per_s": 1.0,
            "steps": 1,
            "epochs": 1.0,
            "fit_seconds": 1.0,
        }

    members = [member(), member()]
    vt = [m["view_test_proba"] for m in members]
    vv = [m["view_valid_proba"] for m in members]
    got = ev.ensemble_result([dict(m) for m in members], yt, yv, "confident")
    assert got["tta_pick"] == "confident" and set(got["picks"]) == {"mean", "confident"}

    def acc(p, y):
        return float(np.mean(p.argmax(1) == y))

    ensemble = pick_views(np.mean(vt, axis=0), "confident")  # members averaged per view first
    assert got["accuracy"] == acc(ensemble, yt)
    assert got["valid_accuracy"] == acc(pick_views(np.mean(vv, axis=0), "confident"), yv)
    assert got["member_accuracy"] == [acc(pick_views(p, "confident"), yt) for p in vt]
    mean = got["picks"]["mean"]
    assert mean["accuracy"] == acc(np.mean(vt, axis=(0, 1)), yt)
    assert mean["member_valid_accuracy"] == [acc(p.mean(0), yv) for p in vv]
    assert got["picks"]["mean"] != got["picks"]["confident"]
