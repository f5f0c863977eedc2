"""The ``rnnkit`` command: parse, call a task, print. Progress to stderr, results to stdout.

Bad input (missing or malformed files, unknown options, impossible values, outputs that cannot
be written or would overwrite a file that is not rnnkit's) ends with one line
``rnnkit: error: ...`` on stderr and exit status 2, before any work when it can be known then;
a diverged training run exits with 1; an unexpected internal error keeps its traceback (1).
Warnings (`RnnkitWarning`) are one line each, ``rnnkit: warning: ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import warnings
from dataclasses import replace
from typing import Any, NoReturn

from ._version import __version__
from .config import add_options, from_args, integer, positive_int
from .errors import DistributedError, RnnkitError, RnnkitWarning, TrainingDiverged
from .process import tune_process
from .signals import Stopped


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit status 2
        self.exit(2, f"rnnkit: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from .tasks import forecast as forecast_task
    from .tasks.adding import AddingConfig
    from .tasks.lm_config import SampleConfig

    parser = _Parser(prog="rnnkit", description="Recurrent neural networks on a CPU.")
    parser.add_argument(
        "--version", action="version", version=f"rnnkit {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train a model for a task")
    tasks = train.add_subparsers(dest="task", required=True, parser_class=_Parser)
    _add_lm_arguments(tasks.add_parser("lm", help="a recurrent language model on any text"))
    _add_classify_arguments(
        tasks.add_parser(
            "classify",
            help="a text or audio classifier from a CSV/TSV, a manifest of .wav files, or "
            "folders per label",
        )
    )
    forecast_task.add_train_parser(tasks)
    forecast_task.add_parsers(sub)  # rnnkit forecast, rnnkit backtest
    _add_music_arguments(
        tasks.add_parser("music", help="a polyphonic music model from the JSB JSON or MIDI files")
    )

    from .tasks import translate as translate_task

    _add_fit_flags(translate_task.add_train_parser(tasks))  # rnnkit train translate
    translate_task.add_parser(sub)  # rnnkit translate

    from .tasks.transcribe import TranscribeConfig

    tr = tasks.add_parser(
        "transcribe", help="a CTC speech transcriber from a manifest of .wav files and transcripts"
    )
    tr.add_argument(
        "--train", required=True, help="manifest CSV/TSV with path and transcript columns"
    )
    add_options(tr, TranscribeConfig, exclude=("train",))
    tr.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --out file that is not an rnnkit checkpoint (default: refuse)",
    )
    tr.add_argument("--json", action="store_true", help="metrics as JSON on the last line")

    for trainer in tasks.choices.values():  # every trainer: data-parallel on this machine
        trainer.add_argument(
            "--nproc",
            type=positive_int,
            default=1,
            help="train as this many processes on this machine through torchrun, gradients "
            "all-reduced (the distributed extra); on several machines start torchrun yourself "
            "(default: 1, this process alone)",
        )

    ts = sub.add_parser("transcribe", help="transcribe WAV files with a CTC transcriber")
    ts.add_argument("checkpoint", help="a .safetensors file written by 'rnnkit train transcribe'")
    ts.add_argument("files", nargs="*", help=".wav files to transcribe, or folders of them")
    ts.add_argument(
        "--beam", type=integer, default=1, help="prefix beam search width; 1: greedy (default: 1)"
    )
    ts.add_argument(
        "--test",
        default=None,
        help="a manifest (path,transcript) to score: character and word error rates "
        "(default: none)",
    )
    ts.add_argument(
        "--lexicon",
        action="store_true",
        help="keep to the words of the training transcripts (a closed vocabulary, such as "
        "digits): with --beam above 1 the beam search only spells those words; greedy output "
        "has each word replaced by the nearest of them (default: off, characters as decoded)",
    )
    ts.add_argument(
        "--transcript-column",
        default="transcript",
        help="the --test manifest's transcript column (default: transcript)",
    )
    ts.add_argument("--json", action="store_true", help="CER and WER as JSON on the last line")

    ev = sub.add_parser("evaluate", help="score a classifier on labelled data")
    ev.add_argument("checkpoint", help="a .safetensors file written by 'rnnkit train classify'")
    ev.add_argument("--test", required=True, help="CSV/TSV with a header, or folders per label")
    _add_column_arguments(ev)
    ev.add_argument(
        "--plot",
        default=None,
        help="where to draw the confusion matrix as PNG (default: <checkpoint stem>.confusion.png "
        "beside the checkpoint)",
    )
    ev.add_argument(
        "--force",
        action="store_true",
        help="replace a --plot file that is not a PNG rnnkit wrote (default: refuse)",
    )
    ev.add_argument("--json", action="store_true", help="metrics as JSON on the last line")

    pr = sub.add_parser("predict", help="label each line of text, or each WAV file")
    pr.add_argument("checkpoint", help="a .safetensors file written by 'rnnkit train classify'")
    pr.add_argument(
        "files",
        nargs="*",
        help="text files, one example per line, or CSV/TSV files with a text column (default: "
        "stdin); for an audio classifier, .wav files or folders of them",
    )
    pr.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    pr.add_argument(
        "--explain",
        default=None,
        metavar="PNG",
        help="also draw the attention weights over the tokens of the first 8 inputs as a PNG; "
        "needs a model trained with --pooling attention (default: none)",
    )
    pr.add_argument(
        "--force",
        action="store_true",
        help="replace an --explain file that is not a PNG rnnkit wrote (default: refuse)",
    )

    gen = sub.add_parser(
        "generate", help="generate text from a language model, or music from a music model"
    )
    gen.add_argument(
        "checkpoint",
        help="a .safetensors file written by 'rnnkit train lm' or 'rnnkit train music'",
    )
    add_options(gen, SampleConfig)
    _add_music_generate_arguments(gen)

    stream = sub.add_parser(
        "stream", help="serve a checkpoint line by line from stdin, state kept across lines"
    )
    stream.add_argument("checkpoint", help="a .safetensors checkpoint (layer, regressor or LM)")
    stream.add_argument(
        "--state",
        default=None,
        help="load the state from FILE at start (if it exists) and save it there at exit, "
        "also on SIGTERM or SIGINT, atomically; its folder is created if missing "
        "(default: none, start from zeros)",
    )
    stream.add_argument(
        "--force",
        action="store_true",
        help="let --state replace an existing file that is not an rnnkit state, instead of "
        "refusing to start (default: off)",
    )
    stream.add_argument(
        "--on-error",
        choices=["skip", "stop"],
        default="stop",
        help="on a malformed line: report it and go on, or stop with status 2 (default: stop)",
    )
    stream.add_argument(
        "--audio",
        default=None,
        metavar="WAV",
        help="recognise speech live from a WAV file, or from raw 16-bit mono PCM at the model's "
        "rate on stdin with '-', with a transcriber from 'rnnkit train transcribe' "
        "(default: none, lines of text or numbers from stdin)",
    )
    stream.add_argument(
        "--realtime",
        action="store_true",
        help="with --audio: feed the audio at the speed of speech (default: as fast as possible)",
    )
    stream.add_argument(
        "--json",
        action="store_true",
        help="with --audio: the transcript and latency as JSON (default: off)",
    )
    stream.add_argument(
        "--quantize",
        choices=["int8", "bfloat16"],
        default=None,
        help="store the weights as int8 (per-row scale) or bfloat16 (default: as saved)",
    )
    stream.add_argument(
        "--paced",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="step every line on one core, for lines that come at the pace of the world (a "
        "sensor): between them a second core's thread falls asleep and is slow to wake; "
        "--no-paced: share a large layer between the cores, for lines back to back (default: "
        "paced unless stdin is a regular file)",
    )

    from .serve.config import ServeConfig

    serve = sub.add_parser(
        "serve", help="serve a checkpoint's streams over HTTP and WebSocket (the serve extra)"
    )
    serve.add_argument("checkpoint", help="a .safetensors checkpoint (layer, regressor or LM)")
    add_options(serve, ServeConfig)

    from .tasks.speech_data import FsddConfig

    data = sub.add_parser("data", help="prepare data sets for the tasks")
    kinds = data.add_subparsers(dest="dataset", required=True, parser_class=_Parser)
    fsdd = kinds.add_parser(
        "fsdd",
        help="the Free Spoken Digit Dataset: folders per label for classification, digit "
        "strings with transcripts for CTC",
    )
    add_options(fsdd, FsddConfig)
    fsdd.add_argument("--json", action="store_true", help="counts as JSON on the last line")
    from .tasks.speech_voices import VoicesConfig

    voices = kinds.add_parser(
        "voices",
        help="synthetic speakers (espeak-ng, flite) saying the ten digits, named as FSDD's "
        "recordings: extra training voices",
    )
    add_options(voices, VoicesConfig)
    voices.add_argument("--json", action="store_true", help="summary as JSON on the last line")

    from .tasks.detect import add_detect_arguments

    add_detect_arguments(
        sub.add_parser("detect", help="anomaly scores for a time series, from a CSV or stdin")
    )

    demo = sub.add_parser(
        "demo", help="train RNN, GRU and LSTM on the adding problem: which one remembers?"
    )
    demo.add_argument(
        "--cell",
        choices=["all", "lstm", "gru", "rnn"],
        default="all",
        help="recurrent cell, or all three in turn (default: all)",
    )
    add_options(demo, AddingConfig, exclude=("cell",))  # the cell: all three or one
    demo.add_argument(
        "--plot",
        default="runs/adding.png",
        help="where to write the loss curves as PNG, and next to it <stem>.grad.png, the "
        "gradient reaching each step by distance from the loss; empty: no plots "
        "(default: runs/adding.png)",
    )
    demo.add_argument(
        "--force",
        action="store_true",
        help="replace a --plot file (or its .grad.png) that is not a PNG rnnkit wrote "
        "(default: refuse)",
    )
    demo.add_argument(
        "--json",
        action="store_true",
        help="print the final metrics as one JSON object on the last line (default: off)",
    )
    return parser


def _add_lm_arguments(p: argparse.ArgumentParser) -> None:
    from .tasks.lm_config import LMRunConfig

    add_options(p, LMRunConfig)  # the run's settings, saved in the checkpoint
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved in <out>.last.safetensors exactly (default: a new run)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing file that is not an rnnkit file of this kind; resume a run "
        "whose data or settings differ (default: off, refuse)",
    )
    p.add_argument(
        "--sample",
        type=integer,
        default=400,
        help="tokens to generate from the best checkpoint at the end; 0: none (default: 400)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the final metrics as one JSON object on the last line (default: off)",
    )


def _add_music_arguments(p: argparse.ArgumentParser) -> None:
    from .tasks.music import MusicConfig

    p.add_argument(
        "--data",
        required=True,
        help="the JSB JSON (train/valid/test parts, or a list of pieces, each a list of steps "
        "of MIDI pitches), a .mid file or a folder of .mid files",
    )
    add_options(p, MusicConfig, exclude=("data",))
    _add_fit_flags(p)


def _add_music_generate_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `rnnkit generate` for music checkpoints (--prime is then a MIDI file)."""
    p.set_defaults(length=None)  # None: not given (an error for a music model), else 500
    p.add_argument(
        "--midi", default=None, help="music: write the piece as a MIDI file (default: none)"
    )
    p.add_argument(
        "--png", default=None, help="music: draw the piano roll as a PNG (default: none)"
    )
    p.add_argument(
        "--steps",
        type=integer,
        default=None,
        help="music: time steps to generate after the prime (default: 64)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="music: replace a --midi or --png file that rnnkit did not write (default: refuse)",
    )
    p.add_argument(
        "--json", action="store_true", help="music: the files written, as JSON (default: off)"
    )


