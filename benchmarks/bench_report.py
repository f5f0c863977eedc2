"""The table, the JSON and the plot of `make bench` (see bench.py), with the issue's targets."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from bench_machine import header  # benchmarks/ is on sys.path: bench.py is run as a script

GATES = {"lstm": 4, "gru": 3}
NAMES = {
    "torch": "PyTorch",
    "torch-cell": "LSTMCell",
    "torch-seq": "LSTM T=1",
    "ort": "ONNX RT",
    "ort float32": "ONNX RT float32",
}


def train_flops(case: dict) -> float:
    """Multiply-adds x 2 of the forward's products, times 3 for forward + backward."""
    H, T, B, L = case["H"], case["T"], case["B"], case.get("layers", 1)
    D = 2 if case.get("bidir") else 1
    G = GATES[case["cell"]]
    total = 0.0
    for layer in range(L):
        F = H if layer == 0 else D * H
        total += D * 2.0 * T * B * G * H * (F + H)
    return 3.0 * total


def targets(row: dict, medians: dict) -> list[tuple[str, float, float]]:
    """(peer, ratio, target) pairs the issue sets for this row."""
    case, got = row["case"], medians[row["case"]["id"]]
    kind, H = case["kind"], case["H"]
    out = []
    if kind == "train":
        out.append(("torch", got["torch"] / got["rnnkit"], 1.5 if case.get("bidir") else 1.0))
    elif kind == "infer":
        out.append(("ort", got["ort"] / got["rnnkit"], 1.0))
    elif kind == "stream" and case["weights"] == "float32":
        if H <= 128:
            out.append(("torch-cell", got["torch-cell"] / got["rnnkit"], 5.0))
            out.append(("ort", got["ort"] / got["rnnkit"], 3.0))
        elif H == 256:
            out.append(("ort", got["ort"] / got["rnnkit"], 1.5))
    return out


def report(rows, medians, out: Path, machine: dict, repeats: int, quick: bool):
    lines = [
        *header(machine),
        f"2 threads on every side; median of {repeats} alternating rounds (separate processes)."
        " Ratio = peer time / rnnkit time (above 1: rnnkit is faster).",
        "",
        "| case | rnnkit | peers | ratio (peer / rnnkit) | targets |",
        "|---|---|---|---|---|",
    ]
    matmul = {
        r["case"]["H"]: medians[r["case"]["id"]]["rnnkit"]
        for r in rows
        if r["case"]["kind"] == "matmul"
    }
    ort_stream = {
        r["case"]["H"]: medians[r["case"]["id"]].get("ort")
        for r in rows
        if r["case"]["kind"] == "stream" and r["case"]["weights"] == "float32"
    }
    results, finite = [], True
    for row in rows:
        case = row["case"]
        got = dict(medians[case["id"]])
        finite &= all(math.isfinite(v) for v in got.values())
        kind = case["kind"]
        if kind in ("matmul", "memory"):
            continue
        unit, scale = ("us", 1e6) if kind == "stream" else ("ms", 1e3)
        ours = got["rnnkit"]
        peers = list(row["peers"])
        if kind == "stream" and not peers and ort_stream.get(case["H"]):
            got["ort float32"] = ort_stream[case["H"]]
            peers = ["ort float32"]
        times = ", ".join(f"{NAMES.get(p, p)} {got[p] * scale:,.1f}" for p in peers)
        ratios = ", ".join(f"{NAMES.get(p, p)} {got[p] / ours:.2f}" for p in peers)
        goals = [
            f"{NAMES[p]} >= {t:g}: {'met' if r >= t else 'MISSED'}"
            for p, r, t in targets(row, medians)
        ]
        if kind == "stream" and case["weights"] == "int8" and case["H"] == 512 and peers:
            r = got["ort float32"] / ours
            goals.append(f"ONNX RT float32 >= 2: {'met' if r >= 2 else 'MISSED'}")
        entry = {"case": case["id"], "seconds": got, "goals": goals}
        if kind == "train" and case["H"] in matmul and case["B"] == 32 and not case.get("bidir"):
            gf = train_flops(case) / ours / 1e9
            mm = 2.0 * case["T"] * case["B"] * case["H"] * 4 * case["H"] / matmul[case["H"]] / 1e9
            verdict = "" if quick else f": {'met' if gf / mm >= 0.8 else 'MISSED'} (>= 80%)"
            goals.append(f"{gf:.1f} GFLOP/s = {gf / mm:.0%} of matmul's {mm:.1f}{verdict}")
            entry.update(gflops=gf, matmul_gflops=mm)
        cells = [case["id"], f"{ours * scale:,.1f} {unit}", times, ratios, "; ".join(goals)]
        lines.append("| " + " | ".join(cells) + " |")
        results.append(entry)
    if any(row["case"]["kind"] == "memory" for row in rows):
        lines += ["", "| memory | bytes |", "|---|---|"]
    for row in rows:
        if row["case"]["kind"] == "memory":
            v = medians[row["case"]["id"]]["rnnkit"]
            note = ""
            if row["case"]["what"] == "stream":
                note = f" (growth; target < 1 MB: {'met' if v < 2**20 else 'MISSED'})"
            lines.append(f"| {row['case']['id']} | {v / 2**20:,.2f} MiB{note} |")
            results.append({"case": row["case"]["id"], "bytes": v})
    table = "\n".join(lines)
    (out / "bench.md").write_text(table + "\n")
    (out / "bench.json").write_text(
        json.dumps(
            {"machine": machine, "repeats": repeats, "medians": medians, "rows": results}, indent=2
        )
    )
    plot(rows, medians, out / "bench.png")
    return table, finite


