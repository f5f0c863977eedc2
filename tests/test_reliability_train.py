"""`rnnkit train lm` keeps the user's files, refuses what cannot work before working, and never
silently gives a wrong result (issue 18): outputs checked at start-up, resumed runs compared
with the run they continue, a divergence guard from the first steps, a memory estimate, stops on
SIGINT and SIGTERM, progress in logs, unknown validation symbols reported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.errors import CheckpointError, InputError, TrainingDiverged
from rnnkit.files import is_rnnkit_file, safetensors_metadata, text_fingerprint
from rnnkit.io.checkpoint import load_checkpoint
from rnnkit.memory import lm_training_memory
from rnnkit.tasks.lm import LMObjective, LMRunConfig, train_lm
from rnnkit.training import TrainConfig

SRC = Path(__file__).resolve().parents[1] / "src"
TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n"
) * 8
TINY = ["--hidden", "8", "--layers", "1", "--embedding", "4", "--batch", "2", "--bptt", "8"]


def _train(tmp_path: Path, *extra: str, text: Path | None = None) -> list[str]:
    """``rnnkit train lm`` arguments of a tiny run on ``small.txt`` writing ``lm.safetensors``."""
    if text is None:
        text = tmp_path / "small.txt"
        if not text.exists():
            text.write_text(TEXT)
    base = ["train", "lm", *TINY, "--steps", "3", "--eval-every", "2", "--sample", "0"]
    return [*base, "--text", str(text), "--out", str(tmp_path / "lm.safetensors"), *extra]


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    """``main(args)`` in this process: exit status, stdout, stderr (argparse's errors too)."""
    try:
        code = main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _warned(err: str, *pieces: str) -> None:
    """The CLI printed a one-line warning holding every piece."""
    lines = [line for line in err.splitlines() if line.startswith("rnnkit: warning:")]
    assert any(all(p in line for p in pieces) for line in lines), err


def _one_line_error(code: int, err: str, message: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("rnnkit: error:"), err
    assert message in lines[0], lines[0]


# -- 1. outputs checked before the work -------------------------------------------------------
def test_out_equal_to_the_text_is_refused_and_the_text_kept(tmp_path, capsys):
    text = tmp_path / "v.txt"
    text.write_text(TEXT)
    args = _train(tmp_path, text=text)
    args[args.index("--out") + 1] = str(text)
    code, _, err = _run(args, capsys)
    _one_line_error(code, err, "is also an input of this run")
    assert text.read_text() == TEXT


@pytest.mark.parametrize("out", ["/sys/x.safetensors", "FOLDER", "/proc/x/y.safetensors"])
def test_an_unwritable_out_fails_at_start_up(tmp_path, capsys, out):
    args = _train(tmp_path)
    args[args.index("--out") + 1] = str(tmp_path) if out == "FOLDER" else out
    args[args.index("--steps") + 1] = "100000"  # would take minutes if the check came late
    start = time.perf_counter()
    code, _, err = _run(args, capsys)
    _one_line_error(code, err, "--out")
    assert time.perf_counter() - start < 5


def test_a_file_that_is_not_rnnkits_needs_force_and_the_plot_is_rnnkits(tmp_path, capsys):
    out = tmp_path / "lm.safetensors"
    out.write_text("my notes")
    code, _, err = _run(_train(tmp_path), capsys)
    _one_line_error(code, err, "is not an rnnkit checkpoint file")
    assert out.read_text() == "my notes"
    code, _, err = _run(_train(tmp_path, "--force"), capsys)
    assert code == 0, err
    assert is_rnnkit_file(out, "checkpoint")
    png = tmp_path / "lm.loss.png"
    assert is_rnnkit_file(png, "png")  # so the next run may replace it without --force
    code, _, err = _run(_train(tmp_path), capsys)
    assert code == 0, err
    png.write_bytes(b"\x89PNG\r\n\x1a\n someone else's picture")
    code, _, err = _run(_train(tmp_path), capsys)
    _one_line_error(code, err, "is not an rnnkit png file")


def test_a_loss_plot_from_before_signed_pngs_is_replaced(tmp_path, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert _run(_train(tmp_path), capsys)[0] == 0
    png = tmp_path / "lm.loss.png"
    fig = plt.figure()
    fig.savefig(png)  # matplotlib's own Software tag, as rnnkit wrote its plots before
    plt.close(fig)
    assert not is_rnnkit_file(png, "png")
    code, _, err = _run(_train(tmp_path), capsys)
    assert code == 0, err
    assert is_rnnkit_file(png, "png")


# -- 2. runs know who they are ----------------------------------------------------------------
def test_checkpoints_record_the_data_and_the_run(tmp_path, capsys):
    code, _, err = _run(_train(tmp_path), capsys)
    assert code == 0, err
    for name in ("lm.safetensors", "lm.last.safetensors"):
        extra = json.loads((safetensors_metadata(tmp_path / name) or {})["extra"])
        train, valid = TEXT[: int(len(TEXT) * 0.9)], TEXT[int(len(TEXT) * 0.9) :]
        assert extra["data"]["text"]["chars"] == len(train), name
        assert extra["data"] == {"text": text_fingerprint(train), "valid": text_fingerprint(valid)}
        assert extra["run"]["hidden"] == 8 and extra["run"]["steps"] == 3


def test_resume_with_another_budget_is_refused_then_forced_with_a_warning(tmp_path, capsys):
    assert _run(_train(tmp_path), capsys)[0] == 0
    longer = _train(tmp_path, "--resume")
    longer[longer.index("--steps") + 1] = "6"
    code, _, err = _run(longer, capsys)
    _one_line_error(code, err, "was trained with --steps 3, this run asks for --steps 6; pass")
    code, out, err = _run([*longer, "--force", "--json"], capsys)
    assert code == 0, err
    assert "resuming" in err and "at step 3 of 6 (lr now" in err
    assert json.loads(out.strip().splitlines()[-1])["steps"] == 6
    _warned(err, "schedule is stretched")


def test_resume_refuses_changed_text_and_reports_its_fingerprint(tmp_path, capsys):
    assert _run(_train(tmp_path), capsys)[0] == 0
    (tmp_path / "small.txt").write_text(TEXT.replace("speak", "spake"))
    code, _, err = _run(_train(tmp_path, "--resume"), capsys)
    _one_line_error(code, err, "--text has changed since the run was saved (was ")
    assert "sha256" in err and "pass --force" in err
    longer = _train(tmp_path, "--resume", "--force")
    longer[longer.index("--steps") + 1] = "5"
    code, _, err = _run(longer, capsys)
    assert code == 0, err  # losses on other data are not compared with the saved best
    _warned(err, "the next evaluation starts a new best")
    assert load_checkpoint(tmp_path / "lm.safetensors").metadata["train"]["step"] >= 4
    (tmp_path / "small.txt").write_text("Zounds! " + TEXT)  # a symbol the model never had
    code, _, err = _run(longer, capsys)
    _one_line_error(code, err, "vocabulary of this run's text differs")


def test_resume_with_another_batch_drops_the_carried_state_with_force(tmp_path, capsys):
    assert _run(_train(tmp_path), capsys)[0] == 0
    wider = _train(tmp_path, "--resume", "--batch", "3")
    wider[wider.index("--steps") + 1] = "5"
    code, _, err = _run(wider, capsys)
    _one_line_error(code, err, "--batch 2 --steps 3, this run asks for --batch 3 --steps 5")
    code, _, err = _run([*wider, "--force"], capsys)
    assert code == 0, err  # not the h_0 shape error of the old carried state
    _warned(err, "carried hidden state", "is dropped")
    assert load_checkpoint(tmp_path / "lm.last.safetensors").metadata["train"]["step"] == 5


def test_resume_cannot_force_another_model(tmp_path, capsys):
    assert _run(_train(tmp_path), capsys)[0] == 0
    code, _, err = _run(_train(tmp_path, "--resume", "--force", "--hidden", "12"), capsys)
    _one_line_error(code, err, "trained with --hidden 8, this run asks for --hidden 12")
    assert "even with --force" in err


@pytest.mark.parametrize("damage", ["missing", "truncated", "flipped"])
def test_resume_from_a_missing_or_damaged_last_is_one_line(tmp_path, capsys, damage):
    assert _run(_train(tmp_path), capsys)[0] == 0
    last = tmp_path / "lm.last.safetensors"
    data = last.read_bytes()
    if damage == "missing":
        last.unlink()
    elif damage == "truncated":
        last.write_bytes(data[: len(data) // 2])
    else:
        last.write_bytes(data[:-9] + bytes([data[-9] ^ 0xFF]) + data[-8:])
    code, _, err = _run(_train(tmp_path, "--resume"), capsys)
    _one_line_error(code, err, "resume:")


# -- 3. the divergence guard ------------------------------------------------------------------
def test_a_huge_learning_rate_stops_early_and_keeps_no_diverged_checkpoint(tmp_path, capsys):
    args = _train(tmp_path, "--lr", "1e6", "--warmup", "5")
    args[args.index("--steps") + 1] = "30"
    code, _, err = _run(args, capsys)
    assert code == 1 and "training diverged at step" in err, err
    step = int(err.split("training diverged at step ")[1].split(":")[0])
    assert step < 5  # inside the warm-up, where the old guard did not look
    best = tmp_path / "lm.safetensors"
    if best.exists():  # written before the divergence: a sane validation loss
        assert load_checkpoint(best).metadata["train"]["val_loss"] < 10


def test_one_noisy_batch_does_not_trip_the_guard_but_a_rising_window_does(tmp_path):
    from rnnkit.models.language import LanguageModel
    from rnnkit.training import Trainer

    class Idle:  # the guard looks at losses only; the trainer needs a model for its optimizer
        model = LanguageModel(10, "rnn", 4, 1, 2, 0.0, seed=0)

    trainer = Trainer(Idle(), TrainConfig(steps=10), tmp_path / "b.safetensors")  # type: ignore[arg-type]
    trainer.history["train"] = [4.0, 3.9, 3.8]
    trainer.step = 3
    trainer._guard(2.5 * 4.0, 1.0)  # one batch at 2.5x: the window mean stays below 1.5x
    with pytest.raises(TrainingDiverged, match="jumped"):
        trainer._guard(3.5 * 4.0, 1.0)
    trainer.history["train"] = [4.0, 7.0, 7.0, 7.0]
    with pytest.raises(TrainingDiverged, match="exploded to a mean"):
        trainer._guard(7.0, 1.0)


def test_a_diverged_evaluation_is_never_saved(tmp_path, monkeypatch):
    (tmp_path / "t.txt").write_text(TEXT)
    cfg = LMRunConfig(
        text=str(tmp_path / "t.txt"),
        **dict(hidden=8, layers=1, embedding=4, batch=2, bptt=8, steps=6, eval_every=2),
        out=str(tmp_path / "lm.safetensors"),
    )
    honest = LMObjective.evaluate
    calls = []

    def evaluate(self):
        calls.append(1)
        return honest(self) if len(calls) == 1 else float("nan")

    monkeypatch.setattr(LMObjective, "evaluate", evaluate)
    with pytest.raises(TrainingDiverged, match="at step 4: the validation loss is nan"):
        train_lm(cfg, progress=False)
    for name in ("lm.safetensors", "lm.last.safetensors"):  # both still from step 2
        assert load_checkpoint(tmp_path / name).metadata["train"]["step"] == 2, name


def test_warmup_must_not_be_negative(tmp_path, capsys):
    code, _, err = _run(_train(tmp_path, "--warmup", "-1"), capsys)
    _one_line_error(code, err, "--warmup: expected an integer >= 0, got '-1'")
    with pytest.raises(InputError, match="warmup_steps must be >= 0"):
        TrainConfig(steps=3, warmup_steps=-1)


# -- 4. memory --------------------------------------------------------------------------------
def test_a_model_too_large_for_memory_is_refused_at_once(tmp_path, capsys):
    start = time.perf_counter()
    code, _, err = _run(_train(tmp_path, "--hidden", "100000"), capsys)
    _one_line_error(code, err, "needs about")
    assert "is available; reduce --hidden" in err
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "lm.safetensors").exists()


def test_the_memory_estimate_is_within_twice_the_measured_peak():
    from rnnkit.losses import cross_entropy
    from rnnkit.models.language import LanguageModel
    from rnnkit.optim import AdamW, clip_grad_norm

    V, H, L, E, B, T = 60, 256, 2, 32, 16, 64

    def one_step() -> None:
        model = LanguageModel(V, "lstm", H, L, E, 0.1, False, seed=0)
        opt = AdamW(model)
        x = np.random.default_rng(0).integers(0, V, (T, B))
        for _ in range(2):
            model.zero_grad()
            logits, _, backward = model.forward_train(x, None)
            _, dlogits = cross_entropy(logits, x)
            backward(dlogits)
            clip_grad_norm(model, 1.0)
            opt.step()

    one_step()  # compiled kernels and caches first: they are not the step's memory
    tracemalloc.start()
    one_step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    estimate = lm_training_memory(V, "lstm", H, L, E, B, T).total
    assert peak / 2 < estimate < 2 * peak
    assert lm_training_memory(V, "lstm", 2 * H, L, E, B, T).total > estimate
    assert lm_training_memory(V, "lstm", H, L, E, 2 * B, T).total > estimate


# -- 5. signals -------------------------------------------------------------------------------
def test_sigterm_stops_after_the_step_saves_and_resume_continues(tmp_path):
    args = _train(tmp_path, "--json")
    args[args.index("--steps") + 1] = "100000"
    env = dict(os.environ, PYTHONPATH=str(SRC), OPENBLAS_THREAD_TIMEOUT="4")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnkit.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    last = tmp_path / "lm.last.safetensors"
    deadline = time.monotonic() + 60
    while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    metrics = json.loads(out.strip().splitlines()[-1])
    assert metrics["stopped"] == "interrupted" and 2 <= metrics["steps"] < 100000
    saved = load_checkpoint(last).metadata["train"]["step"]
    assert saved == metrics["steps"]

    cfg = LMRunConfig(
        text=str(tmp_path / "small.txt"),
        **dict(hidden=8, layers=1, embedding=4, batch=2, bptt=8, steps=100000, eval_every=2),
        out=str(tmp_path / "lm.safetensors"),
    )
    seen: list[int] = []

    def stop_soon(trainer) -> None:
        seen.append(trainer.step)
        if len(seen) == 2:
            trainer.request_stop()

    result, _ = train_lm(cfg, progress=False, resume=True, on_step=stop_soon)
    assert seen == [saved + 1, saved + 2] and result.steps == saved + 2


# -- 6. progress in a log ---------------------------------------------------------------------
def test_progress_without_a_terminal_is_a_plain_line_now_and_then(tmp_path, capsys):
    (tmp_path / "t.txt").write_text(TEXT)
    cfg = LMRunConfig(
        text=str(tmp_path / "t.txt"),
        **dict(hidden=8, layers=1, embedding=4, batch=2, bptt=8, steps=4, eval_every=10),
        out=str(tmp_path / "lm.safetensors"),
    )
    train_lm(cfg, progress=True, progress_every=0.0)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "eta" in ln]
    assert len(lines) == 4, lines
    assert lines[1].startswith("step 2/4 (50%)  loss ") and " chars/s  eta " in lines[1]
    train_lm(cfg, progress=True, progress_every=3600.0)
    assert "eta" not in capsys.readouterr().err


# -- 7. a validation text in another alphabet -------------------------------------------------
def test_a_validation_text_of_unknown_symbols_is_reported(tmp_path, capsys):
    valid = tmp_path / "valid.txt"
    valid.write_text("Прежде чем мы двинемся дальше, выслушайте меня. " * 4)
    code, _, err = _run(_train(tmp_path, "--valid", str(valid)), capsys)
    assert code == 0, err
    _warned(err, "% of the validation chars are not in the")
    valid.write_text(TEXT[:300])
    code, _, err = _run(_train(tmp_path, "--valid", str(valid)), capsys)
    assert code == 0 and "warning" not in err, err  # the same alphabet: no warning


def test_resume_requires_the_training_state(tmp_path):
    (tmp_path / "t.txt").write_text(TEXT)
    cfg = LMRunConfig(
        text=str(tmp_path / "t.txt"),
        **dict(hidden=8, layers=1, embedding=4, batch=2, bptt=8, steps=2),
        out=str(tmp_path / "lm.safetensors"),
    )
    train_lm(cfg, progress=False)
    last = tmp_path / "lm.last.safetensors"
    last.write_bytes((tmp_path / "lm.safetensors").read_bytes())  # a best checkpoint
    with pytest.raises(CheckpointError, match="holds no training state"):
        train_lm(cfg, progress=False, resume=True)