def _add_column_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text-column", default="text", help="the text column (default: text)")
    p.add_argument("--label-column", default="label", help="the label column (default: label)")


def _add_fit_flags(p: argparse.ArgumentParser) -> None:
    """--resume, --force and --json of an estimator's training command."""
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the fit saved in <out>.last.safetensors (default: a new run)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing file that is not an rnnkit file of this kind; resume a fit "
        "whose data or settings differ (default: off, refuse)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the final metrics as one JSON object on the last line (default: off)",
    )


def _add_classify_arguments(p: argparse.ArgumentParser) -> None:
    from .tasks.classify import ClassifyConfig

    p.add_argument(
        "--train",
        required=True,
        help="CSV/TSV with a header (text and label columns), or a folder with one subfolder "
        "per label of .txt files, one example per line; audio: a folder per label of .wav "
        "files, or a CSV manifest with path and label columns",
    )
    add_options(p, ClassifyConfig, exclude=("train",))
    _add_fit_flags(p)


# -- commands --------------------------------------------------------------------------------
def _train_lm(args: argparse.Namespace) -> dict[str, Any]:
    from .tasks.lm import DEFAULT_MINUTES, LMRunConfig, SampleConfig, generate, load_lm, train_lm
    from .training import log_to_stderr
    from .training.distributed import is_writer

    cfg = from_args(LMRunConfig, args)
    if cfg.steps is None and cfg.minutes is None:
        cfg = replace(cfg, minutes=DEFAULT_MINUTES)
    _, metrics = train_lm(cfg, resume=args.resume, log=log_to_stderr, force=args.force)
    print(
        f"validation loss {metrics['val_loss']:.4f} nats/{cfg.tokens} "
        f"({metrics['val_bpc']:.3f} bits), {metrics['steps']} steps in "
        f"{metrics['minutes']:.1f} min, {metrics['tokens_per_s']:,.0f} {cfg.tokens}s/s"
    )
    print(
        f"checkpoint: {metrics['checkpoint']} (best validation loss {metrics['best_val_loss']:.4f})"
    )
    if args.sample > 0 and is_writer():
        model, vocab = load_lm(cfg.out)
        temperature = SampleConfig().temperature
        print(f"--- sample ({args.sample} {cfg.tokens}s, temperature {temperature}) ---")
        for piece in generate(model, vocab, "", args.sample, temperature, seed=cfg.seed):
            sys.stdout.write(piece)
        print("\n---")
    return metrics


