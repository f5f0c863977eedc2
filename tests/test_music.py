"""Music: the published NLL, the NADE output, MIDI in and out, generation, bad input, the CLI."""

from __future__ import annotations

import itertools
import json
import math
import re

import numpy as np
import pytest

import rnnkit
from rnnkit.cli import main
from rnnkit.data.music import KEYS, LOWEST, read_json, read_midi, read_music, write_midi
from rnnkit.errors import InputError
from rnnkit.estimators.music import MusicModel, MusicObjective
from rnnkit.losses import bce_with_logits
from rnnkit.models.music import PianoRollNet


def _constant_model(p: dict[int, float]) -> MusicModel:
    """A fitted MusicModel whose every step predicts key probabilities ``p`` (pitch -> p,
    others 0.5): recurrent and output weights zero, the output bias the logits."""
    net = PianoRollNet("gru", 4, dtype="float64")
    for w in net.named_parameters().values():
        w[...] = 0.0
    bias = net.head.params["bias"]
    for pitch, prob in p.items():
        bias[pitch - LOWEST] = math.log(prob / (1 - prob))
    model = MusicModel()
    model._restore({"openings": [[60]]}, net)
    return model


def test_nll_is_the_published_metric_on_a_hand_computed_case():
    model = _constant_model({60: 0.9, 64: 0.2})
    a = [[60], [60, 64], []]  # targets: {60, 64}, {}
    b = [[64], [60]]  # target: {60}
    half = (KEYS - 2) * math.log(2)  # the 86 keys at p = 0.5, on or off
    steps = [
        -math.log(0.9) - math.log(0.2) + half,  # {60, 64}
        -math.log(0.1) - math.log(0.8) + half,  # {}
        -math.log(0.9) - math.log(0.8) + half,  # {60}
    ]
    # averaged over the 3 predicted steps (not per piece); the first step of a piece is read only
    assert model.nll([a, b]) == pytest.approx(sum(steps) / 3, rel=1e-12)
    assert model.score([a, b]) == pytest.approx(-sum(steps) / 3, rel=1e-12)


def test_weight_noise_takes_the_gradient_at_noisy_weights_and_leaves_them_clean():
    rng = np.random.default_rng(2)
    rolls = [(rng.random((int(n), KEYS)) < 0.05).astype(np.uint8) for n in (7, 9, 8, 6)]
    net = PianoRollNet("gru", 6, dtype="float64", seed=1)
    clean = net.state_dict()
    noisy = MusicObjective(net, rolls, rolls, 2, 0, seed=3, weight_noise=0.1)
    noise = noisy.noise(0)
    # every weight matrix, no bias; the same noise again for the same step, other noise later
    assert set(noise) == {k for k, w in clean.items() if w.ndim == 2}
    assert all(np.array_equal(noise[k], e) for k, e in noisy.noise(0).items())
    assert not np.allclose(noise["head.weight"], noisy.noise(1)["head.weight"])
    net.zero_grad()
    loss = noisy.train_step(0)[0]
    got = {k: g.copy() for k, g in net.named_grads().items()}
    for k, w in net.named_parameters().items():  # the weights are back to the clean ones
        np.testing.assert_array_equal(w, clean[k])
    # the same batch without noise at the clean weights plus that noise: the same gradient
    plain = MusicObjective(net, rolls, rolls, 2, 0, seed=3)
    for k, e in noise.items():
        net.named_parameters()[k][...] += e
    net.zero_grad()
    assert plain.train_step(0)[0] == pytest.approx(loss, rel=1e-12)
    for k, g in net.named_grads().items():
        np.testing.assert_allclose(got[k], g, rtol=1e-10, atol=1e-12)
    net.load_state_dict(clean)
    net.zero_grad()
    assert plain.train_step(0)[0] != pytest.approx(loss, rel=1e-6)  # the noise mattered
    with pytest.raises(InputError, match="weight_noise"):
        MusicModel(weight_noise=-0.1, epochs=1).fit(rolls)


def _tiny_net(output: str, keys: int = 5, seed: int = 0) -> PianoRollNet:
    return PianoRollNet(
        "gru", 6, output=output, nade_hidden=4, keys=keys, dtype="float64", seed=seed
    )


