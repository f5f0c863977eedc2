"""The same character language model trained in PyTorch, for the side-by-side in eval_lm.py.

Same data, split and vocabulary (rnnkit's data code, untimed), same model (embedding, dropout,
stacked LSTM with inter-layer dropout, dropout, linear head), same AdamW, warm-up + cosine
schedule over the same budget, same clipping, same batches with carried state, same evaluation.
Runs in its own process with torch's threads set to --threads.

    python benchmarks/lm_torch.py --text ../shared/data/text/tinyshakespeare.txt --minutes 15
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
import torch

from rnnkit import tune_process
from rnnkit.config import add_options, from_args
from rnnkit.data.text import TokenStreams, Vocabulary, read_text, split_validation
from rnnkit.tasks.lm import LMRunConfig
from rnnkit.training import TrainConfig, decay_progress, learning_rates


class TorchLM(torch.nn.Module):
    def __init__(self, vocab: int, embedding: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, embedding)
        self.rnn = torch.nn.LSTM(embedding, hidden, layers, dropout=dropout)
        self.head = torch.nn.Linear(hidden, vocab)
        self.drop = torch.nn.Dropout(dropout)

    def forward(self, x, state=None):
        h, state = self.rnn(self.drop(self.embedding(x)), state)
        return self.head(self.drop(h)), state


def evaluate(model: TorchLM, streams: TokenStreams) -> float:
    model.eval()
    total, count, state = 0.0, 0, None
    with torch.inference_mode():
        for k in range(len(streams)):
            x, y = (torch.from_numpy(a) for a in streams.chunk(k))
            logits, state = model(x, state)
            total += torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"
            ).item()
            count += y.numel()
    model.train()
    return total / count


def main() -> int:
    # the same malloc thresholds as the rnnkit side (its command calls this), as `make bench`
    # gives every library's process; this used to come with importing rnnkit
    tune_process()
    p = argparse.ArgumentParser(description="PyTorch twin of 'rnnkit train lm' (LSTM, chars)")
    p.add_argument("--text", required=True, help="UTF-8 text file")
    only_rnnkit = ("text", "valid", "tokens", "vocab_size", "cell", "tie_weights", "out")
    add_options(p, LMRunConfig, exclude=only_rnnkit)  # the same options and defaults
    p.add_argument("--threads", type=int, default=2, help="torch's threads (default: 2)")
    args = p.parse_args()
    run = from_args(LMRunConfig, args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(run.seed)

    train_text, valid_text = split_validation(read_text(run.text))
    vocab = Vocabulary.build(train_text)
    train_ids, valid_ids = vocab.encode(train_text), vocab.encode(valid_text)
    valid_ids = valid_ids[: run.eval_tokens + 1]
    train = TokenStreams(train_ids, run.batch, run.bptt)
    valid = TokenStreams(valid_ids, max(1, min(run.batch, (len(valid_ids) - 1) // 2)), run.bptt)
    cfg = from_args(TrainConfig, run)
    model = TorchLM(len(vocab), run.embedding, run.hidden, run.layers, run.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    step, tokens, train_seconds, state, val = 0, 0, 0.0, None, math.nan
    schedule, decay_start = learning_rates(cfg), None  # rnnkit's schedule, as its Trainer
    start = time.perf_counter()

    def fraction() -> float:
        parts = []
        if cfg.steps is not None:
            parts.append(step / cfg.steps)
        if cfg.minutes is not None:
            parts.append((time.perf_counter() - start) / (60 * cfg.minutes))
        return max(parts)

    while fraction() < 1.0:
        elapsed, taken = time.perf_counter() - start, step + 1  # as rnnkit's Trainer does
        if decay_start is None and taken >= cfg.warmup_steps:
            decay_start = elapsed
        progress = 0.0 if decay_start is None else decay_progress(cfg, taken, elapsed, decay_start)
        for group in opt.param_groups:
            group["lr"] = schedule(taken, progress)
        t0 = time.perf_counter()
        k = step % len(train)
        if k == 0:
            state = None
        x, y = (torch.from_numpy(a) for a in train.chunk(k))
        logits, state = model(x, state)
        state = tuple(s.detach() for s in state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, len(vocab)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        train_seconds += time.perf_counter() - t0
        tokens += y.numel()
        step += 1
        if step % cfg.eval_every == 0:
            val = evaluate(model, valid)
            print(
                f"torch step {step:6d}  train {loss.item():.4f}  val {val:.4f}  "
                f"{tokens / train_seconds:,.0f} chars/s",
                file=sys.stderr,
                flush=True,
            )
    if not (step % cfg.eval_every == 0):
        val = evaluate(model, valid)
    print(
        json.dumps(
            {
                "val_loss": val,
                "val_bpc": val / math.log(2),
                "tokens_per_s": tokens / train_seconds,
                "steps": step,
                "minutes": (time.perf_counter() - start) / 60,
                "parameters": int(sum(np.prod(p.shape) for p in model.parameters())),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