def _train(args: argparse.Namespace) -> dict[str, Any]:
    if args.task == "forecast":
        from .tasks.forecast import run_train

        return run_train(args)
    if args.task == "transcribe":
        return _train_transcribe(args)
    if args.task == "translate":
        from .tasks.translate import run_train

        return run_train(args)
    if args.task == "music":
        return _train_music(args)
    return _train_classify(args) if args.task == "classify" else _train_lm(args)


def _forecast(args: argparse.Namespace) -> dict[str, Any]:
    from .tasks.forecast import run_backtest, run_forecast

    return run_forecast(args) if args.command == "forecast" else run_backtest(args)


def _train_music(args: argparse.Namespace) -> dict[str, Any]:
    from .tasks.music import MusicConfig, train_music
    from .training import log_to_stderr

    cfg = from_args(MusicConfig, args)
    metrics = train_music(cfg, args.force, log_to_stderr, resume=args.resume)
    line = f"validation NLL {metrics['val_nll']:.3f}"
    if "test_nll" in metrics:
        line += f", test NLL {metrics['test_nll']:.3f}"
    print(
        f"{line} nats per step (summed over 88 keys); {metrics['parameters']:,} parameters, "
        f"{metrics['steps']} steps ({metrics['stopped']})"
    )
    print(f"checkpoint: {metrics['checkpoint']}")
    return metrics