def ab_report(rows, samples, out: Path, machine: dict, repeats: int, slower: float = 1.05) -> str:
    """rnnkit from tree A against tree B (`bench.py --ab`): each case's medians and B / A;
    writes bench.json and bench.md into ``out`` and returns the table."""
    trees = machine["rnnkit"]
    lines = [
        *header(machine),
        *(f"{k}: {v['src']} (commit {v['commit'] or 'unknown'})" for k, v in trees.items()),
        f"rnnkit only, 2 threads; median of {repeats} rounds alternating A B (separate"
        " processes). B / A above 1: B is slower.",
        "",
        "| case | A | B | B / A |",
        "|---|---|---|---|",
    ]
    ratios: dict[str, float | None] = {}
    for row in rows:
        case, got = row["case"], samples[row["case"]["id"]]
        a, b = statistics.median(got["A"]), statistics.median(got["B"])
        ratios[case["id"]] = b / a if a > 0 else None
        if case["kind"] == "memory":
            cells = [f"{v / 2**20:,.2f} MiB" for v in (a, b)]
        else:
            unit, scale = ("us", 1e6) if case["kind"] == "stream" else ("ms", 1e3)
            cells = [f"{v * scale:,.1f} {unit}" for v in (a, b)]
        ratio = ratios[case["id"]]
        lines.append(f"| {case['id']} | {' | '.join(cells)} | {ratio_text(ratio)} |")
    timed = {k: v for k, v in ratios.items() if v is not None and not k.startswith("memory")}
    if timed:
        worst = max(timed, key=lambda k: timed[k])
        over = [k for k, v in timed.items() if v > slower]
        lines += [
            "",
            f"B slower than A by more than {slower - 1:.0%}: {', '.join(over) or 'no case'}"
            f" (slowest B / A: {worst}, {timed[worst]:.3f}).",
        ]
    table = "\n".join(lines)
    (out / "bench.md").write_text(table + "\n")
    medians = {
        rid: {s: statistics.median(v) for s, v in sides.items()} for rid, sides in samples.items()
    }
    result = {
        "mode": "ab",
        "machine": machine,
        "repeats": repeats,
        "medians": medians,
        "ratios": ratios,
        "samples": samples,
    }
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    return table


def ratio_text(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.3f}"


def plot(rows, medians, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, ratios, colors = [], [], []
    palette = {
        "torch": "#d62728",
        "torch-cell": "#ff9896",
        "torch-seq": "#c49c94",
        "ort": "#1f77b4",
    }
    for row in rows:
        got = medians[row["case"]["id"]]
        for peer in row["peers"]:
            labels.append(f"{row['case']['id']} vs {peer}")
            ratios.append(got[peer] / got["rnnkit"])
            colors.append(palette[peer])
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(labels) + 1.2))
    ax.barh(range(len(labels)), ratios, color=colors)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("peer time / rnnkit time (log scale; right of 1: rnnkit faster)")
    ax.set_title("rnnkit against PyTorch 2.13 and ONNX Runtime, 2 threads each")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