@pytest.mark.parametrize("output", ["sigmoid", "nade"])
def test_gradients_match_finite_differences(output):
    rng = np.random.default_rng(1)
    net = _tiny_net(output)
    x = (rng.random((4, 3, 5)) < 0.4).astype(np.float64)
    y = (rng.random((4, 3, 5)) < 0.4).astype(np.float64)
    lengths = np.array([4, 2, 3])
    mask = (np.arange(4)[:, None] < lengths[None]).astype(np.float64)

    def loss() -> float:
        return bce_with_logits(net.logits(x, y, lengths), y, mask=mask, reduction="sum")[0]

    net.train()
    net.zero_grad()
    z, backward = net.forward_train(x, y, lengths)
    backward(bce_with_logits(z, y, mask=mask, reduction="sum")[1])
    grads = net.named_grads()
    for key, w in net.named_parameters().items():
        for i in rng.choice(w.size, size=min(3, w.size), replace=False):
            old = w.flat[i]
            w.flat[i] = old + 1e-6
            up = loss()
            w.flat[i] = old - 1e-6
            down = loss()
            w.flat[i] = old
            assert grads[key].flat[i] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-8), key


def test_nade_probabilities_of_all_key_sets_sum_to_one_and_sampling_follows_them():
    k = 4
    net = _tiny_net("nade", keys=k, seed=3)
    net.eval()
    history = np.array([[[1, 0, 1, 0]], [[0, 1, 1, 0]]], dtype=np.float64)  # (T=2, B=1, k)
    sets = np.array(list(itertools.product([0, 1], repeat=k)), dtype=np.float64)  # (16, k)
    h, _ = net.read(history)
    last = np.repeat(h[-1], len(sets), axis=0)  # the state after the history, per key set
    z = net._logits(last, sets)
    log_p = -(np.logaddexp(0.0, z) - sets * z).sum(axis=1)
    p = np.exp(log_p)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert p.max() < 0.9  # not a degenerate distribution
    # key-by-key sampling draws the sets with these probabilities
    draws = net.sample(np.repeat(h[-1], 20000, axis=0), 1.0, np.random.default_rng(0))
    codes = draws @ (1 << np.arange(k - 1, -1, -1))
    freq = np.bincount(codes, minlength=2**k) / len(draws)
    assert np.abs(freq - p).max() < 0.02


def _random_roll(rng: np.random.Generator, T: int) -> np.ndarray:
    roll = (rng.random((T, KEYS)) < 0.04).astype(np.uint8)
    roll[:2] = 0  # leading and trailing silence survive the round trip too
    roll[-3:] = 0
    roll[5, 0] = roll[6, KEYS - 1] = 1  # the lowest and the highest key
    return roll


@pytest.mark.parametrize("steps_per_quarter", [1, 4])
def test_midi_round_trip_is_exact(tmp_path, steps_per_quarter):
    roll = _random_roll(np.random.default_rng(steps_per_quarter), 40)
    path = write_midi(roll, tmp_path / "r.mid", steps_per_quarter)
    back = read_midi(path, steps_per_quarter)
    assert back.shape == roll.shape
    assert np.array_equal(back, roll)


def test_midi_from_another_tool_is_quantised_to_the_nearest_step(tmp_path):
    import mido

    mid = mido.MidiFile(ticks_per_beat=96)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    # C4 from tick 5 (rounds to step 0) to 180 (step 2); E4 from 100 (step 1) to 110 (step 1:
    # at least one step); drums are skipped; a note_on with velocity 0 ends a note
    track += [
        mido.Message("note_on", note=60, velocity=90, time=5),
        mido.Message("note_on", note=35, velocity=90, channel=9, time=0),
        mido.Message("note_on", note=64, velocity=90, time=95),
        mido.Message("note_on", note=64, velocity=0, time=10),
        mido.Message("note_off", note=60, velocity=0, time=70),
    ]
    mid.save(tmp_path / "t.mid")
    roll = read_midi(tmp_path / "t.mid")
    assert [list(np.flatnonzero(r) + LOWEST) for r in roll] == [[60], [60, 64]]