def _train_transcribe(args: argparse.Namespace) -> dict[str, Any]:
    from .tasks.transcribe import TranscribeConfig, train_transcribe

    cfg = from_args(TranscribeConfig, args)
    metrics = train_transcribe(cfg, args.force)
    line = f"best validation loss {metrics['best_val_loss']:.4f}"
    if "test_wer" in metrics:
        line += f", test CER {metrics['test_cer']:.4f}, WER {metrics['test_wer']:.4f}"
    print(f"{line}; {metrics['steps']} steps ({metrics['stopped']})")
    print(f"checkpoint: {metrics['checkpoint']}")
    return metrics


def _transcribe(args: argparse.Namespace) -> dict[str, Any]:
    from .errors import InputError
    from .tasks.transcribe import transcribe_files

    if args.beam < 1:
        raise InputError(f"--beam: expected at least 1, got {args.beam}")
    out, metrics = transcribe_files(
        args.checkpoint, args.files, args.beam, args.test, args.transcript_column, args.lexicon
    )
    for name, text in out:
        print(f"{name}\t{text}")
    if metrics:
        print(
            f"CER {metrics['cer']:.4f}  WER {metrics['wer']:.4f}  "
            f"({metrics['utterances']} utterances)"
        )
    return metrics


def _train_classify(args: argparse.Namespace) -> dict[str, Any]:
    from .tasks.classify import ClassifyConfig, train_classify
    from .training import log_to_stderr

    cfg = from_args(ClassifyConfig, args)
    metrics = train_classify(cfg, args.force, log_to_stderr, resume=args.resume)
    if "cv_accuracy" in metrics:
        folds = " ".join(f"{a:.4f}" for a in metrics["cv_accuracy"])
        print(
            f"cross-validation accuracy {metrics['cv_accuracy_mean']:.4f} ± "
            f"{metrics['cv_accuracy_std']:.4f} over {len(metrics['cv_accuracy'])} folds ({folds})"
        )
    line = f"validation accuracy {metrics['val_accuracy']:.4f}"
    if "test_accuracy" in metrics:
        line += f", test accuracy {metrics['test_accuracy']:.4f}, "
        line += f"macro-F1 {metrics['test_macro_f1']:.4f}"
    print(f"{line}; {metrics['steps']} steps ({metrics['stopped']})")
    print(f"checkpoint: {metrics['checkpoint']}")
    return metrics


