"""The PyTorch side of `make eval-sentiment`: rnnkit's default `SequenceClassifier` network
written in PyTorch and trained the way rnnkit's `Trainer` trains it.

    Embedding -> LSTM (stacked, bidirectional, packed by length) -> mean/max pool over the
              valid steps -> Dropout -> Linear -> cross-entropy

Same vocabulary ids (the fold file), same validation split, same batches (rnnkit's own
`bucket_batches`, loaded from its file so that rnnkit is not imported here), same AdamW,
learning rate, warm-up and cosine schedule, weight decay, clipping, budget, patience and
best-weights rule. Only the engine differs. Prints one JSON line: accuracy, throughput.

    python benchmarks/sentiment_torch.py FOLD.npz PARAMS.json
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

ROOT = Path(__file__).resolve().parent.parent


def _batches_module():
    """rnnkit's `data/batches.py` (numpy only), loaded without importing rnnkit."""
    path = ROOT / "src" / "rnnkit" / "data" / "batches.py"
    spec = importlib.util.spec_from_file_location("rnnkit_batches", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BATCHES = _batches_module()


class Net(nn.Module):
    """`SequenceClassifier._network` for token ids, in torch.nn."""

    def __init__(self, vocab: int, classes: int, p: dict) -> None:
        super().__init__()
        if p["cell"] != "lstm" or p["pooling"] not in ("mean", "max"):
            raise SystemExit("sentiment_torch: only cell='lstm' with mean or max pooling")
        self.pooling = p["pooling"]
        self.embedding = nn.Embedding(vocab, p["embedding_dim"])
        self.rnn = nn.LSTM(
            p["embedding_dim"],
            p["hidden_size"],
            p["num_layers"],
            dropout=p["dropout"] if p["num_layers"] > 1 else 0.0,
            bidirectional=p["bidirectional"],
        )
        width = p["hidden_size"] * (2 if p["bidirectional"] else 1)
        self.dropout = nn.Dropout(p["dropout"])
        self.linear = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        e = self.embedding(x)  # (T, B, E)
        packed = pack_padded_sequence(e, lengths, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.rnn(packed)[0])  # (T, B, D*H), zeros past the end
        if self.pooling == "mean":
            pooled = out.sum(0) / lengths.to(out.dtype)[:, None]
        else:
            steps = torch.arange(out.shape[0])[:, None]
            pad = (steps >= lengths[None, :])[:, :, None]
            pooled = out.masked_fill(pad, -math.inf).amax(0)
        return self.linear(self.dropout(pooled))  # (B, C)


WARMUP = 20  # steps left out of the throughput (as SequenceClassifier.throughput_ does)
MIXUP_STREAM = 13  # rnnkit.estimators.classify_objective.MIXUP_STREAM: mixup's random stream


def seq_per_s(marks: list[tuple[int, float]]) -> float:
    """Sequences per training second after the first `WARMUP` steps (all, if fewer)."""
    skip = min(WARMUP, len(marks) // 2)
    (n0, t0), (n1, t1) = marks[skip - 1] if skip else (0, 0.0), marks[-1]
    return (n1 - n0) / max(t1 - t0, 1e-9)


def lr_at(p: dict, taken: int, total: int | None, progress: float | None, warmup: int) -> float:
    """rnnkit's `CosineLR` as the `Trainer` drives it (``taken`` counts this step)."""
    lr, min_lr = p["lr"], p["lr"] / 30
    if taken < warmup:
        return lr * taken / warmup
    if progress is None:
        assert total is not None
        progress = (taken - warmup) / max(total - warmup, 1)
    q = min(max(progress, 0.0), 1.0)
    return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * q)) / 2


def predict_proba(net: Net, seqs: list[np.ndarray]) -> np.ndarray:
    net.eval()
    out = np.zeros((len(seqs), net.linear.out_features))
    with torch.no_grad():
        for index in BATCHES.bucket_batches([len(s) for s in seqs], 256):
            x, lengths = BATCHES.pad(seqs, index)
            logits = net(torch.from_numpy(x), torch.from_numpy(lengths))
            out[index] = torch.softmax(logits.double(), 1).numpy()
    return out


