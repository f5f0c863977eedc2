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
from rnnkit.data.text import TokenStreams, Vocabulary, read_text, split_validation
from rnnkit.tasks.lm import LMRunConfig
from rnnkit.training import TrainConfig, scheduled_lr


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
    d = LMRunConfig()
    p = argparse.ArgumentParser(description="PyTorch twin of 'rnnkit train lm' (LSTM, chars)")
    p.add_argument("--text", required=True)
    p.add_argument("--layers", type=int, default=d.layers)
    p.add_argument("--hidden", type=int, default=d.hidden)
    p.add_argument("--embedding", type=int, default=d.embedding)
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--bptt", type=int, default=d.bptt)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--min-lr", type=float, default=d.min_lr)
    p.add_argument("--warmup", type=int, default=d.warmup_steps)
    p.add_argument("--clip", type=float, default=d.clip)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--minutes", type=float, default=None)
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--eval-tokens", type=int, default=d.eval_tokens)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    train_text, valid_text = split_validation(read_text(args.text))
    vocab = Vocabulary.build(train_text)
    train_ids, valid_ids = vocab.encode(train_text), vocab.encode(valid_text)
    valid_ids = valid_ids[: args.eval_tokens + 1]
    train = TokenStreams(train_ids, args.batch, args.bptt)
    valid = TokenStreams(valid_ids, max(1, min(args.batch, (len(valid_ids) - 1) // 2)), args.bptt)
    cfg = TrainConfig(
        steps=args.steps,
        minutes=args.minutes,
        lr=args.lr,
        min_lr=args.min_lr,
        warmup_steps=args.warmup,
        clip=args.clip,
        eval_every=args.eval_every,
    )
    model = TorchLM(len(vocab), args.embedding, args.hidden, args.layers, args.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)

    step, tokens, train_seconds, state, val = 0, 0, 0.0, None, math.nan
    start = time.perf_counter()

    def fraction() -> float:
        parts = []
        if cfg.steps is not None:
            parts.append(step / cfg.steps)
        if cfg.minutes is not None:
            parts.append((time.perf_counter() - start) / (60 * cfg.minutes))
        return max(parts)

    while fraction() < 1.0:
        for group in opt.param_groups:
            group["lr"] = scheduled_lr(cfg, step, fraction())
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
