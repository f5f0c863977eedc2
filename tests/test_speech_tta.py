"""Test-time VTLP (`rnnkit.audio.tta`): the warp factors, the views, the averaged
probabilities; saved with an audio model for ``evaluate`` and ``predict``; a model saved
before it existed predicts exactly as it did."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.io import wavfile

from rnnkit.audio import FrontEnd, read_wav
from rnnkit.audio.files import featurise
from rnnkit.audio.tta import tta_factors, view_proba, warped_proba, warped_views
from rnnkit.cli import main
from rnnkit.errors import InputError
from rnnkit.estimators.classifier import SequenceClassifier
from rnnkit.io.checkpoint import load, load_checkpoint
from rnnkit.tasks.classify import audio_proba

RATE = 8000


def test_factors_are_evenly_spaced_about_one():
    np.testing.assert_allclose(tta_factors(0.1, 5), [0.9, 0.95, 1.0, 1.05, 1.1], atol=1e-15)
    assert tta_factors(0.1, 5)[2] == 1.0 and tta_factors(0.2, 3).tolist()[1] == 1.0
    assert tta_factors(0.1, 1).tolist() == [1.0] and tta_factors(0.0, 5).tolist() == [1.0]


@pytest.mark.parametrize(
    "vtlp, warps, expected",
    [(0.6, 3, "tta_vtlp must be"), (-0.1, 3, "tta_vtlp"), (0.1, 4, "odd"), (0.1, 0, "odd")],
)
def test_bad_factors_are_one_line_errors(vtlp, warps, expected):
    with pytest.raises(InputError, match=expected) as info:
        tta_factors(vtlp, warps)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match=expected):
        SequenceClassifier(tta_vtlp=vtlp, tta_warps=warps).fit([np.zeros((2, 1))] * 2, [0, 1])


def tone(pitch: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(RATE * rng.uniform(0.15, 0.25))) / RATE
    return 0.4 * np.sin(2 * np.pi * pitch * t) + 0.01 * rng.standard_normal(len(t))


def test_views_hold_the_plain_features_at_factor_one():
    front, x = FrontEnd(), tone(500.0, np.random.default_rng(0))
    views = warped_views(x, front, tta_factors(0.1, 3))
    assert len(views) == 3 and all(v.shape == views[1].shape for v in views)
    np.testing.assert_array_equal(views[1], front.features(x))
    assert not np.allclose(views[0], views[1])
    proba = view_proba(lambda X: np.array([[float(len(X)), 1.0]]), [[views[0]], [views[2]]])
    np.testing.assert_array_equal(proba, [[1.0, 1.0]])


def tone_folders(root, seed: int) -> list[str]:
    """``root``/train/low and /high: six tones of 300 and 1500 Hz each; their paths."""
    rng = np.random.default_rng(seed)
    files = []
    for label, pitch in (("low", 300.0), ("high", 1500.0)):
        (root / "train" / label).mkdir(parents=True)
        for k in range(6):
            path = root / "train" / label / f"{k}.wav"
            wavfile.write(path, RATE, (tone(pitch, rng) * 32767).astype("<i2"))
            files.append(str(path))
    return files


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("tta")
    files = tone_folders(root, 0)
    out = root / "m.safetensors"
    argv = ["train", "classify", "--train", str(root / "train"), "--hidden", "8"]
    assert main([*argv, "--epochs", "1", "--out", str(out)]) == 0
    return str(out), files, root


def test_audio_models_keep_the_default_and_average_the_views(model):
    path, files, _ = model
    clf, front = load(path), FrontEnd()
    assert (clf.tta_vtlp, clf.tta_warps) == (0.1, 5)
    plain = clf.predict_proba(featurise(files, front))
    got = audio_proba(clf, front, files, "t")
    views = [
        clf.predict_proba([front.features(read_wav(f, RATE), warp=a) for f in files])
        for a in (0.9, 0.95, 1.0, 1.05, 1.1)
    ]
    np.testing.assert_allclose(got, np.mean(views, axis=0), rtol=0, atol=1e-12)
    assert not np.allclose(got, plain)
    samples = [read_wav(f, RATE) for f in files]
    for vtlp, warps in ((0.1, 1), (0.0, 5)):  # one plain view: the plain prediction
        clf.set_params(tta_vtlp=vtlp, tta_warps=warps)
        np.testing.assert_array_equal(audio_proba(clf, front, files, "t"), plain)
        one = warped_proba(clf.predict_proba, samples, front, tta_factors(vtlp, warps).tolist())
        np.testing.assert_array_equal(one, plain)


def test_a_model_saved_before_tta_predicts_as_before(model, capsys):
    path, files, root = model
    ckpt = load_checkpoint(path)
    for name in ("tta_vtlp", "tta_warps", "members"):
        del ckpt.metadata["params"][name]
    old = SequenceClassifier._from_checkpoint(ckpt, path)
    assert (old.tta_vtlp, old.tta_warps, old.members) == (0.0, 1, 1)
    plain = old.predict_proba(featurise(files, FrontEnd()))
    np.testing.assert_array_equal(audio_proba(old, FrontEnd(), files, "t"), plain)
    capsys.readouterr()
    assert main(["predict", path, files[0], "--json"]) == 0  # the saved model: with its TTA
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    p = audio_proba(load(path), FrontEnd(), files[:1], "t")[0]
    assert row["probability"] == pytest.approx(float(p.max()), abs=1e-12)
    assert main(["evaluate", path, "--test", str(root / "train"), "--json"]) == 0


def test_cli_options_reach_the_model(model, tmp_path):
    _, _, root = model
    out = tmp_path / "n.safetensors"
    argv = ["train", "classify", "--train", str(root / "train"), "--hidden", "4", "--epochs", "1"]
    assert main([*argv, "--tta-vtlp", "0.2", "--tta-warps", "3", "--out", str(out)]) == 0
    clf = load(str(out))
    assert (clf.tta_vtlp, clf.tta_warps) == (0.2, 3)
