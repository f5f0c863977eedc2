"""`rnnkit train classify --speaker-norm`: audio features normalised over each speaker's
recordings (Kaldi's per-speaker CMVN) instead of each recording's, from a manifest's
``speaker`` column; evaluate groups --test by its ``speaker`` column (all one speaker without
it), predict takes the files given as one speaker; the same for the warped views of test-time
VTLP and the augmented copies of every training epoch."""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import replace

import numpy as np
import pytest
from scipy.io import wavfile

from rnnkit.audio.augment import WarpedEpochs
from rnnkit.audio.features import FrontEnd
from rnnkit.audio.files import featurise
from rnnkit.audio.wav import read_wav
from rnnkit.cli import main
from rnnkit.data.labelled import read_labelled, stratified_split
from rnnkit.errors import InputError, RnnkitWarning
from rnnkit.io.checkpoint import load
from rnnkit.tasks import classify
from rnnkit.tasks.classify import (
    MIN_SPEAKER_RECORDINGS,
    SpeakerEpochs,
    audio_proba,
    check_speaker_groups,
    front_end,
)

RATE = 8000


def write_speakers(folder, speakers=("ann", "bob"), per_label=4, column=True):
    """Two labels of noisy tones said by each speaker: ann's quiet and low, bob's loud and
    high (a voice and a microphone of their own); a manifest ``path,label[,speaker]``."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    rows = [["path", "label", "speaker"] if column else ["path", "label"]]
    for s, speaker in enumerate(speakers):
        gain, shift = (0.1, 1.0) if s % 2 == 0 else (0.6, 1.3)
        for label, pitch in (("low", 300.0), ("high", 1200.0)):
            for k in range(per_label):
                t = np.arange(int(RATE * rng.uniform(0.15, 0.25))) / RATE
                x = gain * np.sin(2 * np.pi * pitch * shift * t)
                x += 0.01 * rng.standard_normal(len(t))
                name = f"{label}_{speaker}_{k}.wav"
                wavfile.write(folder / name, RATE, (x * 32767).astype("<i2"))
                rows.append([name, label, speaker] if column else [name, label])
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return manifest


def train(tmp_path, manifest, *more):
    model = tmp_path / "m.safetensors"
    code = main(["train", "classify", "--train", str(manifest), "--speaker-norm", "--epochs",
                 "1", "--hidden", "8", "--out", str(model), *more])  # fmt: skip
    return code, model


def test_featurise_normalises_over_each_speakers_files():
    front = FrontEnd(norm="speaker")
    rng = np.random.default_rng(1)
    sounds = [0.3 * rng.standard_normal(1600) * (1 + 4 * (i % 2)) for i in range(4)]
    speakers = ["a", "b", "a", "b"]
    raw = [FrontEnd(norm="none").features(x) for x in sounds]
    got = [front.features(x) for x in sounds]
    for r, g in zip(raw, got, strict=True):  # norm="speaker" reads a file unnormalised
        np.testing.assert_array_equal(r, g)
    import rnnkit.audio.files as files

    original = files.read_wav
    files.read_wav = lambda p, rate, what="audio": sounds[int(p)]
    try:
        out = featurise(["0", "1", "2", "3"], front, speakers=speakers)
        alone = featurise(["0", "2"], front, speakers=["a", "a"])
        one = featurise(["0", "1", "2", "3"], front)  # no speakers: one
    finally:
        files.read_wav = original
    for s in ("a", "b"):
        frames = np.concatenate([out[i] for i, t in enumerate(speakers) if t == s]).astype(float)
        np.testing.assert_allclose(frames.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(frames.std(axis=0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(out[0], alone[0])  # b's files do not move a's
    np.testing.assert_array_equal(out[2], alone[1])
    assert not np.allclose(one[0], out[0], atol=1e-3)


def test_training_and_evaluation_group_by_the_speaker_column(tmp_path, capsys, monkeypatch):
    manifest = write_speakers(tmp_path / "data")
    code, model = train(tmp_path, manifest, "--test", str(manifest), "--json")
    assert code == 0, capsys.readouterr().err
    trained = capsys.readouterr().out.strip().splitlines()[-1]
    assert front_end(str(model)).norm == "speaker"
    clf = load(str(model))
    data = read_labelled(manifest, what="--test")
    assert data.speakers is not None and sorted(set(data.speakers)) == ["ann", "bob"]
    files, speakers = list(data.texts), data.speakers
    front = front_end(str(model))
    both = audio_proba(clf, front, files, "--test", speakers)  # test-time VTLP: 5 views
    for s in ("ann", "bob"):
        index = [i for i, t in enumerate(speakers) if t == s]
        alone = audio_proba(clf, front, [files[i] for i in index], "--test", None)
        np.testing.assert_allclose(both[index], alone, rtol=1e-5, atol=1e-6)
    lumped = audio_proba(clf, front, files, "--test", None)
    assert not np.allclose(both, lumped, atol=1e-4)
    # evaluate groups by the same column (what it hands the model is watched)
    seen = []

    def watched(*args, **kwargs):
        seen.append(args[4] if len(args) > 4 else kwargs.get("speakers"))
        return audio_proba(*args, **kwargs)

    monkeypatch.setattr(classify, "audio_proba", watched)
    code = main(["evaluate", str(model), "--test", str(manifest), "--json"])
    assert code == 0, capsys.readouterr().err
    assert seen == [speakers]
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["accuracy"] == pytest.approx(json.loads(trained)["test_accuracy"])
    grouped = clf.classes_[both.argmax(axis=1)] == np.asarray(data.labels)
    assert evaluated["accuracy"] == pytest.approx(float(grouped.mean()))


def test_plain_features_too_and_predict_takes_its_files_as_one_speaker(tmp_path, capsys):
    manifest = write_speakers(tmp_path / "data")
    code, model = train(tmp_path, manifest, "--tta-warps", "1")
    assert code == 0, capsys.readouterr().err
    clf, front = load(str(model)), front_end(str(model))
    ann = sorted(str(p) for p in (tmp_path / "data").glob("*_ann_*.wav"))
    by_column = audio_proba(clf, front, ann, "predict", ["ann"] * len(ann))
    capsys.readouterr()
    assert main(["predict", str(model), *ann]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(ann)
    labels = [line.split("\t")[1] for line in lines]
    assert labels == clf.classes_[by_column.argmax(axis=1)].tolist()
    printed = np.array([float(line.split("\t")[2]) for line in lines])
    np.testing.assert_allclose(printed, by_column.max(axis=1), atol=6e-5)
    per_recording = audio_proba(clf, replace(front, norm="utterance"), ann, "predict")
    assert np.abs(per_recording.max(axis=1) - printed).max() > 1e-3  # normalisation mattered


def test_train_classify_normalises_every_augmented_epoch_per_speaker(tmp_path, capsys, monkeypatch):
    manifest = write_speakers(tmp_path / "data")
    epochs = []
    original = classify.SpeakerEpochs.__call__

    def watched(self, epoch):
        feats = original(self, epoch)
        epochs.append((feats, list(self.speakers)))
        return feats

    monkeypatch.setattr(classify.SpeakerEpochs, "__call__", watched)
    code, _ = train(tmp_path, manifest, "--tta-warps", "1")
    assert code == 0, capsys.readouterr().err
    assert epochs  # the augmented epochs went through it
    feats, speakers = epochs[0]
    assert len(feats) == len(speakers) and sorted(set(speakers)) == ["ann", "bob"]
    for s in ("ann", "bob"):
        frames = np.concatenate([f for f, t in zip(feats, speakers, strict=True) if t == s])
        np.testing.assert_allclose(frames.astype(float).mean(axis=0), 0.0, atol=1e-4)


def test_the_held_out_tenth_keeps_its_speakers_whole_statistics(tmp_path, capsys):
    """Without --valid, the validation recordings are normalised with their whole speaker's
    statistics (as early stopping saw them), not over the tenth alone: no small-group warning,
    and the reported accuracy is the one of that grouping."""
    manifest = write_speakers(tmp_path / "data", per_label=10)
    code, model = train(tmp_path, manifest, "--tta-warps", "1", "--json")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "fewer than" not in captured.err
    reported = json.loads(captured.out.strip().splitlines()[-1])["val_accuracy"]
    data = read_labelled(manifest)
    _, valid_i = stratified_split(data.labels, 0.1, 0)
    clf, front = load(str(model)), front_end(str(model))
    proba = audio_proba(clf, front, list(data.texts), "--valid", data.speakers)[valid_i]
    right = clf.classes_[proba.argmax(axis=1)] == np.asarray(data.labels)[valid_i]
    assert reported == pytest.approx(float(right.mean()))


def test_each_training_epoch_is_normalised_over_each_speakers_copies(tmp_path):
    manifest = write_speakers(tmp_path / "data", per_label=2)
    data = read_labelled(manifest)
    samples = [read_wav(p, RATE) for p in data.texts]
    epochs = SpeakerEpochs(WarpedEpochs(samples, FrontEnd(norm="speaker"), 0.1, 0), data.speakers)
    for e in (0, 1):
        feats = epochs(e)
        for s in ("ann", "bob"):
            index = [i for i, t in enumerate(data.speakers) if t == s]
            frames = np.concatenate([feats[i] for i in index]).astype(float)
            np.testing.assert_allclose(frames.mean(axis=0), 0.0, atol=1e-4)
    assert not np.allclose(epochs(0)[0], epochs(1)[0])  # a fresh warp every epoch


def test_bad_input_is_one_line_naming_what_is_missing(tmp_path, capsys):
    no_column = write_speakers(tmp_path / "plain", column=False)
    code, _ = train(tmp_path, no_column)
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err
    assert "--speaker-norm" in err and "'speaker' column" in err and "plain" in err
    text = tmp_path / "text.csv"
    text.write_text("text,label\n" + "good film,pos\nbad film,neg\n" * 3)
    code, _ = train(tmp_path, text)
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err and "--speaker-norm" in err and "text" in err
    manifest = write_speakers(tmp_path / "data")
    rows = manifest.read_text().splitlines()
    rows[2] = rows[2].rsplit(",", 1)[0] + ","
    manifest.write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError, match="line 3 has an empty 'speaker'"):
        read_labelled(manifest, what="--train")
    with pytest.raises(InputError, match="norm must be 'utterance', 'speaker' or 'none'"):
        FrontEnd(norm="global")
    manifest = write_speakers(tmp_path / "ok")
    code, _ = train(tmp_path, manifest, "--valid", str(no_column))
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err and "--valid" in err and "'speaker' column" in err
    code, _ = train(tmp_path, manifest, "--label-column", "speaker")
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err and "--label-column" in err


def test_too_few_recordings_of_a_speaker_is_a_one_line_warning(tmp_path, capsys):
    """And a --test without a speaker column is said to be taken as one speaker."""
    manifest = write_speakers(tmp_path / "data")
    code, model = train(tmp_path, manifest, "--tta-warps", "1")
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    two = sorted(str(p) for p in (tmp_path / "data").glob("*_ann_*.wav"))[:2]
    assert main(["predict", str(model), *two]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(err) == 1 and "takes the 2 file(s) given as one speaker's" in err[0]
    plain = write_speakers(tmp_path / "plain", column=False)  # 16 files, no speaker column
    assert main(["evaluate", str(model), "--test", str(plain)]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(err) == 1 and "has no 'speaker' column: its 16 file(s)" in err[0]
    with pytest.warns(RnnkitWarning, match=r"1 speaker\(s\) have fewer than 10 recordings"):
        check_speaker_groups(["a"] * MIN_SPEAKER_RECORDINGS + ["b"] * 3, 13, "--test")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_speaker_groups(["a"] * MIN_SPEAKER_RECORDINGS, MIN_SPEAKER_RECORDINGS, "--test")
        check_speaker_groups(None, MIN_SPEAKER_RECORDINGS, "predict")
