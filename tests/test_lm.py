"""Language modelling: data, carried state, training, resume, generation, the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnkit
from rnnkit.data.text import TokenStreams, Vocabulary, read_text, split_validation
from rnnkit.models.language import LanguageModel
from rnnkit.tasks.lm import LMObjective, LMRunConfig, generate, load_lm, train_lm

SHAKESPEARE = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "text" / "tinyshakespeare.txt"
)
TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n"
) * 40


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _small(tmp_path: Path, **kw) -> LMRunConfig:
    base = dict(
        text=str(_write(tmp_path, "t.txt", TEXT)),
        hidden=24,
        layers=1,
        embedding=8,
        batch=4,
        bptt=16,
        steps=30,
        lr=0.02,
        eval_every=10,
        warmup_steps=3,
        out=str(tmp_path / "lm.safetensors"),
    )
    base.update(kw)
    return LMRunConfig(**base)


# -- data ------------------------------------------------------------------------------------
def test_char_tokenisation_round_trips():
    text = "Ünïcode, tabs\tand\nnewlines — ok?"
    vocab = Vocabulary.build(text)
    assert vocab.decode(vocab.encode(text)) == text
    assert vocab.encode("Z")[0] == 0 and vocab.tokens[0] == "\ufffd"  # unseen: unknown


def test_word_tokenisation_round_trips_and_handles_unknown_words():
    text = "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind"
    vocab = Vocabulary.build(text, "word")
    ids = vocab.encode(text)
    assert vocab.encode(vocab.decode(ids)).tolist() == ids.tolist()
    assert vocab.decode(vocab.encode("to be, or")) == "to be, or"
    assert vocab.decode(vocab.encode("to be zebra")) == "to be <unk>"
    small = Vocabulary.build(text, "word", max_size=4)
    assert len(small) == 4 and small.tokens[0] == "<unk>"


def test_streams_are_contiguous_and_targets_shifted():
    ids = np.arange(101)
    s = TokenStreams(ids, batch=4, bptt=7)
    x0, y0 = s.chunk(0)
    x1, _ = s.chunk(1)
    assert x0.shape == (7, 4)
    np.testing.assert_array_equal(y0, x0 + 1)  # targets are the next token
    np.testing.assert_array_equal(x1[0], x0[-1] + 1)  # chunk k+1 continues chunk k per stream
    assert s.chunk(len(s))[0].tolist() == x0.tolist()  # wraps around


def test_carried_state_equals_one_long_forward():
    """The state carried into chunk 2 is the state after reading chunks 0 and 1 in one go."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 11, size=400)
    model = LanguageModel(11, "gru", 16, 2, 8, dropout=0.0, seed=0)
    streams = TokenStreams(ids, batch=3, bptt=9)
    objective = LMObjective(model, streams, streams)
    objective.train_step(0)
    objective.train_step(1)
    both = np.concatenate([streams.chunk(0)[0], streams.chunk(1)[0]])
    _, state = model(both)
    np.testing.assert_allclose(objective.state, state, rtol=1e-5, atol=1e-6)
    objective.train_step(len(streams))  # a new pass starts from zero
    _, fresh = model(streams.chunk(0)[0])
    np.testing.assert_allclose(objective.state, fresh, rtol=1e-5, atol=1e-6)


def test_carried_state_lets_the_model_use_the_previous_chunk(tmp_path):
    """In "xxyxxy..." the character after an x depends on the one before it. With chunks of 2
    steps, half the time that one is in the previous chunk: only a carried state predicts it."""
    ids = Vocabulary.build("xy").encode("xxy" * 400)

    def final_loss(carry: bool) -> float:
        model = LanguageModel(3, "lstm", 16, 1, 4, dropout=0.0, seed=1)
        objective = LMObjective(model, TokenStreams(ids, 8, 2), TokenStreams(ids, 8, 2))
        opt = rnnkit.Adam(model, lr=0.02)
        for step in range(300):
            model.zero_grad()
            objective.train_step(step)
            opt.step()
            if not carry:
                objective.state = None
        return objective.evaluate() if carry else _eval_without_carry(model, ids)

    with_carry, without = final_loss(True), final_loss(False)
    assert with_carry < 0.05
    assert without > 0.15  # the first step of each chunk is a coin flip without the state