def train(net: Net, data: dict, p: dict, epoch_inputs=None, mask=None) -> dict:
    """The `Trainer` loop: a step per bucketed batch, validation every epoch, patience, the
    best weights kept; the budget in epochs or minutes. Augmentation as rnnkit's
    `ClassifyObjective` does it: ``epoch_inputs(e)``, the training sequences of epoch ``e``
    (same lengths); ``mask(x, lengths, step)``, the padded batch masked. With ``p["ema"]``
    (the `Trainer`'s ``TrainConfig.ema``): a moving average of the weights, updated after each
    step by ``min(ema, (1 + t) / (10 + t))`` at step ``t``, is what is validated and kept."""
    seqs, y = data["train"]
    lengths = np.array([len(s) for s in seqs])
    per_epoch = -(-len(seqs) // p["batch_size"])
    warmup = min(50, per_epoch)
    total = None if p["epochs"] is None else max(1, math.ceil(p["epochs"] * per_epoch))
    opt = torch.optim.AdamW(net.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
    best, best_state, since_best, step = math.inf, None, 0, 0
    train_seconds, examples, decay_start = 0.0, 0, None
    start = time.perf_counter()

    def evaluate() -> float:
        proba = predict_proba(net, data["valid"][0])
        yv = data["valid"][1]
        return float(np.mean(-np.log(np.maximum(proba[np.arange(len(yv)), yv], 1e-12))))

    def done() -> bool:
        parts = [] if total is None else [step / total]
        if p["minutes"] is not None:
            parts.append((time.perf_counter() - start) / (60 * p["minutes"]))
        return max(parts) >= 1.0

    ema = float(p.get("ema") or 0.0)
    averaged = {k: v.detach().clone() for k, v in net.named_parameters()} if ema else None

    def swap() -> None:  # the average into the network and the trained weights out, or back
        if averaged is None:
            return
        with torch.no_grad():
            for k, v in net.named_parameters():
                raw = v.detach().clone()
                v.copy_(averaged[k])
                averaged[k] = raw

    def validate() -> tuple[float, dict | None]:  # the average's, as `_averaged_weights`
        swap()
        try:
            val = evaluate()
            state = copy.deepcopy(net.state_dict()) if val < best else None
        finally:
            swap()
        return val, state

    evaluated_at = -1
    marks: list[tuple[int, float]] = []
    while not done():
        epoch, k = divmod(step, per_epoch)
        if k == 0:
            batches = BATCHES.bucket_batches(
                lengths, p["batch_size"], np.random.default_rng([p["seed"], epoch])
            )
            if epoch_inputs is not None:
                seqs = epoch_inputs(epoch)
        taken = step + 1
        progress = None
        if p["minutes"] is not None and taken >= warmup:
            elapsed = time.perf_counter() - start
            decay_start = elapsed if decay_start is None else decay_start
            progress = (elapsed - decay_start) / max(60 * p["minutes"] - decay_start, 1e-9)
            if total is not None:
                progress = max(progress, (taken - warmup) / max(total - warmup, 1))
        for group in opt.param_groups:
            group["lr"] = lr_at(p, taken, total, progress, warmup)
        index = batches[k]
        x, lens = BATCHES.pad(seqs, index)
        t0 = time.perf_counter()
        if mask is not None:  # timed, as in rnnkit's train_step
            x = mask(x, lens, step)
        lam, perm = 1.0, None
        if p.get("mixup"):  # rnnkit's `ClassifyObjective`: the same draw, the same mixture
            rng = np.random.default_rng([p["seed"], MIXUP_STREAM, step])
            lam, perm = float(rng.beta(p["mixup"], p["mixup"])), rng.permutation(len(index))
            x = (lam * x + (1.0 - lam) * x[:, perm]).astype(x.dtype)
            lens = np.maximum(lens, lens[perm])
        net.train()
        opt.zero_grad()
        logits = net(torch.from_numpy(x), torch.from_numpy(lens))
        smooth = p.get("label_smoothing", 0.0)
        loss = nn.functional.cross_entropy(
            logits, torch.from_numpy(y[index]), label_smoothing=smooth
        )
        if perm is not None:
            other = torch.from_numpy(y[index][perm])
            loss = lam * loss + (1.0 - lam) * nn.functional.cross_entropy(
                logits, other, label_smoothing=smooth
            )
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), p["clip"])
        opt.step()
        if averaged is not None:
            decay = min(ema, (1 + step) / (10 + step))
            with torch.no_grad():
                for k, v in net.named_parameters():
                    averaged[k] += (1 - decay) * (v.detach() - averaged[k])
        train_seconds += time.perf_counter() - t0
        examples += len(index)
        marks.append((examples, train_seconds))
        step += 1
        if step % per_epoch == 0:
            (val, state), evaluated_at = validate(), step
            if state is not None:
                best, best_state, since_best = val, state, 0
            else:
                since_best += 1
            if p["patience"] is not None and since_best >= p["patience"]:
                break
    if evaluated_at != step:
        val, state = validate()
        if state is not None:
            best, best_state = val, state
    if best_state is not None:
        net.load_state_dict(best_state)
    return {
        "steps": step,
        "epochs": step / per_epoch,
        "seq_per_s": seq_per_s(marks),
        "train_seconds": train_seconds,
        "best_val_loss": best,
    }


def split(npz, name: str) -> tuple[list[np.ndarray], np.ndarray]:
    flat, offsets, index = npz["flat"], npz["offsets"], npz[name]
    seqs = [flat[offsets[i] : offsets[i + 1]] for i in index]
    seqs = [s if len(s) else np.zeros(1, dtype=np.int64) for s in seqs]
    return seqs, npz["y"][index].astype(np.int64)


def main() -> None:
    fold, params = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.manual_seed(params["seed"])
    npz = np.load(fold)
    data = {name: split(npz, name) for name in ("train", "valid", "test")}
    net = Net(int(len(npz["vocab"])), int(npz["y"].max()) + 1, params)
    t0 = time.perf_counter()
    result = train(net, data, params)
    result["fit_seconds"] = time.perf_counter() - t0
    proba = predict_proba(net, data["test"][0])
    result["accuracy"] = float(np.mean(proba.argmax(1) == data["test"][1]))
    result["threads"] = torch.get_num_threads()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
