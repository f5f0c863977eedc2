"""Seq2Seq and translation: pairs files, tokens, the encoder-decoder's gradients, decoding."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import rnnkit
from numeric import numeric_grad
from rnnkit import Seq2Seq
from rnnkit.cli import main
from rnnkit.data.batches import pad
from rnnkit.data.pairs import EOS, UNK, Tokenizer, Vocab, read_pairs, split_pairs
from rnnkit.errors import CheckpointError, InputError, NotFittedError, RnnkitWarning
from rnnkit.estimators.seq2seq_objective import shifted, token_cross_entropy
from rnnkit.layers import Attention
from rnnkit.losses import cross_entropy, log_softmax
from rnnkit.models.seq2seq import Seq2SeqNet
from rnnkit.models.seq2seq_decode import beam_batch, translate_ids


# -- pairs files -----------------------------------------------------------------------------
def test_read_pairs_accepts_the_anki_quirks(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_bytes(
        "1\t2\r\nGo.\tVa !\tCC-BY 2.0 (France) Attribution\r\n\r\nRun!\tCours\u202f!\r\n"
        "Cut\tIls l'ont \n".encode()
    )
    with pytest.warns(RnnkitWarning, match="line 5 looks cut off"):
        pairs = read_pairs(path)
    assert pairs == [("Go.", "Va !"), ("Run!", "Cours\u202f!")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert read_pairs(path, reverse=True)[0] == ("Va !", "Go.")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"Go.\tVa !\nRun!\nA\tB", r"'.*p\.txt' line 2 has no tab"),
        (b"Go.\tVa !\n\tCours !\nA\tB\n", r"line 2 has an empty source"),
        (b"Go.\tVa !\nRun!\t \nA\tB\n", r"line 2 has an empty target"),
        (b"\n \n", r"'.*p\.txt' is empty"),
        (b"Go.\tVa !\nCaf\xe9\tCaf\xe9\n", r"'.*p\.txt' is not valid UTF-8 \(line 2"),
    ],
)
def test_bad_pairs_files_end_in_one_line_naming_file_and_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "p.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        read_pairs(path)
    assert "\n" not in str(info.value)


def test_tokenizer_round_trip_and_switches() -> None:
    tok = Tokenizer()
    assert tok.tokenize("Don't go, Tom!") == ["don", "'", "t", "go", ",", "tom", "!"]
    assert tok.normalize("Don't go, Tom!") == "don't go, tom!"
    assert tok.normalize("Cours\u202f!") == "cours!"
    assert Tokenizer(lowercase=False, split_punctuation=False).tokenize("Go, Tom!") == [
        "Go,",
        "Tom!",
    ]
    chars = Tokenizer(level="char", lowercase=False)
    assert chars.tokenize("Hi  Tom") == list("Hi Tom")
    assert chars.detokenize(chars.tokenize("Hi  Tom")) == "Hi Tom"


def test_vocab_specials_counts_and_decode() -> None:
    vocab = Vocab.build([["a", "b", "a"], ["a", "c"]], min_count=2)
    assert vocab.tokens == ["<pad>", "<bos>", "<eos>", "<unk>", "a"]
    ids = vocab.encode(["a", "b"])
    assert ids.tolist() == [4, UNK, EOS]
    assert vocab.decode([*ids.tolist(), 4]) == ["a", "<unk>"]
    assert Vocab.from_metadata(vocab.to_metadata()).tokens == vocab.tokens
    assert len(Vocab.build([["a", "b", "c"]], max_size=6)) == 6


def test_split_is_fixed_and_keeps_a_source_sentence_in_one_part() -> None:
    pairs = [(f"s{i % 50}", f"t{i}") for i in range(200)]
    one, two = split_pairs(pairs, seed=3, valid=0.1, test=0.1), split_pairs(pairs, seed=3)
    assert one == split_pairs(pairs, seed=3, valid=0.1, test=0.1)
    assert one.train != split_pairs(pairs, seed=4, valid=0.1, test=0.1).train
    sources = [{s for s, _ in part} for part in (one.train, one.valid, one.test)]
    assert len(sources[1]) == 5 and len(sources[2]) == 5
    assert not (sources[0] & sources[1]) and not (sources[0] & sources[2])
    assert len(one.train) + len(one.valid) + len(one.test) == 200
    assert "held out" in two.describe


# -- the network: gradients and parity ---------------------------------------------------------
def _tiny_batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    S, T, B, V = 5, 4, 3, 9
    src = rng.integers(3, V, (S, B))
    src_len = np.array([5, 3, 2])
    tgt = rng.integers(3, V, (T, B))
    tgt_len = np.array([4, 2, 3])
    return src, src_len, tgt, tgt_len, V


@pytest.mark.parametrize(
    ("attention", "input_feeding", "cell", "layers"),
    [
        ("general", False, "gru", 1),
        ("dot", False, "lstm", 2),
        ("additive", False, "gru", 1),
        ("none", False, "rnn", 1),
        ("general", True, "gru", 1),
    ],
)
def test_whole_encoder_decoder_gradients_match_finite_differences(
    attention: str, input_feeding: bool, cell: str, layers: int
) -> None:
    src, src_len, tgt, tgt_len, V = _tiny_batch()
    net = Seq2SeqNet(
        V, V, 4, 6, layers, cell, attention, input_feeding, dropout=0.0, dtype="float64", seed=1
    )
    mask = np.arange(len(tgt))[:, None] < tgt_len[None, :]

    def loss() -> float:  # the inference path: no closures, no dropout
        logits = net.teacher_forced(src, src_len, shifted(tgt))[mask]
        return token_cross_entropy(logits, tgt[mask])[0]

    net.zero_grad()
    logits, backward = net.forward_train(src, src_len, shifted(tgt), mask)
    value, dlogits = token_cross_entropy(logits, tgt[mask])
    assert value == pytest.approx(loss(), abs=1e-12)
    backward(dlogits)
    grads = net.named_grads()
    for key, param in net.named_parameters().items():
        np.testing.assert_allclose(
            grads[key], numeric_grad(loss, param), rtol=1e-5, atol=1e-8, err_msg=key
        )


def test_scheduled_sampling_gradients_match_finite_differences() -> None:
    """Teacher forcing below 1: each row's own guesses are fed back (the draws fixed by
    reseeding), and the gradient is still exact."""
    src, src_len, tgt, tgt_len, V = _tiny_batch(1)
    net = Seq2SeqNet(V, V, 4, 6, dropout=0.0, dtype="float64", seed=2)
    net.teacher_forcing = 0.5
    mask = np.arange(len(tgt))[:, None] < tgt_len[None, :]

    def run():
        net.rng = np.random.default_rng(7)
        return net.forward_train(src, src_len, shifted(tgt), mask)

    def loss() -> float:
        return token_cross_entropy(run()[0], tgt[mask])[0]

    net.zero_grad()
    logits, backward = run()
    backward(token_cross_entropy(logits, tgt[mask])[1])
    key = "decoder.weight_hh_l0"
    np.testing.assert_allclose(
        net.named_grads()[key],
        numeric_grad(loss, net.named_parameters()[key]),
        rtol=1e-5,
        atol=1e-8,
    )


class TorchSeq2Seq:
    """The default architecture written in PyTorch: packed bidirectional GRU encoder, its
    final states concatenated as the decoder's, a GRU decoder over the whole target, general
    attention after it, ``tanh(W_c [c; h])``, the output layer."""

    def __init__(self, Vs: int, Vt: int, E: int, H: int) -> None:
        import torch

        nn = torch.nn
        self.torch = torch
        self.params = {
            "src_embed.weight": nn.Embedding(Vs, E),
            "tgt_embed.weight": nn.Embedding(Vt, E),
        }
        self.src_embed, self.tgt_embed = (
            self.params["src_embed.weight"],
            self.params["tgt_embed.weight"],
        )
        self.encoder = nn.GRU(E, H // 2, bidirectional=True).double()
        self.decoder = nn.GRU(E, H).double()
        self.W = nn.Parameter(torch.zeros(H, H, dtype=torch.float64))
        self.combine = nn.Linear(2 * H, H, bias=False).double()
        self.out = nn.Linear(H, Vt).double()
        self.src_embed.double()
        self.tgt_embed.double()

    def named(self) -> dict:
        named = {
            "src_embed.weight": self.src_embed.weight,
            "tgt_embed.weight": self.tgt_embed.weight,
            "attend.weight": self.W,
            "combine.weight": self.combine.weight,
            "out.weight": self.out.weight,
            "out.bias": self.out.bias,
        }
        named |= {f"encoder.{k}": v for k, v in self.encoder.named_parameters()}
        named |= {f"decoder.{k}": v for k, v in self.decoder.named_parameters()}
        return named

    def __call__(self, src, lengths, tgt_in):
        torch = self.torch
        rnn_utils = torch.nn.utils.rnn
        packed = rnn_utils.pack_padded_sequence(self.src_embed(src), lengths, enforce_sorted=False)
        keys, h_n = self.encoder(packed)
        keys, _ = rnn_utils.pad_packed_sequence(keys, total_length=src.shape[0])  # (S, B, H)
        h0 = torch.cat([h_n[0], h_n[1]], dim=-1)[None]
        h, _ = self.decoder(self.tgt_embed(tgt_in), h0)  # (T, B, H)
        e = torch.einsum("tbh,hk,sbk->bts", h, self.W, keys)
        valid = torch.arange(src.shape[0])[None, None, :] < lengths[:, None, None]
        a = torch.softmax(e.masked_fill(~valid, float("-inf")), dim=-1)
        c = torch.einsum("bts,sbk->tbk", a, keys)
        return self.out(torch.tanh(self.combine(torch.cat([c, h], dim=-1))))


def test_default_architecture_matches_pytorch_values_and_gradients() -> None:
    import torch

    rng = np.random.default_rng(0)
    S, T, B, Vs, Vt, E, H = 6, 5, 4, 11, 13, 8, 10
    net = Seq2SeqNet(Vs, Vt, E, H, dropout=0.0, dtype="float64", seed=3)
    ref = TorchSeq2Seq(Vs, Vt, E, H)
    named = ref.named()
    assert set(named) == set(net.state_dict())
    with torch.no_grad():
        for key, value in net.state_dict().items():
            named[key].copy_(torch.from_numpy(value))
    src = rng.integers(3, Vs, (S, B))
    src_len = np.array([6, 2, 4, 5])
    tgt = rng.integers(3, Vt, (T, B))
    mask = np.arange(T)[:, None] < np.array([5, 3, 1, 4])[None, :]
    net.zero_grad()
    logits, backward = net.forward_train(src, src_len, shifted(tgt), mask)
    loss, dlogits = token_cross_entropy(logits, tgt[mask])
    backward(dlogits)
    t_logits = ref(torch.from_numpy(src), torch.from_numpy(src_len), torch.from_numpy(shifted(tgt)))
    t_mask = torch.from_numpy(mask)
    t_loss = torch.nn.functional.cross_entropy(t_logits[t_mask], torch.from_numpy(tgt[mask]))
    t_loss.backward()
    np.testing.assert_allclose(logits, t_logits.detach().numpy()[mask], rtol=1e-10, atol=1e-12)
    assert loss == pytest.approx(t_loss.item(), abs=1e-12)
    grads = net.named_grads()
    for key, param in named.items():
        np.testing.assert_allclose(
            grads[key], param.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=key
        )


def test_many_queries_equal_one_query_at_a_time() -> None:
    rng = np.random.default_rng(4)
    keys = rng.standard_normal((6, 3, 5))
    queries = rng.standard_normal((4, 3, 5))
    lengths = np.array([6, 2, 4])
    for kind in ("dot", "general", "additive"):
        att = Attention(5, 5, kind=kind, seed=0, dtype="float64")
        contexts, weights = att.many(queries, keys, lengths=lengths)
        for s in range(4):
            c, a = att(queries[s], keys, lengths=lengths)
            np.testing.assert_allclose(contexts[s], c, atol=1e-12)
            np.testing.assert_allclose(weights[s], a, atol=1e-12)


def test_token_cross_entropy_equals_the_masked_loss_of_losses() -> None:
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((7, 3, 11)).astype(np.float32)
    targets = rng.integers(0, 11, (7, 3))
    mask = rng.random((7, 3)) < 0.7
    want, dwant = cross_entropy(logits, targets, mask=mask)
    got, dgot = token_cross_entropy(logits[mask].copy(), targets[mask])
    assert got == pytest.approx(want, rel=1e-6)
    np.testing.assert_allclose(dgot, dwant[mask], atol=1e-7)


def test_label_smoothing_is_torchs_and_its_gradient_checks() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((9, 13))
    targets = rng.integers(0, 13, 9)
    got, dgot = token_cross_entropy(logits.copy(), targets, smoothing=0.1)
    z = torch.tensor(logits, requires_grad=True)
    want = torch.nn.functional.cross_entropy(z, torch.tensor(targets), label_smoothing=0.1)
    want.backward()
    assert got == pytest.approx(float(want.detach()), rel=1e-12)
    np.testing.assert_allclose(dgot, z.grad.numpy(), atol=1e-12)
    num = numeric_grad(lambda: token_cross_entropy(logits.copy(), targets, 0.1)[0], logits)
    np.testing.assert_allclose(dgot, num, atol=1e-7)


# -- decoding ----------------------------------------------------------------------------------
def test_beam_of_one_equals_greedy_and_wider_beams_score_no_worse() -> None:
    rng = np.random.default_rng(6)
    for attention in ("general", "additive"):
        net = Seq2SeqNet(12, 15, 8, 16, attention=attention, seed=5)
        sources = [rng.integers(3, 12, rng.integers(1, 7)) for _ in range(20)]
        greedy, g_att = translate_ids(net, sources, beam=1, attention=True)
        beam1, b_att = beam_search_ids(net, sources, beam=1)
        assert greedy == beam1
        for a, b in zip(g_att, b_att, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)
        five, _ = translate_ids(net, sources, beam=5, length_penalty=0.0)
        assert _log_prob(net, sources, five) >= _log_prob(net, sources, greedy) - 1e-4


def beam_search_ids(net, sources, beam):
    """Beam search run for ``beam`` = 1 (not the greedy path `translate_ids` takes)."""
    out, weights = [], []
    for s in sources:
        src, lengths = pad([s], np.array([0]))
        ids, att = beam_batch(net, src, lengths, beam, 2.0, 1.0, attention=True)
        out.append(ids[0])
        weights.append(att[0])
    return out, weights


def _log_prob(net, sources, outputs) -> float:
    """Total log-probability the model gives ``outputs`` (with <eos>)."""
    total = 0.0
    for s, ids in zip(sources, outputs, strict=True):
        src, lengths = pad([s], np.array([0]))
        tgt = np.array([*ids, EOS])[:, None]
        logits = net.teacher_forced(src, lengths, shifted(tgt))[:, 0]
        lp = log_softmax(logits)
        total += float(lp[np.arange(len(tgt)), tgt[:, 0]].sum())
    return total


# -- learning, saving, the command line --------------------------------------------------------
def _sequences(seed: int, n: int, task: str) -> tuple[list[str], list[str]]:
    """Short random sequences of 3 to 5 distinct symbols of 8 (a symbol repeated next to
    itself asks the decoder to count, which takes longer than a fast test), and their copy or
    reversal."""
    rng = np.random.default_rng(seed)
    X = [
        " ".join(rng.choice(list("abcdefgh"), rng.integers(3, 6), replace=False)) for _ in range(n)
    ]
    y = [" ".join(s.split()[::-1]) if task == "reverse" else s for s in X]
    return X, y


def _fit(task: str) -> Seq2Seq:
    X, y = _sequences(0, 1500, task)
    X_valid, y_valid = _sequences(1, 100, task)
    model = Seq2Seq(
        min_count=1,
        embedding_dim=32,
        hidden_size=64,
        attention="dot",
        dropout=0.0,
        beam=1,
        lr=1e-2,
        batch_size=32,
        epochs=6,
        seed=0,
    )
    return model.fit(X, y, X_valid, y_valid)


@pytest.fixture(scope="module")
def reverser() -> Seq2Seq:
    return _fit("reverse")


@pytest.mark.parametrize("task", ["reverse", "copy"])
def test_learns_to_copy_and_reverse_short_random_sequences_exactly(task: str, reverser) -> None:
    model = reverser if task == "reverse" else _fit(task)
    X, y = _sequences(2, 200, task)
    assert model.predict(X) == y
    assert model.score(X, y) == pytest.approx(100.0)
    assert model.best_val_bleu_ == pytest.approx(100.0)
    assert model.history_["val"]  # validated once per epoch


def test_save_and_load_translate_identically(reverser, tmp_path: Path) -> None:
    path = rnnkit.save(reverser, tmp_path / "m.safetensors")
    back = rnnkit.load(path)
    assert isinstance(back, Seq2Seq)
    X, _ = _sequences(3, 50, "reverse")
    assert back.predict(X, beam=3) == reverser.predict(X, beam=3)
    assert back.get_params() == reverser.get_params()
    assert back.target_vocab_.tokens == reverser.target_vocab_.tokens
    assert back.tokenizer_ == reverser.tokenizer_


def test_a_checkpoint_from_before_weight_decay_loads_with_none(reverser, tmp_path) -> None:
    meta = reverser._metadata()
    for name in ("weight_decay", "label_smoothing"):  # written before these parameters
        del meta["params"][name]
    path = tmp_path / "old.safetensors"
    rnnkit.save(reverser.model_, path, metadata=meta)
    back = rnnkit.load(path)
    assert back.get_params() == {**reverser.get_params(), "weight_decay": 0.0}
    assert Seq2Seq().weight_decay == 0.1  # today's default, not what the old one trained with


def test_predict_before_fit_and_bad_params_are_clear_errors() -> None:
    with pytest.raises(NotFittedError, match="before fit"):
        Seq2Seq().predict(["a b"])
    with pytest.raises(InputError, match="attention must be one of"):
        Seq2Seq(attention="bilinear").fit(["a"], ["b"])
    with pytest.raises(InputError, match="tie_embeddings needs embedding_dim == hidden_size"):
        Seq2SeqNet(5, 5, 8, 16, tie_embeddings=True)


def test_tied_embeddings_share_one_array() -> None:
    net = Seq2SeqNet(7, 9, 8, 8, tie_embeddings=True, seed=0)
    assert net.out.params["weight"] is net.tgt_embed.params["weight"]
    assert "out.weight" not in net.state_dict()  # saved once, under the embedding's key


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_trains_scores_and_translates(tmp_path: Path, capsys, monkeypatch) -> None:
    X, y = _sequences(4, 400, "reverse")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("".join(f"{s}\t{t}\tCC-BY\n" for s, t in zip(X, y, strict=True)))
    model = tmp_path / "m.safetensors"
    code, out, err = _run(
        ["train", "translate", "--pairs", str(pairs), "--out", str(model), "--epochs", "1",
         "--hidden", "32", "--embedding", "16", "--min-count", "1", "--beam", "2", "--json"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "held out from" in err  # the split is stated
    metrics = json.loads(out.strip().splitlines()[-1])
    for key in ("val_bleu", "test_bleu", "test_chrf", "pairs_per_second"):
        assert np.isfinite(metrics[key]), key
    assert metrics["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert metrics["train_pairs"] + metrics["valid_pairs"] + metrics["test_pairs"] == 400
    monkeypatch.setattr("sys.stdin", io.StringIO("a b c\n\nd e f\n"))
    png = tmp_path / "att.png"
    code, out, err = _run(["translate", str(model), "--beam", "1", "--attention", str(png)], capsys)
    assert code == 0, err
    assert len(out.splitlines()) == 3 and out.splitlines()[1] == ""
    assert png.read_bytes().startswith(b"\x89PNG")
    text = tmp_path / "in.txt"
    text.write_text("a b c\n")
    code, out2, _ = _run(["translate", str(model), str(text), "--beam", "1"], capsys)
    assert code == 0 and out2.splitlines() == out.splitlines()[:1]


def test_cli_bad_pairs_file_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    pairs = tmp_path / "bad.txt"
    pairs.write_text("a b\tb a\nno tab here\nc\td\n")
    code, out, err = _run(
        ["train", "translate", "--pairs", str(pairs), "--out", str(tmp_path / "m.safetensors")],
        capsys,
    )
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "bad.txt' line 2 has no tab" in err
    code, _, err = _run(["translate", str(pairs)], capsys)
    assert code == 2 and err.startswith("rnnkit: error:")


def test_a_stopped_fit_resumes_where_it_stopped(tmp_path: Path) -> None:
    X, y = _sequences(5, 200, "copy")
    out = tmp_path / "m.safetensors"
    small = {"min_count": 1, "embedding_dim": 8, "hidden_size": 16, "batch_size": 50}
    first = Seq2Seq(**small, epochs=1).fit(X, y, X[:20], y[:20], out=out)
    assert first.n_steps_ == 4
    with pytest.raises(CheckpointError, match="pass force=True"):
        Seq2Seq(**small, epochs=2).fit(X, y, X[:20], y[:20], out=out, resume=True)
    with pytest.raises(CheckpointError, match="cannot change shape"):
        Seq2Seq(**{**small, "attention": "dot"}, epochs=2).fit(X, y, out=out, resume=True)
    with pytest.warns(RnnkitWarning, match="resume"):
        again = Seq2Seq(**small, epochs=2).fit(
            X, y, X[:20], y[:20], out=out, resume=True, force=True
        )
    assert again.n_steps_ == 8
    assert len(again.history_["train"]) == 8


@pytest.mark.parametrize(
    "options",
    [
        {"attention": "additive", "teacher_forcing": 0.8, "teacher_forcing_decay": 0.1},
        {"input_feeding": True, "cell": "lstm", "level": "char", "tie_embeddings": True},
        {"attention": "none", "num_layers": 2, "beam": 3},
    ],
)
def test_the_step_loop_options_train_and_translate(options: dict) -> None:
    X, y = _sequences(6, 300, "copy")
    model = Seq2Seq(
        **{
            "min_count": 1,
            "embedding_dim": 16,
            "hidden_size": 16,
            "lr": 1e-2,
            "epochs": 3,
            "batch_size": 16,
        }
        | options
    ).fit(X, y, X[:30], y[:30])
    losses = model.history_["train"]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])  # it learns
    out = model.predict(X[:5])
    assert len(out) == 5 and all(isinstance(s, str) for s in out)
    assert model.model_.stepwise == (
        options.get("attention") == "additive" or "input_feeding" in options
    )
