"""The PyTorch side of `make eval-translate`: an encoder-decoder with attention, after PyTorch's
tutorial "NLP from scratch: translation with a sequence to sequence network and attention"
(a GRU encoder, a GRU decoder with attention over the encoder's outputs), with its sizes and
attention matched to rnnkit's default `Seq2Seq` so that the two runs compare engines:

    source ids -> Embedding -> dropout -> bidirectional GRU, H/2 per direction  keys (S, B, H)
    decoder h_0 = the encoder's final states, both directions concatenated (no bridge layer)
    h_t = GRU(dropout(E y_{t-1}), h_{t-1})           teacher forcing: one call for all steps
    c_t, a_t = attention(h_t, keys)                    Luong "general": a = softmax(h W k)
    h~_t = tanh(W_c [c_t; h_t]);  logits = W_o dropout(h~_t) + b_o     (no attention: h~ = h)

The tutorial differs from rnnkit's default: its attention is Bahdanau's (additive, the query is
the previous state and the context enters the GRU), its encoder is one-directional, its hidden
size 128. This file follows rnnkit's default (`--params` sets every knob; ``"attention":
"additive"`` gives the tutorial's decoder, ``"input_feeding": true`` Luong's input feeding), so
the comparison is of engines, not of architectures.

The data is read, tokenised, split and numbered by rnnkit's own `rnnkit.data.pairs`, so both
sides see the same tokens, split and vocabularies. Training as rnnkit's `Trainer` does it: a
wall-clock budget (evaluation included), AdamW, linear warm-up then cosine to a 30th of the
rate over the budget, global-norm clipping, teacher forcing, masked cross-entropy; a
validation BLEU after every epoch (and at the end), the best weights by validation BLEU kept.
Decoding is batched beam search as rnnkit's (`rnnkit.models.seq2seq_decode`: width ``--beam``,
the score divided by length ** length_penalty, ``<eos>`` forced after int(max_ratio * source
length) + 2 tokens). Scores are sacreBLEU's corpus BLEU and chrF on detokenised output against
references put through the same tokenise-detokenise (`Tokenizer.normalize`).

    python benchmarks/translate_torch.py --pairs ../shared/data/translation/eng-fra.txt \
        --minutes 5 [--valid F] [--test F] [--reverse] [--beam 5] [--threads 2] [--params JSON]

Prints progress to stderr and one JSON line to stdout: val_bleu, test_bleu, test_chrf,
signature, pairs_per_second (training pairs per second of step time, the first 20 steps left
out, as rnnkit's ``throughput_``), steps, epochs, seconds, parameters, examples. Run it in its
own process, with the same thread pins as the rnnkit side.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from rnnkit.data.batches import bucket_batches  # noqa: E402
from rnnkit.data.pairs import BOS, EOS, PAD  # noqa: E402

# rnnkit's default `Seq2Seq` (its parameters' names); eval_translate passes rnnkit's own values
# (`Seq2Seq().get_params()`) with --params
DEFAULTS: dict[str, Any] = {
    "embedding_dim": 256,
    "hidden_size": 256,
    "num_layers": 1,
    "attention": "general",
    "input_feeding": False,
    "dropout": 0.2,
    "batch_size": 64,
    "lr": 2e-3,
    "weight_decay": 0.1,
    "label_smoothing": 0.0,
    "clip": 5.0,
    "warmup_steps": 50,  # `run_fit`'s (at most one epoch)
    "min_count": 2,  # vocabulary: tokens seen at least this often in training
    "max_vocab": None,
    "length_penalty": 1.0,
    "max_length_ratio": 2.0,
    "decode_batch": 64,  # rows per decoding batch (sentences x beam)
    "val_beam": 1,  # validation BLEU decodes greedily (cheaper; the test uses --beam)
    "seed": 0,
}
WARMUP = 20  # steps left out of the throughput, as rnnkit's `steady_throughput`


class Attention(nn.Module):
    """rnnkit's `Attention`: additive e = v . tanh(W_q q + W_k k) (no biases, A = K), dot
    e = q . k, general e = q W k; a softmax over the valid source steps."""

    def __init__(self, query: int, key: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        if kind == "additive":
            self.weight_query = nn.Linear(query, key, bias=False)
            self.weight_key = nn.Linear(key, key, bias=False)
            self.v = nn.Linear(key, 1, bias=False)
        elif kind == "general":
            self.weight = nn.Linear(key, query, bias=False)  # q W k = q . (W k)

    def keys(self, k: torch.Tensor) -> torch.Tensor:
        """What the scores need from the keys (S, B, K), computed once per batch."""
        if self.kind == "additive":
            return self.weight_key(k)  # (S, B, A)
        if self.kind == "general":
            return self.weight(k)  # (S, B, Q)
        return k

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, pk: torch.Tensor, pad: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries q (T, B, Q) (all decoder steps at once) -> contexts (T, B, K), weights
        (T, B, S)."""
        kb = k.transpose(0, 1)  # (B, S, K)
        if self.kind == "additive":
            wq = self.weight_query(q).transpose(0, 1)  # (B, T, A)
            s = torch.tanh(wq[:, :, None] + pk.transpose(0, 1)[:, None])  # (B, T, S, A)
            e = self.v(s).squeeze(-1)  # (B, T, S)
        else:
            e = q.transpose(0, 1) @ pk.permute(1, 2, 0)  # (B, T, S)
        e = e.masked_fill(pad.T[:, None, :], -math.inf)
        a = torch.softmax(e, dim=-1)  # (B, T, S)
        return (a @ kb).transpose(0, 1), a.transpose(0, 1)