def _tiny_pieces(rng: np.random.Generator, n: int) -> list[list[list[int]]]:
    chords = [[60, 64, 67], [62, 65, 69], [59, 62, 67], [60, 64, 67, 72]]
    return [
        [chords[int(i)] for i in rng.integers(0, len(chords), size=int(rng.integers(6, 12)))]
        for _ in range(n)
    ]


def test_generation_with_a_seed_is_reproducible_and_survives_save_and_load(tmp_path):
    pieces = _tiny_pieces(np.random.default_rng(0), 8)
    for output in ("sigmoid", "nade"):
        model = MusicModel(hidden_size=8, output=output, nade_hidden=4, epochs=2, batch_size=4)
        model.fit(pieces)
        a = model.generate(12, seed=7)
        assert a.shape == (13, KEYS)
        assert np.array_equal(a, model.generate(12, seed=7))
        assert not np.array_equal(a, model.generate(12, seed=8))
        rnnkit.save(model, tmp_path / f"{output}.safetensors")
        loaded = rnnkit.load(tmp_path / f"{output}.safetensors")
        assert np.array_equal(loaded.generate(12, seed=7), a)
        primed = model.generate(5, prime=pieces[0][:3], seed=1)
        assert primed.shape == (8, KEYS)
        assert [list(np.flatnonzero(r) + LOWEST) for r in primed[:3]] == pieces[0][:3]