def _evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from .tasks.classify import evaluate

    scores = evaluate(
        args.checkpoint, args.test, args.text_column, args.label_column, args.plot, args.force
    )
    print(f"{'class':20s}{'precision':>10s}{'recall':>8s}{'f1':>8s}{'support':>9s}")
    for name, c in scores["classes"].items():
        print(
            f"{name[:20]:20s}{c['precision']:10.3f}{c['recall']:8.3f}{c['f1']:8.3f}"
            f"{int(c['support']):9d}"
        )
    print(f"accuracy {scores['accuracy']:.4f}  macro-F1 {scores['macro_f1']:.4f}")
    print(f"confusion matrix: {scores['plot']}")
    keys = ("accuracy", "macro_f1", "examples", "classes", "confusion", "plot")
    return {k: scores[k] for k in keys}


def _predict(args: argparse.Namespace) -> dict[str, Any]:
    from .tasks.classify import (
        check_explain,
        explain,
        front_end,
        load_classifier,
        predict_audio,
        read_lines,
    )

    clf = load_classifier(args.checkpoint)
    inputs = [args.checkpoint, *args.files]
    figure = check_explain(clf, args.explain, inputs, args.force) if args.explain else None
    front = front_end(args.checkpoint)
    if front is not None:  # an audio classifier: one line per WAV file
        from .audio.files import wav_paths

        files = wav_paths(args.files, "predict")  # a folder: its .wav files
        for name, p in zip(files, predict_audio(clf, front, files), strict=True):
            k = int(p.argmax())
            label, prob = str(clf.classes_[k]), float(p[k])
            record = {"file": name, "label": label, "probability": prob}
            print(json.dumps(record) if args.json else f"{name}\t{label}\t{prob:.4f}")
        args.json = False
        return {}
    lines = read_lines(args.files, sys.stdin)
    if lines:
        proba = clf.predict_proba(lines)
        for p in proba:
            k = int(p.argmax())
            label, prob = str(clf.classes_[k]), float(p[k])
            print(
                json.dumps({"label": label, "probability": prob})
                if args.json
                else f"{label}\t{prob:.4f}"
            )
    if figure is not None and lines:
        print(f"attention heat map: {explain(clf, lines, figure)}", file=sys.stderr)
    args.json = False  # the lines are the output; no metrics line
    return {}


def _generate(args: argparse.Namespace) -> dict[str, Any]:
    from .tasks.lm_config import SampleConfig
    from .tasks.lm_generate import generate, load_lm
    from .tasks.music import check_generate_options, generate_music, is_music_checkpoint

    music = is_music_checkpoint(args.checkpoint)
    check_generate_options(args, music)
    if music:
        return generate_music(args)
    args.json = False  # the text is the output
    if args.length is None:
        args.length = SampleConfig().length
    cfg = from_args(SampleConfig, args)
    model, vocab = load_lm(args.checkpoint)
    pieces = generate(model, vocab, cfg.prime, cfg.length, cfg.temperature, cfg.top_k, cfg.seed)
    sys.stdout.write(cfg.prime)  # after generate's checks and warnings
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return {}