def _eval_without_carry(model, ids) -> float:
    streams = TokenStreams(ids, 8, 2)
    total = count = 0
    for k in range(len(streams)):
        x, y = streams.chunk(k)
        logits, _ = model(x)
        loss, _ = rnnkit.cross_entropy(logits, y, reduction="sum")
        total, count = total + loss, count + y.size
    return total / count


# -- training --------------------------------------------------------------------------------
def test_short_training_lowers_the_loss_and_writes_its_files(tmp_path):
    cfg = _small(tmp_path, steps=150, eval_every=50)
    result, metrics = train_lm(cfg, progress=False)
    first_val = result.history["val"][0][1]
    assert metrics["val_loss"] < first_val < math.log(len(set(TEXT)) + 1) + 0.5
    assert metrics["val_loss"] < 1.5  # uniform guessing over 27 symbols scores 3.3
    assert set(metrics) >= {"val_loss", "val_bpc", "tokens_per_s", "steps", "minutes"}
    assert metrics["steps"] == 150
    for name in ("lm.safetensors", "lm.last.safetensors", "lm.loss.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_resume_continues_exactly(tmp_path):
    straight = _small(tmp_path, out=str(tmp_path / "a.safetensors"), dropout=0.2, layers=2)
    train_lm(straight, progress=False)

    def stop_at_13(trainer):
        if trainer.step == 13:
            trainer.request_stop()

    interrupted = _small(tmp_path, out=str(tmp_path / "b.safetensors"), dropout=0.2, layers=2)
    result, _ = train_lm(interrupted, progress=False, on_step=stop_at_13)
    assert result.stopped == "interrupted" and result.steps == 13
    train_lm(interrupted, progress=False, resume=True)

    a = rnnkit.load(tmp_path / "a.last.safetensors").state_dict()
    b = rnnkit.load(tmp_path / "b.last.safetensors").state_dict()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


def test_the_trainer_follows_the_one_cosine_schedule(tmp_path):
    rates: list[float] = []
    cfg = _small(tmp_path, steps=12, eval_every=100)
    train_lm(cfg, progress=False, on_step=lambda trainer: rates.append(trainer.opt.lr))
    schedule = rnnkit.CosineLR(cfg.lr, cfg.steps, cfg.min_lr, cfg.warmup_steps)
    # step k (from 0) takes the rate after k + 1 steps: none is wasted on a rate of 0
    assert rates == pytest.approx([schedule(k + 1) for k in range(12)], rel=1e-12)
    assert rates[cfg.warmup_steps - 1] == cfg.lr and rates[-1] == cfg.min_lr


def test_resume_refuses_a_different_model(tmp_path):
    train_lm(_small(tmp_path, steps=5), progress=False)
    with pytest.raises(rnnkit.CheckpointError, match="resume: .* this run asks for"):
        train_lm(_small(tmp_path, steps=10, hidden=32), progress=False, resume=True)


def test_divergence_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path):
    from rnnkit.training import TrainingDiverged

    cfg = _small(tmp_path, steps=40)

    def poison(trainer):
        if trainer.step == 20:  # after the evaluation at step 20 wrote a good checkpoint
            trainer.model.children["head"].params["bias"][:] = np.nan

    with pytest.raises(TrainingDiverged, match="training diverged at step 20: the loss is nan"):
        train_lm(cfg, progress=False, on_step=poison)
    model, _ = load_lm(tmp_path / "lm.safetensors")
    assert np.all(np.isfinite(model.head.params["bias"]))


# -- generation ------------------------------------------------------------------------------
def test_generation_is_reproducible_and_greedy_is_deterministic(tmp_path):
    train_lm(_small(tmp_path), progress=False)
    model, vocab = load_lm(tmp_path / "lm.safetensors")
    a = "".join(generate(model, vocab, "First", 80, 1.0, seed=3))
    b = "".join(generate(model, vocab, "First", 80, 1.0, seed=3))
    c = "".join(generate(model, vocab, "First", 80, 1.0, seed=4))
    assert a == b and a != c and len(a) == 80
    g1 = "".join(generate(model, vocab, "All", 40, 0.0, seed=1))
    g2 = "".join(generate(model, vocab, "All", 40, 0.0, seed=2))
    assert g1 == g2
    assert set("".join(generate(model, vocab, "", 50, 1.0, top_k=1, seed=5))) <= set(TEXT)


