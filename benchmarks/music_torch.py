"""The PyTorch side of `make eval-music`: the independent-sigmoid model of `MusicModel` written
in PyTorch (nn.GRU/LSTM/RNN, dropout, nn.Linear, BCE with logits), trained as rnnkit trains it:
the same split, the same batches (rnnkit's `bucket_batches` with the same seeds), AdamW with the
same warm-up and cosine schedule, clipping, validation every epoch, early stopping, best weights,
and the same weight noise where asked for (``weight_noise``: Gaussian noise on every weight
matrix for each batch, the gradient taken at the noisy weights and applied to the clean ones).

    python benchmarks/music_torch.py DATA.json '{"cell": "gru", "hidden_size": 46, ...}'

Prints one JSON line: val_nll, test_nll, train_nll (the published metric: NLL of steps 2..T,
summed over the 88 keys, averaged over the predicted steps), parameters, epochs, seconds,
frames_per_s. Run it in its own process with the thread pins of the rnnkit side.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from rnnkit.data.batches import bucket_batches, pad  # noqa: E402
from rnnkit.data.music import KEYS, read_json  # noqa: E402


class Net(torch.nn.Module):
    def __init__(self, cell: str, hidden: int, dropout: float) -> None:
        super().__init__()
        kind = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "rnn": torch.nn.RNN}[cell]
        self.rnn = kind(KEYS, hidden)
        self.drop = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(hidden, KEYS)

    def forward(self, x: torch.Tensor, lengths: np.ndarray) -> torch.Tensor:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.as_tensor(lengths), enforce_sorted=False
        )
        h, _ = self.rnn(packed)
        h, _ = torch.nn.utils.rnn.pad_packed_sequence(h, total_length=x.shape[0])
        return self.head(self.drop(h))  # (T, B, K)


def batch(rolls: list[np.ndarray], index: np.ndarray):
    x, lengths = pad([r[:-1] for r in rolls], index)
    y, _ = pad([r[1:] for r in rolls], index)
    mask = np.arange(len(x))[:, None] < lengths[None, :]
    return (
        torch.from_numpy(x.astype(np.float32)),
        torch.from_numpy(y.astype(np.float32)),
        torch.from_numpy(mask.astype(np.float32))[:, :, None],
        lengths,
    )


@torch.no_grad()
def nll(net: Net, rolls: list[np.ndarray]) -> float:
    net.eval()
    total, count = 0.0, 0
    for index in bucket_batches([len(r) - 1 for r in rolls], 64):
        x, y, mask, lengths = batch(rolls, index)
        z = net(x, lengths).double()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(z, y.double(), reduction="none")
        total += float((bce * mask).sum())
        count += int(lengths.sum())
    return total / count


def lr_at(taken: int, lr: float, warmup: int, steps: int) -> float:
    """rnnkit's `CosineLR` as the Trainer calls it: warm-up from 0, cosine to lr / 30."""
    if taken < warmup:
        return lr * taken / warmup
    q = min(max((taken - warmup) / max(steps - warmup, 1), 0.0), 1.0)
    return lr / 30 + (lr - lr / 30) * (1 + math.cos(math.pi * q)) / 2


def main() -> None:
    data_path, params = sys.argv[1], json.loads(sys.argv[2])
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.manual_seed(params.get("seed", 0))
    parts = read_json(data_path)
    train, valid, test = parts["train"], parts["valid"], parts["test"]
    net = Net(params["cell"], params["hidden_size"], params["dropout"])
    B, lr, seed = params["batch_size"], params["lr"], params.get("seed", 0)
    per_epoch = -(-len(train) // B)
    steps = math.ceil(params["epochs"] * per_epoch)
    warmup = min(50, per_epoch)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=params.get("weight_decay", 0.0))
    lengths = np.array([len(r) - 1 for r in train])
    best, best_state, since, step, frames, train_s = math.inf, None, 0, 0, 0, 0.0
    patience = params.get("patience")
    noise = params.get("weight_noise", 0.0)
    start = time.perf_counter()
    epoch = 0
    while step < steps:
        rng = np.random.default_rng([seed, epoch])
        for index in bucket_batches(lengths, B, rng):
            if step >= steps:
                break
            t0 = time.perf_counter()
            net.train()
            for group in opt.param_groups:
                group["lr"] = lr_at(step + 1, lr, warmup, steps)
            x, y, mask, lens = batch(train, index)
            clean = []
            if noise:
                with torch.no_grad():
                    for w in net.parameters():
                        if w.dim() >= 2:
                            clean.append((w, w.detach().clone()))
                            w.add_(torch.randn_like(w) * noise)
            z = net(x, lens)
            n = int(lens.sum())
            loss = (
                torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none") * mask
            ).sum() / n
            opt.zero_grad()
            loss.backward()
            with torch.no_grad():
                for w, c in clean:
                    w.copy_(c)
            torch.nn.utils.clip_grad_norm_(net.parameters(), params.get("clip", 1.0))
            opt.step()
            train_s += time.perf_counter() - t0
            frames += n
            step += 1
        epoch += 1
        val = nll(net, valid)
        if val < best:
            best, best_state, since = val, copy.deepcopy(net.state_dict()), 0
        else:
            since += 1
            if patience and since >= patience:
                break
    seconds = time.perf_counter() - start
    assert best_state is not None
    net.load_state_dict(best_state)
    result = {
        "val_nll": nll(net, valid),
        "test_nll": nll(net, test),
        "train_nll": nll(net, train),
        "parameters": sum(p.numel() for p in net.parameters()),
        "epochs": epoch,
        "seconds": seconds,
        "frames_per_s": frames / train_s,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
