"""`make eval-translate`: English to French and English to German (Tatoeba/Anki pairs in
../shared/data/translation), rnnkit's default `Seq2Seq` beside the same network in PyTorch.

For each language pair, one after another, each in its own process with the same thread pins:

1. rnnkit with attention: ``rnnkit train translate --pairs FILE --minutes M --json`` (the
   default model: Luong "general" attention over a bidirectional GRU encoder);
2. rnnkit without attention: the same with ``--attention none``;
3. PyTorch with attention: `benchmarks/translate_torch.py`, the same network, data, split,
   vocabularies (rnnkit's own `rnnkit.data.pairs`), optimiser, schedule, budget and beam.

All three hold out the same validation and test pairs (`split_pairs`, seed 0), pick their best
weights by greedy validation BLEU and score the test pairs with beam search (``--beam``) by
sacreBLEU's corpus BLEU and chrF on detokenised output. Then ``--repeats`` interleaved rounds
of short training runs (``--throughput-steps`` steps each, rnnkit then PyTorch, separate
processes) give the training throughput in sentence pairs per second and the median ratio.
Three example translations of each model and the attention plot of the first (``rnnkit
translate --attention``) go with the table.

    python benchmarks/eval_translate.py [--minutes 20] [--beam 5] [--repeats 3]
        [--langs fra,deu] [--out runs/eval-translate] [--quick]

Writes <out>/results.json, <out>/table.md, the models and eng-XXX-attention.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

DATA = ROOT.parent / "shared" / "data" / "translation"
LANGS = {"fra": ("English to French", "eng-fra.txt"), "deu": ("English to German", "eng-deu.txt")}
THREADS = "2"
PARALLEL = 1  # models trained at once, each pinned to a core
EXAMPLES = 3
# the rnnkit runs: name, extra options of `rnnkit train translate`
RNNKIT_RUNS = [("rnnkit, attention", []), ("rnnkit, no attention", ["--attention", "none"])]
TORCH_RUN = "PyTorch, attention"
# a tiny model for the smoke test (both sides)
QUICK = {"embedding": 32, "hidden": 32}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RNNKIT_NUM_THREADS"):
        env[key] = THREADS
    env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    return env


def _run(
    cmd: list[str], stdin: str | None = None, cpu: int | None = None
) -> tuple[dict, list[str]]:
    """Run a command in its own process (pinned to core ``cpu`` by ``taskset`` if given); the
    JSON of its last stdout line and the lines before it."""
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, env=_env(), cwd=ROOT, check=False
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"eval-translate: {' '.join(cmd[:6])} ... failed ({proc.returncode})")
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]), lines[:-1]


def rnnkit_defaults() -> dict[str, Any]:
    """rnnkit's default `Seq2Seq` parameters, for the PyTorch side's --params."""
    from rnnkit.estimators.seq2seq import Seq2Seq

    return Seq2Seq().get_params()


def torch_params(quick: bool) -> dict[str, Any]:
    import translate_torch

    ours = rnnkit_defaults()
    p = {k: ours[k] for k in translate_torch.DEFAULTS if k in ours}
    if quick:
        p |= {"embedding_dim": QUICK["embedding"], "hidden_size": QUICK["hidden"]}
    return p


def test_sources(path: Path, n: int) -> list[str]:
    """The first ``n`` distinct test sources of the split every side makes."""
    from rnnkit.data.pairs import read_pairs, split_pairs

    split = split_pairs(read_pairs(path), 0, source=repr(str(path)))
    seen: list[str] = []
    for source, _ in split.test:
        if source not in seen:
            seen.append(source)
        if len(seen) == n:
            break
    return seen


def train_rnnkit(
    path: Path, out: Path, extra: list[str], args: argparse.Namespace, cpu: int | None = None
) -> dict:
    cmd = [sys.executable, "-m", "rnnkit.cli", "train", "translate", "--pairs", str(path)]
    cmd += ["--minutes", str(args.minutes), "--beam", str(args.beam), "--out", str(out)]
    cmd += ["--json", "--force", *extra]
    if args.quick:
        cmd += ["--embedding", str(QUICK["embedding"]), "--hidden", str(QUICK["hidden"])]
    return _run(cmd, cpu=cpu)[0]


def translate_rnnkit(model: Path, sentences: list[str], beam: int, png: Path | None) -> list[str]:
    cmd = [sys.executable, "-m", "rnnkit.cli", "translate", str(model), "--beam", str(beam)]
    cmd += ["--json"]
    if png is not None:
        cmd += ["--attention", str(png), "--force"]
    _, lines = _run(cmd, "\n".join(sentences) + "\n")
    return lines[: len(sentences)]


def train_torch(path: Path, args: argparse.Namespace, params: dict, cpu: int | None = None) -> dict:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "translate_torch.py"), "--pairs", str(path)]
    cmd += ["--minutes", str(args.minutes), "--beam", str(args.beam), "--threads", THREADS]
    cmd += ["--params", json.dumps(params)]
    return _run(cmd, cpu=cpu)[0]


def throughput_rnnkit(path: Path, steps: int, quick: bool) -> float:
    cmd = [sys.executable, __file__, "--throughput-worker", str(path), str(steps)]
    return float(_run(cmd + (["--quick"] if quick else []))[0]["pairs_per_second"])


def throughput_torch(path: Path, steps: int, params: dict) -> float:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "translate_torch.py"), "--pairs", str(path)]
    cmd += ["--steps", str(steps), "--threads", THREADS, "--params", json.dumps(params)]
    return float(_run(cmd)[0]["pairs_per_second"])


def throughput_worker(path: str, steps: int, quick: bool) -> dict:
    """rnnkit's side of a throughput round: `Seq2Seq` for ``steps`` steps on the training part
    of the same split (a few validation pairs, as the Trainer evaluates at the end); its
    ``throughput_`` (pairs per second of step time, the first 20 steps left out)."""
    from rnnkit.data.pairs import read_pairs, split_pairs
    from rnnkit.estimators.seq2seq import Seq2Seq

    split = split_pairs(read_pairs(path), 0, source=repr(path))
    size: dict[str, Any] = (
        {"embedding_dim": QUICK["embedding"], "hidden_size": QUICK["hidden"]} if quick else {}
    )
    model = Seq2Seq(steps=steps, **size)
    valid = split.valid[:16]
    model.fit(
        [s for s, _ in split.train],
        [t for _, t in split.train],
        [s for s, _ in valid],
        [t for _, t in valid],
    )
    return {"side": "rnnkit", "pairs_per_second": model.throughput_, "steps": model.n_steps_}


def machine() -> dict:
    import bench_machine

    versions = bench_machine.versions()
    return {
        "cpu_model": bench_machine.cpu_model(),
        "isa": bench_machine.isa(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "versions": {k: versions.get(k) for k in ("python", "numpy", "numba", "torch")},
        "threads": THREADS,
        "parallel": PARALLEL,
    }


def table(results: dict, args: argparse.Namespace) -> list[str]:
    lines = [
        f"Test BLEU and chrF (sacreBLEU, beam {args.beam}) after {args.minutes:g} minutes of "
        f"training each, {THREADS} threads; training throughput in sentence pairs per second.",
        "",
        "| pairs | model | test BLEU | test chrF | valid BLEU (greedy) | steps | pairs/s "
        "(this run) | pairs/s (median of rounds) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for lang, r in results.items():
        name = LANGS[lang][0]
        speed = r.get("throughput", {})
        for model, m in r["models"].items():
            side = "torch" if model == TORCH_RUN else "rnnkit"
            median = speed.get(f"{side}_median") if model != "rnnkit, no attention" else None
            lines.append(
                f"| {name} | {model} | **{m['test_bleu']:.2f}** | {m['test_chrf']:.1f} | "
                f"{m['val_bleu']:.2f} | {m['steps']} | {m['pairs_per_second']:,.0f} | "
                + (f"{median:,.0f} |" if median else "|")
            )
    lines.append("")
    for lang, r in results.items():
        models, speed = r["models"], r.get("throughput", {})
        ours, theirs = models["rnnkit, attention"], models[TORCH_RUN]
        note = (
            f"{LANGS[lang][0]}: rnnkit / PyTorch training throughput "
            f"{ours['pairs_per_second'] / theirs['pairs_per_second']:.2f}x in the budgeted runs"
        )
        if speed:
            note += (
                f", {speed['ratio']:.2f}x median of {len(speed['rnnkit'])} interleaved rounds of "
                f"{speed['steps']} steps"
            )
        sig = r.get("significance", {})
        none = models["rnnkit, no attention"]
        chance, chance_none = "", ""
        if sig:
            lo, hi = sig["ci95"]
            chance = (
                f" (paired bootstrap p = {sig['p_vs_torch']:.3f})"
                if sig.get("p_vs_torch") is not None
                else f" (rnnkit's 95 % bootstrap interval {lo:.2f}-{hi:.2f})"
            )
            chance_none = f" (paired bootstrap p = {sig['p_vs_no_attention']:.3f})"
        lines.append(
            note
            + f"; test BLEU rnnkit - PyTorch {ours['test_bleu'] - theirs['test_bleu']:+.2f}"
            + chance
            + f"; attention - none {ours['test_bleu'] - none['test_bleu']:+.2f}"
            + chance_none
            + (f"; {sig['sentences']:,} test pairs" if sig else "")
            + "."
        )
    return lines


def examples_md(results: dict) -> list[str]:
    lines = []
    for lang, r in results.items():
        lines += ["", f"{LANGS[lang][0]}, the first {EXAMPLES} distinct test sentences:", ""]
        for e in r["examples"]:
            lines.append(f"- *{e['source']}* (reference: {' / '.join(e['references'])})")
            for model, text in e["translations"].items():
                lines.append(f"  - {model}: {text}")
    return lines


def _kept(path: Path, args: argparse.Namespace, train: Any, cpu: int | None = None) -> dict:
    """A model's metrics: with --keep, those a run of the same budget and beam saved in
    ``path``; else (or if there are none) from training it now (``train(cpu)``), saved there
    with the load average it ran under."""
    if args.keep and path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("budget") == [args.minutes, args.beam, THREADS]:
            print(f"  kept from {path}", file=sys.stderr, flush=True)
            return saved
    result = {**train(cpu), "budget": [args.minutes, args.beam, THREADS]}
    result["load_average_after"] = os.getloadavg()
    path.write_text(json.dumps(result))
    return result


def train_all(langs: list[str], args: argparse.Namespace, out: Path, params: dict) -> dict:
    """Train (or, with --keep, reload) every model: {lang: {model: metrics}}.

    With ``--parallel 2`` the models run two at a time, each pinned to its own core, in rounds
    that put side by side the two models being compared (rnnkit with attention beside PyTorch
    with attention on the same pairs; then the two models without attention), so that both
    sides of a comparison see the same machine load in the same minutes."""
    jobs: list[tuple[str, str, Any]] = []  # (lang, model, train(cpu))
    for lang in langs:
        path = args.data / LANGS[lang][1]
        if not path.is_file():
            raise SystemExit(f"eval-translate: the data is missing: {path}")
        for model, extra in RNNKIT_RUNS:
            if extra:
                continue
            ckpt = out / f"eng-{lang}-attention.safetensors"
            jobs.append((lang, model, partial(train_rnnkit, path, ckpt, extra, args)))
        jobs.append((lang, TORCH_RUN, partial(train_torch, path, args, params)))
    for lang in langs:
        path = args.data / LANGS[lang][1]
        for model, extra in RNNKIT_RUNS:
            if extra:
                ckpt = out / f"eng-{lang}-none.safetensors"
                jobs.append((lang, model, partial(train_rnnkit, path, ckpt, extra, args)))
    tags = {"rnnkit, attention": "attention", "rnnkit, no attention": "none", TORCH_RUN: "torch"}
    found: dict[str, dict[str, dict]] = {lang: {} for lang in langs}
    step = max(1, args.parallel)
    for start in range(0, len(jobs), step):
        group = jobs[start : start + step]
        names = " | ".join(f"{LANGS[lang][0]}: {model}" for lang, model, _ in group)
        print(f"{names}, {args.minutes:g} min ...", file=sys.stderr, flush=True)
        pins = list(range(len(group))) if step > 1 else [None] * len(group)
        with ThreadPoolExecutor(max_workers=len(group)) as pool:
            futures = [
                pool.submit(_kept, out / f"eng-{lang}-{tags[model]}.json", args, train, cpu)
                for (lang, model, train), cpu in zip(group, pins, strict=True)
            ]
            for (lang, model, _), future in zip(group, futures, strict=True):
                found[lang][model] = future.result()
                _say(f"{LANGS[lang][0]}: {model}", found[lang][model])
    # the table's order: attention, no attention, PyTorch
    order = [m for m, _ in RNNKIT_RUNS] + [TORCH_RUN]
    return {lang: {m: found[lang][m] for m in order} for lang in langs}


def run_language(
    lang: str, args: argparse.Namespace, out: Path, params: dict, models: dict[str, dict]
) -> dict:
    """One language pair's examples, attention plot and throughput rounds, beside the
    metrics of its trained ``models``."""
    path = args.data / LANGS[lang][1]
    name = LANGS[lang][0]
    checkpoints = {
        model: out / f"eng-{lang}-{'attention' if not extra else 'none'}.safetensors"
        for model, extra in RNNKIT_RUNS
    }

    sources = test_sources(path, EXAMPLES)
    torch_examples = {e["source"]: e for e in models[TORCH_RUN]["examples"]}
    from rnnkit.data.pairs import read_pairs, split_pairs

    refs: dict[str, list[str]] = {}
    for s, t in split_pairs(read_pairs(path), 0, source=repr(str(path))).test:
        refs.setdefault(s, []).append(t)
    png = out / f"eng-{lang}-attention.png"
    found = {
        model: translate_rnnkit(ckpt, sources, args.beam, png if "no" not in model else None)
        for model, ckpt in checkpoints.items()
    }
    examples = []
    for i, source in enumerate(sources):
        translations = {model: found[model][i] for model in checkpoints}
        translations[TORCH_RUN] = torch_examples.get(source, {}).get("translation", "")
        examples.append(
            {"source": source, "references": refs[source], "translations": translations}
        )
    result: dict[str, Any] = {"pairs": str(path), "models": models, "examples": examples}
    result["attention_png"] = str(png)
    print(f"{name}: significance of rnnkit - PyTorch", file=sys.stderr, flush=True)
    result["significance"] = significance(path, lang, out, models, args.beam)

    if args.repeats:
        speeds: dict[str, list[float]] = {"rnnkit": [], "torch": []}
        for r in range(args.repeats):
            print(f"{name}: throughput round {r + 1}/{args.repeats}", file=sys.stderr, flush=True)
            speeds["rnnkit"].append(throughput_rnnkit(path, args.throughput_steps, args.quick))
            speeds["torch"].append(throughput_torch(path, args.throughput_steps, params))
        med = {k: statistics.median(v) for k, v in speeds.items()}
        result["throughput"] = {
            **speeds,
            "steps": args.throughput_steps,
            "rnnkit_median": med["rnnkit"],
            "torch_median": med["torch"],
            "ratio": med["rnnkit"] / med["torch"],
        }
    return result


def significance(path: Path, lang: str, out: Path, models: dict[str, dict], beam: int) -> dict:
    """Are rnnkit's test BLEU differences more than chance?

    rnnkit's saved models (with and without attention) translate the test sources again
    (beam ``beam``). sacreBLEU's paired bootstrap resampling (1,000 resamples, seed 12345)
    gives the p-value of rnnkit with attention against rnnkit without, and against PyTorch
    when its run saved its test translations (an older run did not: then only the 95 %
    bootstrap interval of rnnkit's BLEU is given for that comparison)."""
    import numpy as np
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest, _bootstrap_resample, estimate_ci

    import rnnkit
    from rnnkit.data.pairs import read_pairs, split_pairs

    test = split_pairs(read_pairs(path), 0, source=repr(str(path))).test
    sources = [s for s, _ in test]
    model = rnnkit.load(str(out / f"eng-{lang}-attention.safetensors"))
    hyps = model.predict(sources, beam)
    none = rnnkit.load(str(out / f"eng-{lang}-none.safetensors")).predict(sources, beam)
    refs = [model.tokenizer_.normalize(t) for _, t in test]
    bleu = BLEU()
    stats = bleu._extract_corpus_statistics(hyps, [refs])
    _, resampled = _bootstrap_resample(stats, bleu, 1000)
    mean, ci = estimate_ci(np.array([x.score for x in resampled]))
    result: dict[str, Any] = {
        "sentences": len(test),
        "test": "paired bootstrap resampling, 1000 resamples (sacreBLEU)",
        "rnnkit_bleu": bleu.corpus_score(hyps, [refs]).score,
        "ci95": [float(mean - ci), float(mean + ci)],
    }

    def p_value(baseline: tuple[str, list[str]]) -> float | None:
        paired = PairedTest(
            [baseline, ("rnnkit, attention", hyps)],
            {"BLEU": BLEU()},
            [refs],
            test_type="bs",
            n_samples=1000,
        )
        return getattr(paired()[1]["BLEU"][1], "p_value", None)

    result["p_vs_no_attention"] = p_value(("rnnkit, no attention", none))
    theirs = models[TORCH_RUN].get("hypotheses")
    if theirs and len(theirs) == len(hyps):
        result["p_vs_torch"] = p_value((TORCH_RUN, theirs))
    return result


def _say(model: str, m: dict) -> None:
    print(
        f"  {model}: test BLEU {m['test_bleu']:.2f}, chrF {m['test_chrf']:.1f}, valid BLEU "
        f"{m['val_bleu']:.2f}, {m['steps']} steps, {m['pairs_per_second']:,.0f} pairs/s",
        file=sys.stderr,
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DATA, help="folder of eng-fra.txt, eng-deu.txt")
    p.add_argument("--minutes", type=float, default=20.0, help="training budget of each model")
    p.add_argument("--beam", type=int, default=5, help="beam width of the test scores")
    p.add_argument("--langs", default="fra,deu", help="which pairs: fra, deu or both")
    p.add_argument("--repeats", type=int, default=3, help="interleaved throughput rounds")
    p.add_argument("--throughput-steps", type=int, default=60, help="steps per throughput run")
    p.add_argument(
        "--threads", default="2", help="BLAS/OpenMP/torch threads of every run, both sides"
    )
    p.add_argument(
        "--parallel",
        type=int,
        default=1,
        choices=(1, 2),
        help="models trained at once: 2 pins the two compared models to a core each "
        "(use with --threads 1)",
    )
    p.add_argument("--out", type=Path, default=None, help="results folder")
    p.add_argument(
        "--keep",
        action="store_true",
        help="reuse each model's metrics saved in --out by a run of the same budget",
    )
    p.add_argument("--quick", action="store_true", help="a tiny model for seconds: a smoke test")
    p.add_argument("--throughput-worker", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    global THREADS, PARALLEL
    THREADS = str(args.threads)
    PARALLEL = args.parallel
    if args.throughput_worker:
        path, steps = args.throughput_worker
        print(json.dumps(throughput_worker(path, int(steps), args.quick)))
        return
    if args.quick:
        args.minutes, args.repeats, args.throughput_steps, args.beam = 0.2, 1, 8, 2
        args.langs = "fra" if args.langs == "fra,deu" else args.langs
    if args.out is None:
        args.out = ROOT / "runs" / ("eval-translate-quick" if args.quick else "eval-translate")
    langs = [x.strip() for x in args.langs.split(",") if x.strip()]
    unknown = [x for x in langs if x not in LANGS]
    if unknown or not langs:
        raise SystemExit(f"eval-translate: --langs expected fra and/or deu, got {args.langs!r}")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    where = machine()
    print(
        f"machine: {where['cpu_model']}, {where['cores']} cores, load {where['load_average']}, "
        f"{THREADS} threads per run; {where['versions']}",
        file=sys.stderr,
    )
    params = torch_params(args.quick)
    start = time.time()
    trained = train_all(langs, args, out, params)
    results = {lang: run_language(lang, args, out, params, trained[lang]) for lang in langs}
    report = {
        "machine": where,
        "command": " ".join(sys.argv),
        "minutes": args.minutes,
        "beam": args.beam,
        "torch_params": params,
        "wall_minutes": (time.time() - start) / 60,
        "results": results,
    }
    (out / "results.json").write_text(json.dumps(report, indent=2))
    lines = [
        f"Machine: {where['cpu_model']}, {where['cores']} cores (load average at the start "
        f"{', '.join(f'{x:.1f}' for x in where['load_average'])}); "
        + ", ".join(f"{k} {v}" for k, v in where["versions"].items()),
        "",
        *table(results, args),
        *examples_md(results),
    ]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nresults: {out / 'results.json'}; attention plots: {out}/eng-*-attention.png")


if __name__ == "__main__":
    main()