def test_generation_steps_from_the_carried_state(tmp_path):
    """Each token is one step from the carried state: the same as re-reading the prefix."""
    model = LanguageModel(12, "lstm", 16, 2, 8, dropout=0.0, seed=0)
    vocab = Vocabulary(tuple("\ufffdabcdefghijk"))
    text = "abc" + "".join(generate(model, vocab, "abc", 20, 0.0))
    ids = vocab.encode(text)
    logits, _ = model(ids[:-1, None])
    np.testing.assert_array_equal(np.argmax(logits[2:, 0], axis=-1), ids[3:])


# -- the CLI ---------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_trains_generates_and_prints_json(tmp_path):
    text = _write(tmp_path, "t.txt", TEXT)
    out = tmp_path / "m.safetensors"
    proc = _cli(
        "train",
        "lm",
        "--text",
        str(text),
        "--hidden",
        "16",
        "--layers",
        "1",
        "--batch",
        "4",
        "--bptt",
        "8",
        "--steps",
        "12",
        "--eval-every",
        "6",
        "--out",
        str(out),
        "--json",
        "--sample",
        "30",
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    assert metrics["steps"] == 12 and metrics["val_bpc"] == pytest.approx(
        metrics["val_loss"] / math.log(2)
    )
    assert "--- sample" in proc.stdout
    gen = _cli("generate", str(out), "--prime", "All:", "--length", "25", "--seed", "1")
    assert gen.returncode == 0 and gen.stdout.startswith("All:") and len(gen.stdout) >= 29


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["train", "lm", "--text", "/nonexistent.txt"],
            "no such file or folder '/nonexistent.txt'",
        ),
        (["train", "lm", "--text", "BAD"], "is not valid UTF-8 (line 2"),
        (["train", "lm", "--text", "EMPTY"], "is empty"),
        (["train", "lm", "--hidden", "0"], "--hidden: expected a positive integer, got '0'"),
        (["train", "lm", "--cell", "transformer"], "invalid choice: 'transformer'"),
        (["train", "lm", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["generate", "/nonexistent.safetensors"], "no such checkpoint file"),
        (["generate", "NOTLM", "--length", "5"], "expected a language model"),
        (["generate", "LM", "--temperature", "-1"], "--temperature: expected a finite number"),
    ],
)
def test_cli_errors_are_one_line_with_status_2(tmp_path, args, message):
    bad = _write(tmp_path, "bad.txt", b"fine\n\xff\xfe broken")
    empty = _write(tmp_path, "empty.txt", "  \n")
    notlm = tmp_path / "linear.safetensors"
    rnnkit.save(rnnkit.Linear(2, 2), notlm)
    names = {"BAD": str(bad), "EMPTY": str(empty), "NOTLM": str(notlm), "LM": str(notlm)}
    proc = _cli(*[names.get(a, a) for a in args])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("rnnkit: error:") and message in lines[0], lines[0]


def test_read_text_takes_a_folder_of_txt_files(tmp_path):
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "skip.md").write_text("not this")
    assert read_text(tmp_path) == "first\nsecond"
    train, valid = split_validation("x" * 90 + "y" * 10)
    assert valid == "y" * 10 and train == "x" * 90


def _need_shared_data() -> None:
    # the test suite runs with ../shared beside the repository (as CI does); say so if it is not
    assert SHAKESPEARE.is_file(), f"these tests read {SHAKESPEARE}: put ../shared beside the repo"


def test_shakespeare_vocabulary_has_its_65_characters():
    _need_shared_data()
    vocab = Vocabulary.build(split_validation(read_text(SHAKESPEARE))[0])
    assert len(vocab) == 66  # 65 characters and the unknown token


def test_eval_lm_quick_mode_runs_both_sides(tmp_path):
    """`make eval-lm-quick`: the side-by-side script cannot silently break."""
    _need_shared_data()
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [
            sys.executable,
            str(root / "benchmarks" / "eval_lm.py"),
            "--quick",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "lm.json").read_text())
    assert result["rnnkit"]["val_loss"] < 4.2 and result["torch"]["val_loss"] < 4.2
    assert result["throughput_ratio_rnnkit_over_torch"] > 0
    assert "| rnnkit |" in proc.stdout and "| PyTorch 2.13 |" in proc.stdout
