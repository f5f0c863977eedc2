"""Ensembles of transcribers (`Transcriber(members=N)`, `train transcribe --ensemble N`): one
member is the plain model, member k is the network seed+k trains alone, the combined posteriors
stream to the offline greedy transcript, checkpoints round-trip, and word voting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnkit.audio import FrontEnd
from rnnkit.ctc_combine import combine_log_probs, ctc_align, vote_words, word_confidences
from rnnkit.errors import InputError
from rnnkit.estimators.transcriber import Transcriber
from rnnkit.estimators.transcriber_stream import LiveTranscriber
from rnnkit.io.checkpoint import load, save
from rnnkit.models.ensemble import Ensemble
from test_speech import RATE, _run, two_tone

SMALL = {"hidden_size": 16, "num_layers": 1, "stack": 1, "batch_size": 8, "lr": 1e-2}


@pytest.fixture(scope="module")
def tones():
    rng = np.random.default_rng(0)
    data = [two_tone(rng, int(rng.integers(1, 4))) for _ in range(40)]
    front = FrontEnd(norm="none")
    X = [front.features(x) for x, _ in data]
    y = [text for _, text in data]
    return front, data, X, y


@pytest.fixture(scope="module")
def pair(tones):
    """An ensemble of two (seeds 3 and 4) and the network of seed 4 fitted alone."""
    _, _, X, y = tones
    ensemble = Transcriber(**SMALL, epochs=6, members=2, seed=3, patience=None)
    ensemble.fit(X[:30], y[:30], X[30:], y[30:])
    alone = Transcriber(**SMALL, epochs=6, seed=4, patience=None)
    alone.fit(X[:30], y[:30], X[30:], y[30:])
    return ensemble, alone


def test_an_ensemble_of_one_equals_the_plain_model(tones):
    _, _, X, y = tones
    plain = Transcriber(**SMALL, epochs=2, seed=0).fit(X[:30], y[:30], X[30:], y[30:])
    one = Transcriber(**SMALL, epochs=2, seed=0, members=1).fit(X[:30], y[:30], X[30:], y[30:])
    wrapped = Transcriber(**SMALL, epochs=2, seed=0)
    wrapped._restore(plain._learned(), Ensemble(plain.model_))
    for how in ("prob", "logprob", "vote"):
        wrapped.combine = how
        for a, b, c in zip(plain.log_probs(X), one.log_probs(X), wrapped.log_probs(X), strict=True):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-12)
            np.testing.assert_allclose(c, a, rtol=0, atol=1e-12)
        assert wrapped.predict(X, beam=4) == plain.predict(X, beam=4)


def test_identical_members_combine_to_the_member():
    rng = np.random.default_rng(1)
    lp = np.log(rng.dirichlet(np.ones(5), size=7))
    for how in ("prob", "logprob"):
        np.testing.assert_allclose(combine_log_probs([lp, lp, lp], how), lp, rtol=0, atol=1e-12)
    with pytest.raises(InputError, match="how must be 'prob' or 'logprob'"):
        combine_log_probs([lp, lp], "mean")


def test_probabilities_and_log_probabilities_average_differently():
    a = np.log(np.array([[0.9, 0.1], [0.5, 0.5]]))
    b = np.log(np.array([[0.1, 0.9], [0.5, 0.5]]))
    np.testing.assert_allclose(np.exp(combine_log_probs([a, b], "prob")), 0.5, atol=1e-12)
    lop = np.exp(combine_log_probs([a, np.log(np.array([[0.5, 0.5], [0.8, 0.2]]))], "logprob"))
    geo = np.sqrt(np.array([0.9 * 0.5, 0.1 * 0.5]))
    np.testing.assert_allclose(lop[0], geo / geo.sum(), atol=1e-12)
    np.testing.assert_allclose(lop.sum(axis=1), 1.0, atol=1e-12)


def test_member_k_is_the_network_seed_plus_k_trains_alone(pair, tones):
    ensemble, alone = pair
    assert isinstance(ensemble.model_, Ensemble) and len(ensemble.networks) == 2
    got, want = ensemble.networks[1].state_dict(), alone.model_.state_dict()
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])
    _, _, X, _ = tones
    member = ensemble.member(1)
    for a, b in zip(member.log_probs(X), alone.log_probs(X), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match="expected 0 <= k < 2, got 2"):
        ensemble.member(2)


def test_the_ensemble_averages_its_members_probabilities(pair, tones):
    ensemble, _ = pair
    _, _, X, _ = tones
    assert ensemble.combine == "vote"  # the default: log_probs then averages probabilities
    members = [ensemble.member(k).log_probs(X[:5]) for k in range(2)]
    for lp, a, b in zip(ensemble.log_probs(X[:5]), *members, strict=True):
        np.testing.assert_allclose(np.exp(lp), (np.exp(a) + np.exp(b)) / 2, atol=1e-12)


@pytest.mark.parametrize("how", ["prob", "logprob"])
def test_streaming_an_ensemble_equals_offline_greedy(pair, tones, how):
    ensemble, _ = pair
    front, data, X, _ = tones
    chosen, ensemble.combine = ensemble.combine, how
    try:
        offline = ensemble.predict(X)
        live = LiveTranscriber(ensemble, front)
        rng = np.random.default_rng(5)
        for (x, _), expected in zip(data, offline, strict=True):
            got, i = [], 0
            while i < len(x):
                n = int(rng.integers(1, 400))
                got += live.push(x[i : i + n])
                i += n
            got += live.flush()
            assert "".join(c for c, _ in got) == expected
    finally:
        ensemble.combine = chosen


def test_an_ensemble_checkpoint_round_trips(pair, tones, tmp_path):
    ensemble, _ = pair
    _, _, X, _ = tones
    save(ensemble, tmp_path / "e.safetensors")
    back = load(tmp_path / "e.safetensors")
    assert isinstance(back, Transcriber) and back.members == 2 and back.combine == "vote"
    for a, b in zip(back.log_probs(X), ensemble.log_probs(X), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_checkpoint_from_before_ensembles_loads_as_one_network(tones, tmp_path):
    _, _, X, y = tones
    plain = Transcriber(**SMALL, epochs=1).fit(X[:30], y[:30], X[30:], y[30:])
    params = plain.get_params()
    del params["members"], params["combine"]  # as written before the two parameters existed
    plain.get_params = lambda deep=True: params  # type: ignore[method-assign]
    save(plain, tmp_path / "old.safetensors")
    back = load(tmp_path / "old.safetensors")
    assert back.members == 1 and back.combine == "prob" and len(back.networks) == 1
    assert back.predict(X) == plain.predict(X)


def test_bad_members_and_combine_give_one_line_errors(tones):
    _, _, X, y = tones
    with pytest.raises(InputError, match="members must be an integer >= 1, got 0"):
        Transcriber(members=0).fit(X, y)
    with pytest.raises(InputError, match="combine must be one of"):
        Transcriber(combine="mean").fit(X, y)


def test_word_voting_keeps_what_most_members_say():
    assert vote_words(["one two three"]) == "one two three"
    assert vote_words(["one two three", "one too three", "one two three"]) == "one two three"
    # a word two of three members drop is dropped; one only one member inserts is not
    assert vote_words(["one two six", "one six", "one six nine"]) == "one six"
    assert vote_words(["four five", "four eight five", "four eight five"]) == "four eight five"
    assert vote_words(["", "", "one"]) == ""
    assert vote_words(["seven", "eight", "nine"]) in {"seven", "eight", "nine"}


def test_train_transcribe_ensemble_then_transcribe_and_stream(tmp_path, capsys):
    from scipy.io import wavfile

    rng = np.random.default_rng(2)
    lines = ["path,transcript"]
    for k in range(16):
        x, text = two_tone(rng, 2)
        wavfile.write(tmp_path / f"u{k}.wav", RATE, np.round(x * 32767).astype(np.int16))
        lines.append(f"u{k}.wav,{text}")
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    model = str(tmp_path / "t.safetensors")
    code, _, err = _run(["train", "transcribe", "--train", str(tmp_path / "t.csv"),
                         "--epochs", "1", "--hidden", "8", "--layers", "1", "--ensemble", "2",
                         "--out", model], capsys)  # fmt: skip
    assert code == 0, err
    assert "ensemble member 2/2: seed 1" in err
    back = load(model)
    assert isinstance(back, Transcriber) and back.members == 2 and len(back.networks) == 2
    wav = str(tmp_path / "u0.wav")
    code, out, err = _run(["transcribe", model, wav, "--beam", "2", "--lexicon",
                           "--test", str(tmp_path / "t.csv"), "--json"], capsys)  # fmt: skip
    assert code == 0, err
    assert out.startswith(wav + "\t") and '"wer"' in out.splitlines()[-1]
    code, out, err = _run(["stream", model, "--audio", wav, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["frames"] > 10


def test_a_voting_ensemble_predicts_the_vote_over_its_members(pair, tones):
    ensemble, _ = pair
    _, _, X, _ = tones
    for beam, lexicon in ((1, False), (4, True)):
        members = [ensemble.member(k).predict(X, beam, lexicon) for k in range(2)]
        want = [vote_words(texts) for texts in zip(*members, strict=True)]
        assert ensemble.predict(X, beam, lexicon) == want


# -- confidence-weighted voting (combine="weighted") -------------------------------------------


def _best_path_by_enumeration(lp: np.ndarray, labels: list[int]) -> tuple[float, list[int]]:
    """The most probable frame path (classes per frame) whose CTC collapse is ``labels``."""
    import itertools

    best, path = -np.inf, []
    for p in itertools.product(range(lp.shape[1]), repeat=lp.shape[0]):
        collapsed = [c for k, c in enumerate(p) if c and (k == 0 or c != p[k - 1])]
        score = float(sum(lp[t, c] for t, c in enumerate(p)))
        if collapsed == labels and score > best:
            best, path = score, list(p)
    return best, path


@pytest.mark.parametrize("labels", [[1, 2], [1, 1], [2], [2, 1, 2]])
def test_forced_alignment_is_the_best_path_spelling_the_labels(labels):
    rng = np.random.default_rng(len(labels) + labels[0])
    lp = np.log(rng.dirichlet(np.ones(3), size=6))
    spans = ctc_align(lp, labels)
    best, path = _best_path_by_enumeration(lp, labels)
    assert spans is not None and len(spans) == len(labels)
    # the spans' frames carry their labels on the best path, the frames between them blank
    # or a repeat of the label before: the same path, so the same score
    got = np.zeros(len(lp), dtype=np.int64)
    for (a, b), c in zip(spans, labels, strict=True):
        assert 0 <= a < b <= len(lp)
        got[a:b] = c
    assert float(sum(lp[t, c] for t, c in enumerate(got))) == pytest.approx(best, abs=1e-12)
    assert [int(c) for c in got] == path
    assert ctc_align(lp[:1], [1, 1]) is None  # one frame cannot spell two labels, nor a repeat
    assert ctc_align(lp[:2], [1, 1]) is None


def test_word_confidences_come_from_the_letters_peaks():
    # "ab a" (a=1, b=2, space=3) spelt by spikes of probability 0.9, 0.6 and 0.5
    p = np.full((9, 4), 0.02)
    p[:, 0] = 0.94  # blank
    for t, c, v in ((1, 1, 0.9), (3, 2, 0.6), (5, 3, 0.8), (7, 1, 0.5)):
        p[t] = (1 - v) / 3
        p[t, c] = v
    conf = word_confidences(np.log(p), [[1, 2], [1]], separator=3)
    assert conf == pytest.approx([np.sqrt(0.9 * 0.6), 0.5])
    assert word_confidences(np.log(p), [[1], [2]], separator=None) == pytest.approx([0.9, 0.6])
    assert word_confidences(np.log(p[:1]), [[1], [1]], separator=3) == [0.0, 0.0]  # too short


def test_weighted_voting_lets_a_sure_member_outvote_two_unsure_ones():
    texts = ["one two three", "one too three", "one too three"]
    assert vote_words(texts) == "one too three"
    sure = [[0.9, 0.9, 0.9], [0.9, 0.3, 0.9], [0.9, 0.4, 0.9]]
    assert vote_words(texts, sure) == "one two three"
    # a word two members drop: their votes for none weigh the mean of the slot's word votes
    texts = ["one two six", "one six", "one six"]
    assert vote_words(texts, [[0.9, 0.9, 0.9], [0.9, 0.9], [0.9, 0.9]]) == "one six"
    with pytest.raises(InputError, match="vote_words: 2 words but 1 confidences"):
        vote_words(["one two", "one"], [[0.5], [0.5]])


@pytest.mark.parametrize(
    "texts",
    [
        ["one two three", "one too three", "one two three"],
        ["one two six", "one six", "one six nine"],
        ["four five", "four eight five", "four eight five"],
        ["", "", "one"],
        ["seven", "eight", "nine"],
        ["one two", "two one", "one", "one two three", "three"],
    ],
)
def test_weighted_voting_with_equal_confidences_is_the_plain_vote(texts):
    for c in (1.0, 0.7):
        assert vote_words(texts, [[c] * len(t.split()) for t in texts]) == vote_words(texts)


def test_a_weighted_ensemble_votes_with_its_members_confidences(pair, tones, tmp_path):
    ensemble, _ = pair
    front, data, X, _ = tones
    chosen, ensemble.combine = ensemble.combine, "weighted"
    try:
        for beam, lexicon in ((1, False), (4, True)):
            lps = ensemble.member_log_probs(X)
            members = [ensemble.member(k).predict(X, beam, lexicon) for k in range(2)]
            confs = [ensemble.word_confidences(lp, m) for lp, m in zip(lps, members, strict=True)]
            want = [
                vote_words([m[i] for m in members], [c[i] for c in confs]) for i in range(len(X))
            ]
            assert ensemble.predict(X, beam, lexicon) == want
        for conf, text in zip(confs[0], members[0], strict=True):
            assert len(conf) == len(text.split()) and all(0 < c <= 1 for c in conf)
        # a stream cannot vote: it averages probabilities, as for "vote"
        offline = ensemble.decode(ensemble.log_probs(X[:3]))
        live = LiveTranscriber(ensemble, front)
        for (x, _), expected in zip(data[:3], offline, strict=True):
            got = live.push(x) + live.flush()
            assert "".join(c for c, _ in got) == expected
        save(ensemble, tmp_path / "w.safetensors")
        back = load(tmp_path / "w.safetensors")
        assert back.combine == "weighted" and back.predict(X) == ensemble.predict(X)
    finally:
        ensemble.combine = chosen


def test_train_transcribe_combine_weighted_is_saved_and_used(tmp_path, capsys):
    from scipy.io import wavfile

    rng = np.random.default_rng(3)
    lines = ["path,transcript"]
    for k in range(12):
        x, text = two_tone(rng, 2)
        wavfile.write(tmp_path / f"u{k}.wav", RATE, np.round(x * 32767).astype(np.int16))
        lines.append(f"u{k}.wav,{text}")
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    model = str(tmp_path / "w.safetensors")
    code, _, err = _run(["train", "transcribe", "--train", str(tmp_path / "t.csv"),
                         "--epochs", "1", "--hidden", "8", "--layers", "1", "--ensemble", "3",
                         "--combine", "weighted", "--out", model], capsys)  # fmt: skip
    assert code == 0, err
    back = load(model)
    assert back.combine == "weighted" and len(back.networks) == 3
    code, out, err = _run(["transcribe", model, "--test", str(tmp_path / "t.csv"), "--json"],
                          capsys)  # fmt: skip
    assert code == 0, err
    assert "wer" in json.loads(out.splitlines()[-1])