def _stdin_is_a_file() -> bool:
    """Whether standard input is a regular file (read back to back) rather than a pipe or a
    terminal (which may come at the pace of the world)."""
    try:
        return stat.S_ISREG(os.fstat(sys.stdin.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):  # replaced by an object without a descriptor
        return False


def _stream(args: argparse.Namespace) -> dict[str, Any]:
    from .signals import StopSignal
    from .tasks.streaming import LineServer, serve

    if args.audio is not None:
        from .tasks.speech_stream import stream_audio

        return stream_audio(args.checkpoint, args.audio, args.realtime, sys.stdout)
    # lines from a pipe or a terminal may come live, at the pace of a sensor: each step then on
    # one core (`Stream`); a file redirected to stdin comes back to back
    paced = not _stdin_is_a_file() if args.paced is None else args.paced
    server = LineServer(args.checkpoint, args.quantize, paced=paced)
    if args.state:
        _load_stream_state(server, args)
    if hasattr(sys.stdin, "reconfigure"):  # bytes that are not UTF-8: unknown, not a traceback
        sys.stdin.reconfigure(errors="replace")
    stop = StopSignal()
    with stop.installed():  # SIGTERM, SIGINT: stop after the current line, then save
        try:
            report = serve(server, sys.stdin, sys.stdout, sys.stderr, args.on_error, stop)
        finally:
            if args.state and server.stream.state is not None:
                server.stream.save_state(args.state)
    if report.signal is not None:  # one line, then 128 + the signal's number, as shells do
        print(_stopped_message(report, args.state, server.stream.state), file=sys.stderr)
        raise SystemExit(128 + report.signal)
    return {"lines": report.lines, "errors": report.errors}


def _stopped_message(report: Any, state_path: str | None, state: Any) -> str:
    import signal

    if not state_path:
        saved = "no --state given, the state is not saved"
    elif state is None:
        saved = f"no state yet, {state_path!r} left as it was"
    else:
        saved = f"state saved to {state_path!r}"
    name = signal.Signals(report.signal).name
    return f"rnnkit stream: stopped by {name} after {report.lines} lines; {saved}"


def _load_stream_state(server: Any, args: argparse.Namespace) -> None:
    """Check --state before any input is read; load it when it holds a state."""
    from .files import check_output, is_rnnkit_file

    path = check_output(
        args.state, "state", inputs=(args.checkpoint,), force=args.force, what="--state"
    )
    if path.exists() and is_rnnkit_file(path, "state"):  # else --force: replaced at exit
        server.stream.load_state(path)


def _serve(args: argparse.Namespace) -> dict[str, Any]:
    from .serve.config import ServeConfig
    from .serve.run import serve

    signum = serve(args.checkpoint, from_args(ServeConfig, args))
    if signum:
        raise SystemExit(128 + signum)
    return {}


def _demo(args: argparse.Namespace) -> dict[str, Any]:
    from .files import check_output
    from .tasks.adding import (
        GRAD_WINDOW,
        AddingConfig,
        gradient_plot_path,
        plot_curves,
        plot_gradients,
        train_adding,
    )

    if args.plot:
        check_output(args.plot, "png", force=args.force, what="--plot")
        check_output(gradient_plot_path(args.plot), "png", force=args.force, what="--plot")
    cells = ["rnn", "gru", "lstm"] if args.cell == "all" else [args.cell]
    print(
        f"adding problem: remember two marked values across T={args.length} steps and add "
        f"them; guessing the mean scores MSE 0.167",
        file=sys.stderr,
    )
    results: dict[str, dict] = {}
    curves: dict[str, list[float]] = {}
    for cell in cells:
        cfg = from_args(AddingConfig, args, cell=cell)
        curves[cell] = []
        with _progress() as progress:
            task = progress.add_task(f"{cell.upper():5s}", total=cfg.steps, msg="")

            def report(step: int, loss: float, cell: str = cell, task=task, progress=progress):
                curves[cell].append(loss)
                if step % 20 == 0:
                    recent = sum(curves[cell][-20:]) / 20
                    progress.update(task, completed=step, msg=f"train mse {recent:.4f}")

            _, results[cell] = train_adding(cfg, report)
    print(f"{'cell':6s}{'test mse':>10s}{'vs guessing':>13s}{'seconds':>9s}{'grad ratio':>12s}")
    for cell, m in results.items():
        ratio = m["test_mse"] / m["baseline_mse"]
        print(
            f"{cell.upper():6s}{m['test_mse']:10.4f}{ratio:12.1%}{60 * m['minutes']:9.1f}"
            f"{m['grad_ratio']:12.1e}"
        )
    print(
        f"grad ratio: |dL/dh_0| / |dL/dh_{args.length - 1}|, the share of the gradient that "
        f"reaches the first step (last {GRAD_WINDOW} training steps)"
    )
    if args.plot:
        path = plot_curves(curves, args.plot, args.length)
        print(f"loss curves: {path}", file=sys.stderr)
        path = plot_gradients(results, gradient_plot_path(args.plot), args.length)
        print(f"gradient by distance from the loss: {path}", file=sys.stderr)
    return (
        {cell: m["test_mse"] for cell, m in results.items()}
        | {f"grad_ratio_{cell}": m["grad_ratio"] for cell, m in results.items()}
        | {"baseline_mse": 1.0 / 6.0, "steps": args.steps, "length": args.length}
    )


def _progress():
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[msg]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )


def _data(args: argparse.Namespace) -> dict[str, Any]:
    from .tasks.speech_data import FsddConfig, prepare
    from .training import log_to_stderr

    if args.dataset == "voices":
        from .tasks.speech_voices import VoicesConfig, generate

        summary = generate(from_args(VoicesConfig, args), log_to_stderr)
        print(
            f"{summary['out']}: {summary['files']} recordings of {summary['voices']} synthetic "
            f"voices ({summary['engines']}), {summary['seconds_median']:.2f} s median"
        )
        return summary
    result = prepare(from_args(FsddConfig, args), log_to_stderr)
    print(
        f"{result['out']}: {result['classify_train']} + {result['classify_test']} recordings "
        f"in folders per digit (classify/), {result['strings']} digit strings (strings/)"
    )
    return result


def _translate(args: argparse.Namespace) -> dict[str, Any]:
    from .tasks.translate import run_translate

    return run_translate(args)


def _detect(args: argparse.Namespace) -> dict[str, Any]:
    from .tasks.detect import run_detect

    return run_detect(args)


COMMANDS = {
    "data": _data,
    "detect": _detect,
    "train": _train,
    "evaluate": _evaluate,
    "predict": _predict,
    "transcribe": _transcribe,
    "translate": _translate,
    "generate": _generate,
    "stream": _stream,
    "serve": _serve,
    "demo": _demo,
    "forecast": _forecast,
    "backtest": _forecast,
}


def _restart_with_blas_timeout() -> None:
    """Start the command again, once, with ``OPENBLAS_THREAD_TIMEOUT=4`` when the environment
    has no value: OpenBLAS reads it only when NumPy loads it, which the package root has done
    by now, and without it OpenBLAS's idle threads spin and take a core from the compiled time
    loops (`rnnkit.tune_process`). ``os.execv`` keeps the process id; the second start finds
    the variable set. A value the user set is kept as it is."""
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ:
        return
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"
    os.execv(sys.executable, [sys.executable, "-m", "rnnkit.cli", *sys.argv[1:]])


def _launch(nproc: int, argv: list[str]) -> int:
    """``--nproc N``: the same command as N processes through torchrun, without ``--nproc``."""
    from .training.distributed import launch

    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    try:
        return launch(nproc, rest)
    except RnnkitError as exc:
        print(f"rnnkit: error: {exc}", file=sys.stderr)
        return 2


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """rnnkit's warnings as one line each; others as Python shows them."""
    if issubclass(category, RnnkitWarning):
        print(f"rnnkit: warning: {message}", file=sys.stderr, flush=True)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # run as the `rnnkit` program, not called from Python
        _restart_with_blas_timeout()
    # first: malloc set before the first large buffer
    tune_process()
    args = build_parser().parse_args(argv)
    if getattr(args, "nproc", 1) > 1:
        return _launch(args.nproc, sys.argv[1:] if argv is None else argv)
    from .training.distributed import is_writer

    if not is_writer():  # a rank of a data-parallel run but the first: rank 0 reports
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            warnings.simplefilter("always", RnnkitWarning)
            metrics = COMMANDS[args.command](args)
    except MemoryError:
        print(
            "rnnkit: error: out of memory; expected a model and batch that fit in this "
            "machine's memory (reduce --hidden, --batch or --bptt)",
            file=sys.stderr,
        )
        return 2
    except DistributedError as exc:  # a rank stopped: the others report it, then resume
        print(f"rnnkit: error: {exc}", file=sys.stderr)
        return 1
    except TrainingDiverged as exc:
        print(f"rnnkit: {exc}", file=sys.stderr)
        return 1
    except RnnkitError as exc:
        print(f"rnnkit: error: {exc}", file=sys.stderr)
        return 2
    except Stopped as exc:  # a second SIGINT or SIGTERM: at once, files intact (atomic writes)
        print(f"rnnkit: stopped by {exc}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `rnnkit generate ... | head`
        return 0
    if getattr(args, "json", False):
        print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
