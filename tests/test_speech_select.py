"""`Transcriber(select=)`: which epoch's weights are kept (the lowest validation loss, greedy
WER, or lexicon-snapped WER); a checkpoint from before the option loads with the loss."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit.errors import InputError
from rnnkit.estimators.transcriber import Transcriber


def _data(seed: int, n: int) -> tuple[list[np.ndarray], list[str]]:
    """Utterances of random 'ab'/'ba' words: each letter a few frames of its own mean."""
    rng = np.random.default_rng(seed)
    letters = {"a": np.array([2.0, 0, 0, 0]), "b": np.array([0, 2.0, 0, 0]), " ": np.zeros(4)}
    X, y = [], []
    for _ in range(n):
        text = " ".join(rng.choice(["ab", "ba", "a", "b"], int(rng.integers(1, 3))))
        frames = [letters[c] for c in text for _ in range(int(rng.integers(2, 4)))]
        X.append(np.asarray(frames) + 0.8 * rng.standard_normal((len(frames), 4)))
        y.append(text)
    return X, y


@pytest.fixture(scope="module")
def fitted() -> dict[str, Transcriber]:
    X, y = _data(0, 24)
    Xv, yv = _data(1, 16)
    out = {}
    for select in ("loss", "wer", "lexicon"):
        model = Transcriber(
            hidden_size=16, num_layers=1, stack=1, epochs=14, batch_size=4, lr=5e-2,
            patience=None, select=select,
        )  # fmt: skip
        out[select] = model.fit(X, y, Xv, yv)
    out["valid"] = (Xv, yv)  # type: ignore[assignment]
    return out


def test_each_selection_keeps_the_epoch_best_by_its_measure(fitted):
    Xv, yv = fitted["valid"]
    loss, wer = fitted["loss"], fitted["wer"]
    # the same training run (no early stopping): the epochs differ only in which is kept
    assert loss.history_["val"] == wer.history_["val"]
    losses = [v for _, v in loss.history_["val"]]
    wers = [v for _, v in wer.history_["val_wer"]]
    assert loss.best_val_loss_ == min(losses)
    assert wer.best_val_wer_ == min(wers)
    # of the epochs of the lowest WER, the one of the lowest loss
    tied = [v for v, w in zip(losses, wers, strict=True) if w == min(wers)]
    assert wer.best_val_loss_ == min(tied)
    # on this run the lowest loss and the lowest WER are different epochs
    assert wer.best_val_wer_ < loss.best_val_wer_ and wer.best_val_loss_ > loss.best_val_loss_
    # the kept weights are that epoch's: they score its WER again
    assert wer.score(Xv, yv)["wer"] == pytest.approx(min(wers))
    assert wer.score(Xv, yv)["wer"] <= loss.score(Xv, yv)["wer"]
    lexicon = fitted["lexicon"]
    snapped = lexicon.score(Xv, yv, lexicon=True)["wer"]
    assert snapped <= loss.score(Xv, yv, lexicon=True)["wer"]
    assert snapped <= wer.score(Xv, yv, lexicon=True)["wer"]


def test_an_unknown_selection_is_a_one_line_error():
    X, y = _data(0, 4)
    with pytest.raises(
        InputError, match=r"select must be one of \['loss', 'wer', 'lexicon'\]"
    ) as e:
        Transcriber(select="bleu", epochs=1).fit(X, y)
    assert "\n" not in str(e.value) and "'bleu'" in str(e.value)


def test_a_checkpoint_from_before_select_and_warps_loads_as_it_was(fitted, tmp_path):
    model = fitted["wer"]
    meta = model._metadata()
    del meta["params"]["select"], meta["params"]["warps"]  # as before the options existed
    path = tmp_path / "old.safetensors"
    rnnkit.save(model.model_, path, metadata=meta)
    old = rnnkit.load(path)
    assert old.select == "loss" and old.warps == 1
    rnnkit.save(model, tmp_path / "new.safetensors")
    assert rnnkit.load(tmp_path / "new.safetensors").select == "wer"
