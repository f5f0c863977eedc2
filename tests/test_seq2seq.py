"""Seq2Seq and translation: pairs files, tokens, the encoder-decoder's gradients, decoding."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from rnnkit.data.pairs import EOS, UNK, Tokenizer, Vocab, read_pairs, split_pairs
from rnnkit.errors import InputError, RnnkitWarning


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
