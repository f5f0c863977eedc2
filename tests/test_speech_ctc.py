"""CTC decoding constrained to a closed vocabulary (`ctc_lexicon_beam_decode`) and the
`Transcriber`'s use of it: beam 1 against greedy, words only from the lexicon, the separator
put in between words, word units, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from by_path import benchmark
from rnnkit.ctc_decode import ctc_beam_decode, ctc_greedy_decode, ctc_lexicon_beam_decode
from rnnkit.errors import InputError
from rnnkit.estimators.transcriber import Transcriber

SPACE, A, B, C = 1, 2, 3, 4  # class 0 is the blank
WORDS = [[A, B], [C], [B, B]]  # "ab", "c", "bb"


def peaked(path: list[int], n_classes: int = 5, p: float = 0.9) -> np.ndarray:
    """(T, 1, C) log-probabilities: class ``path[t]`` has ``p`` at step ``t``."""
    probs = np.full((len(path), 1, n_classes), (1 - p) / (n_classes - 1))
    for t, c in enumerate(path):
        probs[t, 0, c] = p
    return np.log(probs)


def test_beam_of_one_equals_greedy_when_greedy_spells_lexicon_words():
    rng = np.random.default_rng(0)
    for _ in range(20):
        path: list[int] = [0]
        for k in range(int(rng.integers(1, 5))):
            if k:
                path += [SPACE] * int(rng.integers(1, 3)) + [0] * int(rng.integers(0, 2))
            for c in WORDS[int(rng.integers(0, len(WORDS)))]:
                path += [c] * int(rng.integers(1, 3)) + [0]  # a blank between equal labels
        lp = peaked(path)
        greedy = ctc_greedy_decode(lp)
        assert ctc_lexicon_beam_decode(lp, WORDS, SPACE, beam=1) == greedy
        assert ctc_lexicon_beam_decode(lp, WORDS, SPACE, beam=8) == ctc_beam_decode(lp, beam=8)


def test_only_lexicon_words_come_out():
    rng = np.random.default_rng(1)
    allowed = {tuple(w) for w in WORDS}
    for _ in range(30):
        lp = np.log(rng.dirichlet(np.ones(5) * 0.3, size=(25, 1)))
        for beam in (1, 4):
            labels = ctc_lexicon_beam_decode(lp, WORDS, SPACE, beam=beam)[0]
            words = [tuple(map(int, w)) for w in _split(labels, SPACE)]
            assert all(w in allowed for w in words), labels


def test_a_misspelt_greedy_word_is_decoded_as_the_likeliest_lexicon_word():
    # greedy reads "abb c" (not a word); with "abb" out, "ab c" and "bb c" remain, and the
    # first "a" is much likelier than a blank there: "ab c"
    lp = peaked([A, B, 0, B, 0, SPACE, C])
    assert ctc_greedy_decode(lp) == [[A, B, B, SPACE, C]]
    assert ctc_lexicon_beam_decode(lp, WORDS, SPACE, beam=8) == [[A, B, SPACE, C]]


def test_words_may_follow_each_other_without_the_separator():
    # "ab" then "c" with no space decoded: the separator is put in
    lp = peaked([0, A, B, 0, C, 0])
    assert ctc_lexicon_beam_decode(lp, WORDS, SPACE, beam=4) == [[A, B, SPACE, C]]


def test_word_units_need_no_separator_and_a_blank_between_repeats():
    words = [[1], [2], [3]]
    lp = peaked([1, 1, 0, 1, 2, 0, 3], n_classes=4)
    assert ctc_lexicon_beam_decode(lp, words, None, beam=4) == ctc_greedy_decode(lp)
    assert ctc_lexicon_beam_decode(lp, [[1], [3]], None, beam=4) == [[1, 1, 3]]


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ([[A, 0]], "other than the blank 0"),
        ([[A, SPACE]], "and the separator 1"),
        ([[7]], r"labels in \[0, 5\)"),
        ([[]], "got \\[\\]"),
        ([], "at least one word"),
    ],
)
def test_bad_lexicons_give_one_line_errors(words, message):
    with pytest.raises(InputError, match=message) as info:
        ctc_lexicon_beam_decode(peaked([A]), words, SPACE)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="beam >= 1"):
        ctc_lexicon_beam_decode(peaked([A]), WORDS, SPACE, beam=0)


def test_transcriber_lexicon_beam_keeps_to_the_training_words(monkeypatch):
    model = Transcriber()
    model.units, model.alphabet_ = "char", " abc"
    model.words_ = ["ab", "bb", "c"]
    assert model.lexicon_labels() == ([[A, B], [B, B], [C]], SPACE)
    lp = peaked([A, B, 0, B, 0, SPACE, C])[:, 0]
    monkeypatch.setattr(model, "log_probs", lambda X: [lp for _ in X])
    assert model.predict([None], beam=1) == ["abb c"]
    assert model.predict([None], beam=8, lexicon=True) == ["ab c"]
    words = Transcriber(units="word")
    words.alphabet_ = words.words_ = ("ab", "bb", "c")
    assert words.lexicon_labels() == ([[1], [2], [3]], None)


def _split(labels: list[int], separator: int) -> list[list[int]]:
    words: list[list[int]] = [[]]
    for c in labels:
        if c == separator:
            words.append([])
        else:
            words[-1].append(c)
    return [w for w in words if w]


def test_utterance_normalisation_is_offline_only():
    from rnnkit.audio import FrontEnd
    from rnnkit.estimators.transcriber_stream import LiveTranscriber

    rng = np.random.default_rng(0)
    X = [rng.normal(3.0, 2.0, size=(int(rng.integers(20, 40)), 6)) for _ in range(8)]
    y = ["ab", "ba", "a", "b"] * 2
    model = Transcriber(hidden_size=8, num_layers=1, norm="utterance", epochs=1, stack=1)
    model.fit(X, y, X[:2], y[:2])
    z = model.normalise(X[0])
    assert np.allclose(z.mean(axis=0), 0, atol=1e-5) and np.allclose(z.std(axis=0), 1, atol=1e-4)
    with pytest.raises(InputError, match="whole utterance's statistics") as info:
        LiveTranscriber(model, FrontEnd(norm="none"))
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="norm must be 'running', 'global' or 'utterance'"):
        Transcriber(norm="cmvn", epochs=1).fit(X, y)


def _eval_speech() -> Any:
    """benchmarks/eval_speech.py as a module (it is a script, not a package)."""
    return benchmark("eval_speech")


def test_eval_speech_validates_on_the_speaker_after_the_test_speaker(tmp_path):
    module = _eval_speech()
    strings = tmp_path / "strings"
    strings.mkdir()
    header = "path,transcript,speaker"
    rows = [f"/x/{s}_{i}.wav,one two,{s}" for s in ("ann", "bob", "eve", "zed") for i in range(3)]
    (strings / "train.csv").write_text("\n".join([header, *rows]) + "\n")
    (strings / "test.csv").write_text(f"{header}\n/x/cat_0.wav,one,cat\n/x/cat_1.wav,two,cat\n")
    train, valid = module.speaker_manifests(strings, tmp_path)
    kept = Path(train).read_text().splitlines()
    held = Path(valid).read_text().splitlines()
    assert kept[0] == held[0] == header
    assert {r.rsplit(",", 1)[1] for r in held[1:]} == {"eve"}  # the one after "cat"
    assert len(kept) == 10 and "eve" not in "".join(kept)
    # the held speaker's first strings, as many as the test speaker has
    assert held[1:] == [f"/x/eve_{i}.wav,one two,eve" for i in range(2)]


def test_eval_speech_never_validates_on_a_synthetic_voice(tmp_path):
    module = _eval_speech()
    real, mixed = tmp_path / "real" / "strings", tmp_path / "mixed" / "strings"
    header = "path,transcript,speaker"
    test = f"{header}\n/x/yweweler_0.wav,one,yweweler\n"
    for folder, names in ((real, ("george", "theo")), (mixed, ("george", "theo", "espaa"))):
        folder.mkdir(parents=True)
        rows = [f"/x/{s}_{i}.wav,one two,{s}" for s in names for i in range(3)]
        (folder / "train.csv").write_text("\n".join([header, *rows]) + "\n")
        (folder / "test.csv").write_text(test)
    # after "yweweler" the order wraps to the first name: a synthetic voice's, among the mixed
    assert module.held_speaker(mixed) == "espaa"
    held = module.held_speaker(real)
    assert held == "george"
    train, valid = module.speaker_manifests(mixed, tmp_path, held)
    assert {r.rsplit(",", 1)[1] for r in Path(valid).read_text().splitlines()[1:]} == {"george"}
    assert "espaa" in Path(train).read_text() and "george" not in Path(train).read_text()


def test_eval_speech_synthetic_strings_default_to_the_validated_recipe_with_synthetic():
    module = _eval_speech()
    voices = Path("/voices")
    assert module.synthetic_strings(None, voices) == module.SYNTHETIC_STRINGS == 30
    assert module.synthetic_strings(None, None) == 0  # the four real voices alone, as before
    assert module.synthetic_strings(0, voices) == 0  # 0: none, the classify-only behaviour
    assert module.synthetic_strings(12, voices) == 12
    with pytest.raises(SystemExit, match="expected 0 or more, got -1"):
        module.synthetic_strings(-1, voices)
    with pytest.raises(SystemExit, match="needs --synthetic DIR"):
        module.synthetic_strings(5, None)


def test_eval_speech_adds_the_training_speakers_clips(tmp_path):
    module = _eval_speech()
    train = tmp_path / "train.csv"
    train.write_text("path,transcript,speaker\n/x/ann_0.wav,one two,ann\n")
    clips = tmp_path / "all.csv"
    clips.write_text("path,label,speaker\n/c/3_ann_0.wav,3,ann\n/c/4_bob_0.wav,4,bob\n")
    lines = Path(module.with_clips(train, clips, tmp_path)).read_text().splitlines()
    assert lines == [
        "path,transcript,speaker",
        "/x/ann_0.wav,one two,ann",
        "/c/3_ann_0.wav,three,ann",
    ]
