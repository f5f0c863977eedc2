"""benchmarks/translate_torch.py, the PyTorch side of `make eval-translate`: its network trains
a step on a tiny batch, and its beam search with beam 1 is greedy search."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from by_path import benchmark  # noqa: E402
from rnnkit.data.pairs import BOS, EOS, PAD  # noqa: E402

TT = benchmark("translate_torch")
SRC = [np.array([5, 6, 7, EOS]), np.array([4, EOS]), np.array([8, 9, 5, 6, 7, EOS])]
TGT = [np.array([5, 6, EOS]), np.array([7, 8, 9, 10, EOS]), np.array([4, EOS])]


def _net(attention: str, feeding: bool = False):
    torch.manual_seed(0)
    p = {**TT.DEFAULTS, "embedding_dim": 8, "hidden_size": 8, "dropout": 0.0}
    p |= {"attention": attention, "input_feeding": feeding}
    return TT.Seq2Seq(12, 13, p), p


def test_batches_shift_the_targets() -> None:
    x, lengths, y_in, y_out = TT.tensors(SRC, TGT, np.arange(3))
    assert x.shape == (6, 3) and lengths.tolist() == [4, 2, 6]
    assert y_in[:, 1].tolist() == [BOS, 7, 8, 9, 10]  # <bos>, then the target but the last
    assert y_out[:, 1].tolist() == [7, 8, 9, 10, EOS]
    assert y_out[:, 0].tolist() == [5, 6, EOS, PAD, PAD]


@pytest.mark.parametrize(
    ("attention", "feeding"),
    [("general", False), ("additive", False), ("dot", True), ("none", False)],
)
def test_one_training_step_reaches_every_parameter(attention: str, feeding: bool) -> None:
    net, p = _net(attention, feeding)
    x, lengths, y_in, y_out = TT.tensors(SRC, TGT, np.arange(3))
    mask = y_out != PAD
    logits = net(x, lengths, y_in, mask)
    assert logits.shape == (int(mask.sum()), 13)
    loss = torch.nn.functional.cross_entropy(logits, y_out[mask])
    loss.backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and float(param.grad.abs().sum()) > 0, name
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    opt.step()
    after = torch.nn.functional.cross_entropy(net(x, lengths, y_in, mask), y_out[mask])
    assert float(after.detach()) < float(loss.detach())


@pytest.mark.parametrize("attention", ["general", "additive", "none"])
def test_beam_one_is_greedy(attention: str) -> None:
    net, p = _net(attention)
    hyps, weights = TT.translate(net, SRC, 1, p)
    net.eval()
    for src, hyp, w in zip(SRC, hyps, weights, strict=True):
        x, lengths, _, _ = TT.tensors([src], None, np.arange(1))
        keys, pk, pad, state = net.encode(x, lengths)
        feed = torch.zeros(1, net.hidden)
        token, out = torch.tensor([BOS]), []
        limit = int(p["max_length_ratio"] * len(src)) + 2
        with torch.no_grad():
            for t in range(limit):
                feed, state, _ = net.step(token, state, feed, keys, pk, pad)
                token = net.out(feed).argmax(-1) if t + 1 < limit else torch.tensor([EOS])
                if int(token) == EOS:
                    break
                out.append(int(token))
        assert hyp == out
        if attention == "none":
            assert w is None
        else:
            assert w.shape == (len(out) + 1, len(src))
            np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-5)
    wide, _ = TT.translate(net, SRC, 3, p)
    assert len(wide) == len(SRC)


def test_the_training_options_reach_a_run(tmp_path, capsys) -> None:
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("".join(f"w{i} x{i % 5} .\tv{i} y{i % 3} .\n" for i in range(60)))
    params = '{"embedding_dim": 8, "hidden_size": 8, "label_smoothing": 0.1, "weight_decay": 0.1}'
    TT.main(["--pairs", str(pairs), "--steps", "2", "--threads", "1", "--params", params])
    out, err = capsys.readouterr()
    assert "dropout 0.2;" in err and '"steps": 2' in out
