"""`Seq2Seq`: translate sentences with an encoder-decoder with attention
(`rnnkit.models.seq2seq`), with scikit-learn's conventions.

``Seq2Seq().fit(sources, targets).predict(sentences)``: lists of strings in and out. The
tokenizer and the two vocabularies are learned from the training pairs
(`rnnkit.data.pairs`); training runs through the one `Trainer` (`run_fit`), validating by the
teacher-forced loss and by BLEU of greedy translations of the validation pairs, and the
checkpoint with the best BLEU is kept. ``score`` is corpus BLEU (sacreBLEU) of the
detokenised translations against the references in the same normal form
(`Tokenizer.normalize`: lower-cased when the model is); `evaluate` adds chrF and sacreBLEU's
signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..data.pairs import Tokenizer, Vocab, split_pairs
from ..errors import InputError
from ..layers.module import Module
from ..models.seq2seq import ATTENTIONS, RECURRENT, Seq2SeqNet
from ..models.seq2seq_decode import translate_ids
from ..training import last_path, read_last
from .base import Estimator
from .fitting import run_fit
from .resume import fingerprint
from .seq2seq_objective import TranslateObjective, sacrebleu_scores

DEFAULT_EPOCHS = 10


class Seq2Seq(Estimator):
    """Sequence to sequence: ``Seq2Seq().fit(sources, targets)``; ``predict(sources)``.

    Tokens: ``level`` ``"word"`` (``lowercase``, ``split_punctuation``) or ``"char"``;
    vocabularies of the tokens seen ``min_count`` times, at most ``max_vocab``. Network
    (`rnnkit.models.seq2seq.Seq2SeqNet`): ``cell``, ``embedding_dim``, ``hidden_size``,
    ``num_layers``, ``attention`` (general, dot, additive, none), ``input_feeding``,
    ``dropout``, ``tie_embeddings``. Training: the cross-entropy of the target tokens with
    ``label_smoothing`` (0: none), teacher forcing with ratio ``teacher_forcing``
    lowered by ``teacher_forcing_decay`` per epoch (below 1 the decoder runs step by step),
    AdamW at ``lr`` with ``weight_decay``, batches of ``batch_size`` pairs of similar
    lengths, a budget of ``epochs``, ``steps`` or ``minutes`` (none: 10 epochs), ``patience``
    evaluations without a better validation BLEU. Decoding: ``beam`` (1: greedy),
    ``length_penalty``, ``max_length_ratio``. Learned: ``tokenizer_``, ``source_vocab_``,
    ``target_vocab_``, ``model_``, ``best_val_bleu_``, ``history_`` ...
    """

    model_: Seq2SeqNet
    # checkpoints from before these existed trained without them
    _added_params: ClassVar[dict[str, Any]] = {"weight_decay": 0.0, "label_smoothing": 0.0}

    def __init__(
        self,
        level: str = "word",
        lowercase: bool = True,
        split_punctuation: bool = True,
        min_count: int = 2,
        max_vocab: int | None = None,
        cell: str = "gru",
        embedding_dim: int = 256,
        hidden_size: int = 256,
        num_layers: int = 1,
        attention: str = "general",
        input_feeding: bool = False,
        dropout: float = 0.2,
        tie_embeddings: bool = False,
        label_smoothing: float = 0.0,
        teacher_forcing: float = 1.0,
        teacher_forcing_decay: float = 0.0,
        beam: int = 5,
        length_penalty: float = 1.0,
        max_length_ratio: float = 2.0,
        batch_size: int = 64,
        lr: float = 2e-3,
        weight_decay: float = 0.1,
        clip: float = 5.0,
        epochs: float | None = None,
        steps: int | None = None,
        minutes: float | None = None,
        patience: int | None = None,
        validation_fraction: float = 0.05,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        self.level = level
        self.lowercase = lowercase
        self.split_punctuation = split_punctuation
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.cell = cell
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.attention = attention
        self.input_feeding = input_feeding
        self.dropout = dropout
        self.tie_embeddings = tie_embeddings
        self.label_smoothing = label_smoothing
        self.teacher_forcing = teacher_forcing
        self.teacher_forcing_decay = teacher_forcing_decay
        self.beam = beam
        self.length_penalty = length_penalty
        self.max_length_ratio = max_length_ratio
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.clip = clip
        self.epochs = epochs
        self.steps = steps
        self.minutes = minutes
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.verbose = verbose

    # -- fit -----------------------------------------------------------------------------------
    def _check_params(self) -> None:
        name = "Seq2Seq"
        if self.cell not in RECURRENT:
            raise InputError(f"{name}: cell must be one of {sorted(RECURRENT)}, got {self.cell!r}")
        if self.attention not in ATTENTIONS:
            raise InputError(
                f"{name}: attention must be one of {ATTENTIONS}, got {self.attention!r}"
            )
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise InputError(
                f"{name}: teacher_forcing must lie in [0, 1], got {self.teacher_forcing}"
            )
        if self.beam < 1:
            raise InputError(f"{name}: beam must be at least 1, got {self.beam}")
        if self.batch_size < 1:
            raise InputError(f"{name}: batch_size must be at least 1, got {self.batch_size}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise InputError(
                f"{name}: label_smoothing must lie in [0, 1), got {self.label_smoothing}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"{name}: dropout must lie in [0, 1), got {self.dropout}")

    def fit(
        self,
        X: Sequence[str],
        y: Sequence[str],
        X_valid: Sequence[str] | None = None,
        y_valid: Sequence[str] | None = None,
        out: str | Path | None = None,
        metadata: dict[str, Any] | None = None,
        resume: bool = False,
        force: bool = False,
    ) -> Seq2Seq:
        """Learn to translate ``X`` into ``y`` (lists of sentences); returns self. Without
        ``X_valid``/``y_valid``, ``validation_fraction`` of the pairs (by source sentence,
        `split_pairs`) is held out. ``out``, ``metadata``, ``resume``, ``force``: as
        `SequenceClassifier.fit`."""
        self._check_params()
        if resume and out is None:
            raise InputError("Seq2Seq.fit: resume=True needs out, the saved run's path")
        saved = read_last(last_path(Path(out))) if resume and out is not None else None
        pairs = _pairs(X, y, "Seq2Seq.fit")
        if X_valid is None:
            split = split_pairs(pairs, self.seed, valid=self.validation_fraction, test=0)
            pairs, valid = split.train, split.valid
        else:
            valid = _pairs(X_valid, y_valid, "Seq2Seq.fit (validation)")
        self.tokenizer_ = Tokenizer(self.level, self.lowercase, self.split_punctuation)
        tok = self.tokenizer_.tokenize
        if saved is None:
            self.source_vocab_ = Vocab.build(
                (tok(s) for s, _ in pairs), self.min_count, self.max_vocab
            )
            self.target_vocab_ = Vocab.build(
                (tok(t) for _, t in pairs), self.min_count, self.max_vocab
            )
        else:
            self._restore_vocabs(saved.metadata["learned"])
        self.model_ = self._network()
        train = self._encode_pairs(pairs)
        held = self._encode_pairs(valid)
        references = [self.tokenizer_.normalize(t) for _, t in valid]
        objective = TranslateObjective(self, train, held, references)
        data = {
            "train": fingerprint([*train[0], *train[1]], np.zeros(0)),
            "valid": fingerprint([*held[0], *held[1]], np.zeros(0)),
        }
        describe = (
            f"data: {len(pairs):,} training, {len(valid):,} validation pairs; vocabularies "
            f"{len(self.source_vocab_):,} source, {len(self.target_vocab_):,} target tokens"
        )
        result = run_fit(
            self,
            objective,
            describe=describe,
            unit="pair",
            default_epochs=DEFAULT_EPOCHS,
            out=out,
            metadata=metadata,
            saved=saved,
            data=data,
            force=force,
        )
        # the Trainer kept the lowest -BLEU + 1e-6 loss: BLEU to 4 decimals, never -0.0
        self.best_val_bleu_ = round(max(0.0, -float(result.best_val_loss)), 4)
        return self

    def _network(self) -> Seq2SeqNet:
        return Seq2SeqNet(
            len(self.source_vocab_),
            len(self.target_vocab_),
            self.embedding_dim,
            self.hidden_size,
            self.num_layers,
            self.cell,
            self.attention,
            self.input_feeding,
            self.dropout,
            self.tie_embeddings,
            seed=self.seed,
        )

    def encode_sources(self, sentences: Sequence[str]) -> list[np.ndarray]:
        """Source ids (``<eos>`` appended) of each sentence."""
        tok = self.tokenizer_.tokenize
        return [self.source_vocab_.encode(tok(s)) for s in sentences]

    def _encode_pairs(self, pairs: Sequence[tuple[str, str]]):
        tok = self.tokenizer_.tokenize
        src = self.encode_sources([s for s, _ in pairs])
        tgt = [self.target_vocab_.encode(tok(t)) for _, t in pairs]
        return src, tgt

    def teacher_forcing_at(self, epoch: int) -> float:
        """The teacher-forcing ratio of epoch ``epoch`` (the schedule)."""
        return max(0.0, self.teacher_forcing - self.teacher_forcing_decay * epoch)

    # -- predict -------------------------------------------------------------------------------
    def _decode(self, X: Sequence[str], beam: int | None, attention: bool = False):
        self._check_fitted("translate")
        if isinstance(X, str):
            raise InputError("Seq2Seq: expected a list of sentences, got one string")
        k = self.beam if beam is None else int(beam)
        if k < 1:
            raise InputError(f"Seq2Seq: beam must be at least 1, got {beam}")
        return translate_ids(
            self.model_,
            self.encode_sources([str(s) for s in X]),
            beam=k,
            max_ratio=self.max_length_ratio,
            length_penalty=self.length_penalty,
            attention=attention,
        )

    def predict(self, X: Sequence[str], beam: int | None = None) -> list[str]:
        """The translation of each sentence, detokenised; ``beam`` overrides the estimator's
        (1: greedy)."""
        ids, _ = self._decode(X, beam)
        return [self.tokenizer_.detokenize(self.target_vocab_.decode(i)) for i in ids]

    def attention_of(
        self, sentence: str, beam: int | None = None
    ) -> tuple[list[str], list[str], np.ndarray | None]:
        """Source tokens (``<eos>`` included), translated tokens (``<eos>`` included) and the
        attention weights ``(target, source)`` of one sentence (None without attention)."""
        ids, weights = self._decode([sentence], beam, attention=True)
        src = [*self.tokenizer_.tokenize(sentence), "<eos>"]
        return src, [*self.target_vocab_.decode(ids[0]), "<eos>"], weights[0]

    def evaluate(
        self, X: Sequence[str], y: Sequence[str], beam: int | None = None
    ) -> dict[str, Any]:
        """BLEU and chrF of the translations of ``X`` against ``y`` (normalised like the
        model's output), with sacreBLEU's signatures."""
        hyp = self.predict(X, beam)
        refs = [self.tokenizer_.normalize(str(t)) for t in y]
        if len(refs) != len(hyp):
            raise InputError(
                f"Seq2Seq.score: expected as many references as sentences, got {len(refs)} "
                f"and {len(hyp)}"
            )
        return sacrebleu_scores(hyp, refs)

    def score(self, X: Sequence[str], y: Sequence[str], beam: int | None = None) -> float:
        """Corpus BLEU (sacreBLEU) of the translations of ``X`` against ``y``."""
        return float(self.evaluate(X, y, beam)["bleu"])

    # -- checkpoints ---------------------------------------------------------------------------
    def _learned(self) -> dict[str, Any]:
        return {
            "tokenizer": self.tokenizer_.to_metadata(),
            "vocab": {
                "source": self.source_vocab_.to_metadata(),
                "target": self.target_vocab_.to_metadata(),
            },
            "best_val_bleu": getattr(self, "best_val_bleu_", None),
        }

    def _restore_vocabs(self, learned: dict[str, Any]) -> None:
        self.source_vocab_ = Vocab.from_metadata(learned["vocab"]["source"])
        self.target_vocab_ = Vocab.from_metadata(learned["vocab"]["target"])

    def _restore(self, learned: dict[str, Any], model: Module) -> None:
        self.tokenizer_ = Tokenizer.from_metadata(learned["tokenizer"])
        self._restore_vocabs(learned)
        if not isinstance(model, Seq2SeqNet):
            raise TypeError(f"expected a Seq2SeqNet network, got {type(model).__name__}")
        if learned.get("best_val_bleu") is not None:
            self.best_val_bleu_ = float(learned["best_val_bleu"])
        model.eval()
        self.model_ = model


def _pairs(X: Any, y: Any, where: str) -> list[tuple[str, str]]:
    if isinstance(X, str) or isinstance(y, str):
        raise InputError(f"{where}: expected lists of sentences, got a string")
    if y is None or len(X) != len(y):
        raise InputError(f"{where}: expected as many targets as sources")
    if len(X) == 0:
        raise InputError(f"{where}: expected at least one pair, got none")
    pairs = [(str(s), str(t)) for s, t in zip(X, y, strict=True)]
    for i, (s, t) in enumerate(pairs):
        if not s.strip() or not t.strip():
            raise InputError(
                f"{where}: pair {i} has an empty {'source' if not s.strip() else 'target'}"
            )
    return pairs