# -- bad input: one line naming the file ----------------------------------------------------
def _write(tmp_path, name: str, data: bytes | str):
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.mark.parametrize(
    "name, data, expected",
    [
        ("empty.mid", b"", "not a readable MIDI file"),
        ("corrupt.mid", b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\xff\xff", "MIDI"),
        ("text.mid", "just some text\n", "not a readable MIDI file"),
    ],
)
def test_a_bad_midi_file_is_one_error_naming_it(tmp_path, name, data, expected):
    path = _write(tmp_path, name, data)
    with pytest.raises(InputError, match=expected) as err:
        read_midi(path)
    assert name in str(err.value) and "\n" not in str(err.value)


def test_a_midi_file_without_notes_or_off_the_keyboard_is_refused(tmp_path):
    import mido

    silent = tmp_path / "silent.mid"
    mido.MidiFile(tracks=[mido.MidiTrack()]).save(silent)
    with pytest.raises(InputError, match="silent.mid' holds no notes"):
        read_midi(silent)
    low = tmp_path / "low.mid"
    track = mido.MidiTrack([mido.Message("note_on", note=12), mido.Message("note_off", note=12)])
    mido.MidiFile(tracks=[track]).save(low)
    with pytest.raises(InputError, match="low.mid' holds no notes on the piano"):
        read_midi(low)


@pytest.mark.parametrize(
    "data, expected",
    [
        ('{"pieces": []}', "holds ['pieces']; expected"),
        ('{"train": [[60, 64]]}', "train[0] step 0: expected a list of MIDI pitches"),
        ('{"train": [[[60], [200]]]}', "train[0] step 1: pitch 200 is outside the piano"),
        ('{"train": [[[60], ["C4"]]]}', "expected integer MIDI pitches"),
        ('{"train": [[[60]]]}', "has 1 steps; expected at least 2"),
        ("[[[60], [62]", "is not readable JSON"),
        ("3", "holds int"),
    ],
)
def test_json_of_the_wrong_shape_is_one_error_naming_the_file(tmp_path, data, expected):
    path = _write(tmp_path, "bad.json", data)
    with pytest.raises(InputError, match=re.escape(expected)) as err:
        read_json(path)
    assert "bad.json" in str(err.value) and "\n" not in str(err.value)


def test_a_folder_without_midi_files_is_refused(tmp_path):
    with pytest.raises(InputError, match="holds no .mid"):
        read_music(tmp_path)


# -- the command line, end to end -----------------------------------------------------------
def test_train_music_and_generate_midi_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(2)
    data = {"train": _tiny_pieces(rng, 10), "valid": _tiny_pieces(rng, 3)}
    data["test"] = _tiny_pieces(rng, 3)
    (tmp_path / "tiny.json").write_text(json.dumps(data))
    model = tmp_path / "m.safetensors"
    argv = ["train", "music", "--data", str(tmp_path / "tiny.json"), "--hidden", "8"]
    argv += ["--epochs", "3", "--batch", "4", "--out", str(model), "--json"]
    assert main(argv) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 < metrics["test_nll"] < KEYS * math.log(2) and 0 < metrics["val_nll"]
    # the tiny set's NLL falls below guessing every key at 1/2
    midi, png = tmp_path / "out.mid", tmp_path / "out.png"
    gen = ["generate", str(model), "--midi", str(midi), "--png", str(png), "--steps", "8"]
    assert main([*gen, "--seed", "1", "--json"]) == 0
    written = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert written["steps"] == 9 and read_midi(midi).shape[0] <= 9
    assert png.read_bytes().startswith(b"\x89PNG")
    first = midi.read_bytes()
    assert main([*gen, "--seed", "1"]) == 0  # rnnkit's own MIDI file may be replaced
    assert midi.read_bytes() == first
    # primed from the MIDI file just written: the prime comes back first
    assert main(["generate", str(model), "--prime", str(midi), "--steps", "4", "--seed", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 9 + 4
    prime = read_midi(midi)
    assert [list(map(int, line.split())) for line in lines[: len(prime)]] == [
        list(np.flatnonzero(r) + LOWEST) for r in prime
    ]
    # options that do not fit the model's kind
    assert main(["generate", str(model), "--length", "5"]) == 2
    err = capsys.readouterr().err
    assert "--length applies to language models" in err and len(err.strip().splitlines()) == 1


def test_ema_evaluates_and_keeps_the_moving_average_of_the_weights(tmp_path):
    from rnnkit.io.checkpoint import load_checkpoint
    from rnnkit.layers import Linear
    from rnnkit.training import TrainConfig, Trainer, last_path

    class Objective:  # gradients that change with the step; every evaluation better than the last
        steps_per_epoch = 1

        def __init__(self) -> None:
            self.model = Linear(3, 2, seed=0, dtype="float64")
            self.seen: list[dict] = []

        def train_step(self, step: int) -> tuple[float, int]:
            for g in self.model.named_grads().values():
                g[...] = np.cos(step + np.arange(g.size)).reshape(g.shape)
            return 1.0, 1

        def evaluate(self) -> float:
            self.seen.append(self.model.state_dict())
            return -float(len(self.seen))

        def carry_arrays(self) -> dict:
            return {}

        def load_carry(self, arrays: dict) -> None:
            pass

    objective = Objective()
    raw = [objective.model.state_dict()]
    cfg = TrainConfig(steps=6, eval_every=2, ema=0.15, warmup_steps=0, lr=0.1, clip=10.0)
    out = tmp_path / "m.safetensors"
    hook = lambda t: raw.append(t.model.state_dict())  # noqa: E731
    trainer = Trainer(objective, cfg, out, progress=False, quiet=True, plot=False, on_step=hook)
    trainer.run()
    average = {k: v.copy() for k, v in raw[0].items()}
    expected = []
    for t in range(6):
        decay = min(0.15, (1 + t) / (10 + t))
        for k in average:
            average[k] += (1 - decay) * (raw[t + 1][k] - average[k])
        if (t + 1) % 2 == 0:
            expected.append({k: v.copy() for k, v in average.items()})
    assert len(objective.seen) == 3
    for seen, want in zip(objective.seen, expected, strict=True):  # evaluated: the average
        for k in want:
            np.testing.assert_allclose(seen[k], want[k], rtol=1e-12)
            assert not np.allclose(want[k], raw[-1][k])
    last = load_checkpoint(last_path(out))  # to resume: the trained weights, the average beside
    for k, v in objective.model.named_parameters().items():
        np.testing.assert_array_equal(v, raw[-1][k])
        np.testing.assert_array_equal(last.model.state_dict()[k], raw[-1][k])
        np.testing.assert_allclose(last.arrays[f"ema/{k}"], average[k], rtol=1e-12)
    trainer.load_best()  # kept as the best: the average
    for k, v in objective.model.named_parameters().items():
        np.testing.assert_allclose(v, average[k], rtol=1e-12)
    with pytest.raises(InputError, match="ema"):
        TrainConfig(steps=1, ema=1.0)