class Seq2Seq(nn.Module):
    """rnnkit's `Seq2SeqNet` (GRU) in torch.nn."""

    def __init__(self, source_vocab: int, target_vocab: int, p: dict) -> None:
        super().__init__()
        E, H, L = p["embedding_dim"], p["hidden_size"], p["num_layers"]
        between = p["dropout"] if L > 1 else 0.0
        self.kind, self.feeding, self.hidden = p["attention"], p["input_feeding"], H
        self.src_embed = nn.Embedding(source_vocab, E)
        self.encoder = nn.GRU(E, H // 2, L, dropout=between, bidirectional=True)
        self.tgt_embed = nn.Embedding(target_vocab, E)
        extra = H if (self.feeding or self.kind == "additive") else 0
        self.decoder = nn.GRU(E + extra, H, L, dropout=between)
        if self.kind != "none":
            self.attend = Attention(H, H, self.kind)
            self.combine = nn.Linear(2 * H, H, bias=False)
        self.drop = nn.Dropout(p["dropout"])
        self.out = nn.Linear(H, target_vocab)

    @property
    def stepwise(self) -> bool:
        return self.feeding or self.kind == "additive"

    def encode(self, src: torch.Tensor, lengths: torch.Tensor):
        """Keys (S, B, H), their projection, the padding mask (S, B), the decoder's state."""
        x = self.drop(self.src_embed(src))  # (S, B, E)
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, h = self.encoder(packed)  # h (2L, B, H/2)
        keys, _ = pad_packed_sequence(out, total_length=src.shape[0])  # zeros past the end
        L2, B, half = h.shape
        state = h.view(L2 // 2, 2, B, half).transpose(1, 2).reshape(L2 // 2, B, 2 * half)
        pad = torch.arange(src.shape[0])[:, None] >= lengths[None, :]
        pk = self.attend.keys(keys) if self.kind != "none" else keys
        return keys, pk, pad, state.contiguous()

    def output(self, h, keys, pk, pad):
        """h~ (T, B, H) from decoder outputs h (T, B, H), and the weights (T, B, S)."""
        if self.kind == "none":
            return h, None
        c, a = self.attend(h, keys, pk, pad)
        return torch.tanh(self.combine(torch.cat([c, h], dim=-1))), a

    def step(self, tokens, state, feed, keys, pk, pad):
        """One decoder step for rows ``tokens`` (N,): h~ (N, H), state, weights (N, S)."""
        x = self.drop(self.tgt_embed(tokens))
        if self.kind == "additive":
            c, a = self.attend(state[-1][None], keys, pk, pad)  # query: the previous state
            h, state = self.decoder(torch.cat([x, c[0]], dim=-1)[None], state)
            ht = torch.tanh(self.combine(torch.cat([c[0], h[0]], dim=-1)))
            return ht, state, a[0]
        if self.feeding:
            x = torch.cat([x, feed], dim=-1)
        h, state = self.decoder(x[None], state)
        ht, a = self.output(h, keys, pk, pad)
        return ht[0], state, None if a is None else a[0]

    def forward(self, src, lengths, tgt_in, mask):
        """Teacher forcing: logits (N, V) of the N real target steps ``mask`` (T, B) marks, for
        the decoder inputs (T, B) (<bos> first); padding never reaches the output layer."""
        keys, pk, pad, state = self.encode(src, lengths)
        if not self.stepwise:  # one GRU call over all steps, one batched attention
            h, _ = self.decoder(self.drop(self.tgt_embed(tgt_in)), state)
            ht = self.output(h, keys, pk, pad)[0]
        else:
            feed = torch.zeros(src.shape[1], self.hidden)
            outs = []
            for t in range(tgt_in.shape[0]):
                feed, state, _ = self.step(tgt_in[t], state, feed, keys, pk, pad)
                outs.append(feed)
            ht = torch.stack(outs)
        return self.out(self.drop(ht[mask]))


@torch.no_grad()
def beam_search(net: Seq2Seq, src: torch.Tensor, lengths: torch.Tensor, beam: int, p: dict):
    """rnnkit's `beam_batch` (and, for beam 1, its greedy search): each sentence keeps the
    ``beam`` best hypotheses by total log-probability, a finished one keeps its place and score;
    the best by score / length ** length_penalty (<eos> counted); <eos> forced at the limit.
    Returns token lists (no <eos>) and attention weights (target steps, source steps)."""
    net.eval()
    S, B = src.shape
    K = beam
    N = B * K
    keys, pk, pad, state = net.encode(src, lengths)
    rep = torch.arange(B).repeat_interleave(K)  # row b*K + k is sentence b's beam k
    keys, pk, pad, state = keys[:, rep], pk[:, rep], pad[:, rep], state[:, rep]
    limit = (p["max_length_ratio"] * lengths.double()).long()[rep] + 2  # (N,)
    feed = torch.zeros(N, net.hidden)
    tokens = torch.full((N,), BOS, dtype=torch.long)
    scores = torch.full((B, K), -math.inf, dtype=torch.float64)
    scores[:, 0] = 0.0
    size = torch.zeros(B, K, dtype=torch.long)
    done = torch.zeros(B, K, dtype=torch.bool)
    history = torch.zeros(N, 0, dtype=torch.long)
    att = torch.zeros(N, 0, S)
    base = (torch.arange(B) * K)[:, None]
    t = 0
    while not bool(done.all()):
        feed, state, w = net.step(tokens, state, feed, keys, pk, pad)
        logp = torch.log_softmax(net.out(feed).double(), dim=-1)  # (N, V)
        flat_done = done.view(-1)
        at_limit = ~flat_done & (t + 1 >= limit)
        eos = logp[:, EOS].clone()
        logp[flat_done | at_limit] = -math.inf  # may only write <eos>
        logp[:, EOS] = torch.where(flat_done, 0.0, eos)  # finished: stays, score unchanged
        V = logp.shape[1]
        cand = (scores[:, :, None] + logp.view(B, K, V)).view(B, K * V)
        scores, pick = cand.topk(K, dim=1)  # (B, K), best first
        parent, tok = pick // V, pick % V
        rows = (base + parent).view(-1)
        was_done = done.gather(1, parent)
        size = size.gather(1, parent) + (~was_done).long()
        done = was_done | (tok == EOS)
        state, feed = state[:, rows], feed[rows]
        tokens = tok.view(-1)
        history = torch.cat([history[rows], tokens[:, None]], dim=1)
        if w is not None:
            att = torch.cat([att[rows], w[rows][:, None, :]], dim=1)
        t += 1
    final = scores / size.clamp(min=1).double() ** p["length_penalty"]
    best = final.argmax(dim=1)
    out, weights = [], []
    for b in range(B):
        row = b * K + int(best[b])
        ids = history[row].tolist()
        n = ids.index(EOS) if EOS in ids else len(ids)
        out.append(ids[:n])
        n_src = int(lengths[b])
        weights.append(att[row, : n + 1, :n_src].numpy() if att.shape[1] else None)
    return out, weights


# -- data: rnnkit's own reading, tokenising, split and vocabularies --------------------------
def load_data(args: argparse.Namespace, p: dict) -> dict:
    """Token ids of the split as rnnkit makes it (`rnnkit.data.pairs`): each part's sources
    and targets (ids, ``<eos>`` appended), its source texts and normalised references; the
    tokenizer and the target vocabulary (to detokenise), the split's description."""
    from rnnkit.data.pairs import Tokenizer, Vocab, read_pairs, split_pairs

    pairs = read_pairs(args.pairs, reverse=args.reverse)
    if args.valid or args.test:
        held = {
            name: read_pairs(path, reverse=args.reverse, what=name) if path else []
            for name, path in (("valid", args.valid), ("test", args.test))
        }
        split = split_pairs(
            pairs,
            valid=0 if args.valid else 0.05,
            test=0 if args.test else 0.05,
            source=args.pairs,
        )
        parts = {
            "train": split.train,
            "valid": held["valid"] or split.valid,
            "test": held["test"] or split.test,
        }
        describe = split.describe + " (given files replace held-out parts)"
    else:
        split = split_pairs(pairs, source=args.pairs)
        parts = {"train": split.train, "valid": split.valid, "test": split.test}
        describe = split.describe
    tok = Tokenizer()
    src_vocab = Vocab.build(
        [tok.tokenize(s) for s, _ in parts["train"]], p["min_count"], p["max_vocab"]
    )
    tgt_vocab = Vocab.build(
        [tok.tokenize(t) for _, t in parts["train"]], p["min_count"], p["max_vocab"]
    )
    data: dict[str, Any] = {"tokenizer": tok, "source_vocab": src_vocab, "target_vocab": tgt_vocab}
    for name, part in parts.items():
        data[name] = {
            "src": [src_vocab.encode(tok.tokenize(s)) for s, _ in part],
            "tgt": [tgt_vocab.encode(tok.tokenize(t)) for _, t in part],
            "sources": [s for s, _ in part],
            "references": [tok.normalize(t) for _, t in part],
        }
    data["describe"] = describe
    return data


def tensors(src: list, tgt: list | None, index: np.ndarray):
    """Padded time-major ids: source (S, B), lengths (B,); decoder inputs (<bos> first) and
    targets (<eos> last) (T, B)."""
    s = [src[int(i)] for i in index]
    lengths = torch.tensor([len(x) for x in s])
    x = torch.full((int(lengths.max()), len(s)), PAD, dtype=torch.long)
    for b, seq in enumerate(s):
        x[: len(seq), b] = torch.as_tensor(seq)
    if tgt is None:
        return x, lengths, None, None
    t = [tgt[int(i)] for i in index]
    T = max(len(q) for q in t)
    y_in = torch.full((T, len(t)), PAD, dtype=torch.long)
    y_out = torch.full((T, len(t)), PAD, dtype=torch.long)
    for b, q in enumerate(t):
        y_out[: len(q), b] = torch.as_tensor(q)
        y_in[0, b] = BOS
        y_in[1 : len(q), b] = torch.as_tensor(q[:-1])
    return x, lengths, y_in, y_out


def translate(net: Seq2Seq, src: list, beam: int, p: dict):
    """Target ids and attention weights of every source, in order, batched by length as
    rnnkit's `translate_ids` (``decode_batch // beam`` sentences per batch)."""
    hyps: list[list[int]] = [[] for _ in src]
    atts: list[np.ndarray | None] = [None for _ in src]
    rows = max(1, p["decode_batch"] // beam)
    for index in bucket_batches([len(s) for s in src], rows):
        x, lengths, _, _ = tensors(src, None, index)
        out, att = beam_search(net, x, lengths, beam, p)
        for i, seq, a in zip(index, out, att, strict=True):
            hyps[int(i)], atts[int(i)] = seq, a
    return hyps, atts


@torch.no_grad()
def teacher_forced_loss(net: Seq2Seq, src: list, tgt: list, size: int = 128) -> float:
    """Cross-entropy per target token under teacher forcing, no dropout."""
    net.eval()
    total, count = 0.0, 0
    for index in bucket_batches([len(s) for s in src], size):
        x, lengths, y_in, y_out = tensors(src, tgt, index)
        mask = y_out != PAD
        z = net(x, lengths, y_in, mask)
        total += float(nn.functional.cross_entropy(z, y_out[mask], reduction="sum"))
        count += int(mask.sum())
    return total / max(count, 1)


def texts(data: dict, hyps: list[list[int]]) -> list[str]:
    tok, vocab = data["tokenizer"], data["target_vocab"]
    return [tok.detokenize(vocab.decode(h)) for h in hyps]


def score(hyps: list[str], refs: list[str]) -> tuple[float, float, str]:
    import sacrebleu

    metric = sacrebleu.BLEU()
    bleu = metric.corpus_score(hyps, [refs])
    chrf = sacrebleu.corpus_chrf(hyps, [refs])
    return float(bleu.score), float(chrf.score), str(metric.get_signature())


def lr_at(step: int, lr: float, warmup: int, progress: float) -> float:
    """rnnkit's `CosineLR` as the Trainer calls it: warm-up from 0, then cosine to lr / 30."""
    if step < warmup:
        return lr * step / warmup
    q = min(max(progress, 0.0), 1.0)
    return lr / 30 + (lr - lr / 30) * (1 + math.cos(math.pi * q)) / 2


def train(
    data: dict, p: dict, minutes: float, log, steps: int | None = None
) -> tuple[Seq2Seq, dict]:
    """Train for ``minutes`` of wall-clock (evaluation included); the best weights by
    validation BLEU; what the run measured. ``steps``: that many steps instead, no validation
    (a throughput run)."""
    src, tgt = data["train"]["src"], data["train"]["tgt"]
    valid = data["valid"]
    net = Seq2Seq(len(data["source_vocab"]), len(data["target_vocab"]), p)
    opt = torch.optim.AdamW(net.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
    # batches of similar source, then target, lengths (rnnkit's `TranslateObjective` keys)
    keys = np.array([len(a) * 1000 + len(b) for a, b in zip(src, tgt, strict=True)])
    per_epoch = -(-len(src) // p["batch_size"])
    warmup = min(p["warmup_steps"], per_epoch)
    budget = math.inf if steps else 60.0 * minutes
    start = time.perf_counter()
    decay_start = None
    step, epoch, pairs_seen, train_s = 0, 0, 0, 0.0
    marks: list[tuple[int, float]] = []
    best_bleu, best_state, history = -1.0, None, []

    def validate() -> float:
        """As rnnkit's `TranslateObjective.evaluate`: the teacher-forced loss (logged), then
        the greedy BLEU that picks the best weights."""
        val_loss = teacher_forced_loss(net, valid["src"], valid["tgt"])
        hyps, _ = translate(net, valid["src"], p["val_beam"], p)
        bleu = score(texts(data, hyps), valid["references"])[0]
        history.append([step, val_loss, bleu])
        return bleu

    while True:
        rng = np.random.default_rng([p["seed"], epoch])
        stop = False
        for index in bucket_batches(keys, p["batch_size"], rng):
            elapsed = time.perf_counter() - start
            if elapsed >= budget or (steps and step >= steps):
                stop = True
                break
            t0 = time.perf_counter()
            net.train()
            taken = step + 1
            if taken >= warmup and decay_start is None:
                decay_start = elapsed
            if decay_start is None:
                progress = 0.0
            elif steps:
                progress = (taken - warmup) / max(steps - warmup, 1)
            else:
                progress = (elapsed - decay_start) / max(budget - decay_start, 1e-9)
            for group in opt.param_groups:
                group["lr"] = lr_at(taken, p["lr"], warmup, progress)
            x, lens, y_in, y_out = tensors(src, tgt, index)
            mask = y_out != PAD
            z = net(x, lens, y_in, mask)  # (N, V): the real target steps
            # the mean over target tokens
            loss = nn.functional.cross_entropy(z, y_out[mask], label_smoothing=p["label_smoothing"])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), p["clip"])
            opt.step()
            train_s += time.perf_counter() - t0
            pairs_seen += len(index)
            marks.append((pairs_seen, train_s))
            step += 1
        if stop:
            break
        epoch += 1
        if steps:
            continue
        bleu = validate()
        log(
            f"epoch {epoch}, step {step}, {(time.perf_counter() - start) / 60:.1f} min: "
            f"loss {float(loss):.3f}, validation BLEU {bleu:.2f}"
        )
        if bleu > best_bleu:
            best_bleu, best_state = bleu, copy.deepcopy(net.state_dict())
    if steps:
        best_state = net.state_dict()
    elif not history or history[-1][0] != step:
        bleu = validate()
        log(f"end, step {step}: validation BLEU {bleu:.2f}")
        if bleu > best_bleu:
            best_bleu, best_state = bleu, copy.deepcopy(net.state_dict())
    seconds = time.perf_counter() - start
    assert best_state is not None
    net.load_state_dict(best_state)
    skip = min(WARMUP, len(marks) // 2)
    if skip:
        (n0, t0), (n1, t1) = marks[skip - 1], marks[-1]
        speed = (n1 - n0) / max(t1 - t0, 1e-9)
    else:
        speed = pairs_seen / max(train_s, 1e-9)
    return net, {
        "val_bleu": best_bleu,
        "steps": step,
        "epochs": epoch,
        "seconds": seconds,
        "pairs_per_second": speed,
        "history": history,
    }


def examples(sources: list[str], refs: list[str], text: list[str], n: int = 10) -> list[dict]:
    """The translations of the first ``n`` distinct test sources, with all their references."""
    found: dict[str, dict] = {}
    for source, ref, hyp in zip(sources, refs, text, strict=True):
        if source not in found and len(found) == n:
            break
        found.setdefault(source, {"source": source, "translation": hyp, "references": []})
        found[source]["references"].append(ref)
    return list(found.values())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", required=True, help="tab-separated source<TAB>target lines")
    ap.add_argument("--valid", default=None, help="validation pairs (default: carved out)")
    ap.add_argument("--test", default=None, help="test pairs (default: carved out)")
    ap.add_argument("--reverse", action="store_true", help="swap the columns (default: off)")
    ap.add_argument("--minutes", type=float, default=20.0, help="training budget (default: 20)")
    ap.add_argument("--beam", type=int, default=5, help="beam width (default: 5)")
    ap.add_argument("--threads", type=int, default=None, help="(default: $OMP_NUM_THREADS or 1)")
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help="train this many steps, no validation or test: a throughput run (default: off)",
    )
    ap.add_argument("--params", default="{}", help="JSON overriding DEFAULTS (default: {})")
    args = ap.parse_args(argv)
    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    p = {**DEFAULTS, **json.loads(args.params)}
    torch.manual_seed(p["seed"])

    def log(message: str) -> None:
        print(f"translate_torch: {message}", file=sys.stderr, flush=True)

    data = load_data(args, p)
    log(
        f"{data['describe']}; vocabularies {len(data['source_vocab'])} and "
        f"{len(data['target_vocab'])}; dropout {p['dropout']:g}; {threads} threads, "
        f"{args.minutes:g} minutes"
    )
    net, result = train(data, p, args.minutes, log, args.steps)
    if args.steps:
        print(json.dumps({"side": "torch", **result, "threads": threads}))
        return
    test = data["test"]
    t0 = time.perf_counter()
    hyps, _ = translate(net, test["src"], args.beam, p)
    decode_s = time.perf_counter() - t0
    text = texts(data, hyps)
    bleu, chrf, signature = score(text, test["references"])
    result = {
        "side": "torch",
        **result,
        "test_bleu": bleu,
        "test_chrf": chrf,
        "signature": signature,
        "beam": args.beam,
        "test_sentences_per_second": len(text) / max(decode_s, 1e-9),
        "threads": threads,
        "parameters": sum(q.numel() for q in net.parameters()),
        "params": p,
        "examples": examples(test["sources"], test["references"], text),
        "hypotheses": text,  # for eval-translate's paired bootstrap against rnnkit
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
