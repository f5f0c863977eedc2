"""The PyTorch side of `make eval-speech`'s speaker-independence folds: the audio classifier
`rnnkit train classify` trains in the evaluation (GRU or LSTM over MFCC frames, bidirectional,
max, mean, mean-and-max or attention pooling over the valid steps, dropout, linear) in
torch.nn, trained the way rnnkit's `Trainer` trains it.

Same feature frames (rnnkit's front end, from the fold file), same validation split, same
batches, optimizer, schedule, budget, patience and best-weights rule: the training loop is
`benchmarks/sentiment_torch.py`'s. Same augmentation: the fold's VTLP-warped (and
speed-perturbed) features of each epoch, and the masks of `rnnkit/audio/augment.py` (loaded by
path, so rnnkit is not imported) drawn from the same seeds as rnnkit's; at test time, the same
warped views of each recording (test-time VTLP), their probabilities made one as rnnkit's
side makes them (`eval_speech.ensemble_result`: averaged, or the most confident view's with
``--tta-pick confident``). The initial weights and dropout masks are PyTorch's own draws,
or with ``eval_speech.py --same-start`` rnnkit's (`start_from`): then only the engine
differs. Prints one JSON line.

    python benchmarks/speech_torch.py FOLD.npz PARAMS.json
"""

from __future__ import annotations

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sentiment_torch  # noqa: E402  (the Trainer's loop in torch; rnnkit is not imported)

AUGMENT = sentiment_torch.ROOT / "src" / "rnnkit" / "audio" / "augment.py"

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}


class Net(nn.Module):
    """`SequenceClassifier._network` for feature frames, in torch.nn."""

    def __init__(self, features: int, classes: int, p: dict) -> None:
        super().__init__()
        if p["pooling"] not in ("mean", "max", "meanmax", "attention"):
            raise SystemExit("speech_torch: only mean, max, meanmax or attention pooling")
        self.pooling = p["pooling"]
        self.rnn = CELLS[p["cell"]](
            features,
            p["hidden_size"],
            p["num_layers"],
            dropout=p["dropout"] if p["num_layers"] > 1 else 0.0,
            bidirectional=p["bidirectional"],
        )
        width = p["hidden_size"] * (2 if p["bidirectional"] else 1)
        self.dropout: nn.Module = nn.Dropout(p["dropout"])  # or NumpyDropout (start_from)
        pooled = 2 * width if self.pooling == "meanmax" else width  # mean and max side by side
        self.linear = nn.Linear(pooled, classes)
        if self.pooling == "attention":  # rnnkit's AttentionPool: v . tanh(W h_t + b), softmax
            size = p.get("attention_size", 64)
            self.score = nn.Linear(width, size)  # uniform +-1/sqrt(width), as rnnkit's
            self.v = nn.Parameter(torch.empty(size).uniform_(-(size**-0.5), size**-0.5))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.rnn(packed)[0])  # (T, B, D*H), zeros past the end
        mean = out.sum(0) / lengths.to(out.dtype)[:, None]
        steps = torch.arange(out.shape[0])[:, None]
        pad = (steps >= lengths[None, :])[:, :, None]
        top = out.masked_fill(pad, -math.inf).amax(0)
        if self.pooling == "attention":  # weights over the valid steps only
            e = torch.tanh(self.score(out)) @ self.v  # (T, B)
            a = torch.softmax(e.masked_fill(pad[:, :, 0], -math.inf), dim=0)
            return self.linear(self.dropout((a[:, :, None] * out).sum(0)))
        pooled = {"mean": mean, "max": top}.get(self.pooling)
        if pooled is None:  # meanmax: (B, 2 D*H)
            pooled = torch.cat([mean, top], dim=1)
        return self.linear(self.dropout(pooled))  # (B, C)


class NumpyDropout(nn.Module):
    """rnnkit's `Dropout` in torch: the same masks from the same generator state (``rng``:
    the state of rnnkit's generator, `numpy.random.Generator.bit_generator.state`), one draw
    of the pooled batch's shape per training step, kept with probability 1 - p and scaled."""

    def __init__(self, p: float, rng: dict) -> None:
        super().__init__()
        self.p = p
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = rng

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1.0 - self.p  # compared in float64 and divided in float32, as rnnkit does
        mask = (self.rng.random(tuple(x.shape)) < keep).astype(np.float32) / np.float32(keep)
        return x * torch.from_numpy(mask)


def start_from(net: Net, path: Path) -> None:
    """The member's start written by `eval_speech.write_starts`: rnnkit's initial weights
    (all of them: a missing or extra name is an error) and its dropout draws."""
    arrays = np.load(path)
    state = {k: torch.from_numpy(arrays[k].copy()) for k in arrays.files if k != "dropout_state"}
    net.load_state_dict(state, strict=True)
    if "dropout_state" in arrays.files:
        assert isinstance(net.dropout, nn.Dropout)  # a start is loaded once
        net.dropout = NumpyDropout(net.dropout.p, json.loads(str(arrays["dropout_state"])))


def split(npz, name: str, flat: np.ndarray | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    flat = npz["flat"] if flat is None else flat
    offsets, index = npz["offsets"], npz[name]
    seqs = [flat[offsets[i] : offsets[i + 1]] for i in index]
    return seqs, npz["y"][index].astype(np.int64)


def augmentation(npz, params: dict):
    """``(epoch_inputs, mask)`` for `sentiment_torch.train`: the fold's warped (and
    speed-perturbed) features of epoch ``e`` (`eval_speech.epoch_train`), and rnnkit's
    `mask_batch` with the run's settings."""
    from eval_speech import epoch_train  # noqa: E402  (no rnnkit imported)

    epoch_inputs = None
    if "warped" in npz:
        epoch_inputs = lambda e: epoch_train(npz, e)  # noqa: E731
    spec = importlib.util.spec_from_file_location("rnnkit_augment", AUGMENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mask = module.masker(
        params["seed"],
        params.get("time_masks", 0),
        params.get("time_mask_width", 0),
        params.get("feature_masks", 0),
        params.get("feature_mask_width", 0),
        params.get("feature_blocks", 1),
    )
    return epoch_inputs, mask


def main() -> None:
    fold, params = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    npz = dict(np.load(fold))
    npz |= dict(np.load(str(npz.pop("features")))) if "features" in npz else {}
    data = {name: split(npz, name) for name in ("train", "valid", "test")}
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from eval_speech import (  # noqa: E402  (no rnnkit imported)
        dump_views,
        ensemble_result,
        tta_pick,
        tta_views,
    )

    members = []
    for k in range(int(params.get("ensemble", 1))):  # the seeds of eval_speech.ensemble_seeds
        p = params | {"seed": params["seed"] + k}
        torch.manual_seed(p["seed"])
        epoch_inputs, mask = augmentation(npz, p)
        net = Net(int(npz["flat"].shape[1]), int(npz["y"].max()) + 1, p)
        if p.get("torch_start"):  # --same-start: rnnkit's initial weights and dropout draws
            start_from(net, Path(p["torch_start"]) / f"start-{p['seed']}.npz")
        t0 = time.perf_counter()
        result = sentiment_torch.train(net, data, p, epoch_inputs, mask)  # type: ignore[arg-type]
        result["fit_seconds"] = time.perf_counter() - t0
        proba = lambda seqs, net=net: sentiment_torch.predict_proba(net, seqs)  # noqa: E731
        result["view_test_proba"] = tta_views(proba, npz, "test")  # the same views as rnnkit's
        result["view_valid_proba"] = tta_views(proba, npz, "valid")
        result["plain_test_proba"] = proba(data["test"][0])
        result["plain_valid_proba"] = proba(data["valid"][0])
        members.append(result)

    dump_views(npz, "torch", members, data["test"][1], data["valid"][1])
    result = ensemble_result(members, data["test"][1], data["valid"][1], tta_pick(params))
    result["threads"] = torch.get_num_threads()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
