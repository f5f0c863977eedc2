"""`Transcriber`: speech to characters (or words) with the CTC loss (Graves et al., 2006).

    feature frames (T, F), normalised (running statistics), k frames stacked
        -> GRU/LSTM/RNN (stacked; unidirectional to stream, or bidirectional)
        -> Linear -> log_softmax over the blank and the characters -> CTC loss

Frames are normalised causally (`RunningStats`: each frame by the mean and variance of its
utterance so far, the training set's statistics as a prior; ``norm="global"``: by the training
set's alone) rather than by the whole utterance's (``norm="utterance"``, offline only), so a
live stream
(`rnnkit.estimators.transcriber_stream`) sees the very numbers the whole file gives.
Stacking ``stack`` frames into one step (a 20 ms step for ``stack=2``) halves the sequence the
recurrent layer runs over; the end is padded with zero (mean) frames to a whole step.
Decoding is greedy (best path) or prefix beam search (`rnnkit.ctc_decode`). Training runs
through the one `Trainer`; validation reports the loss and the character error rate.

``units="word"``: one CTC class per word of the training transcripts instead of per
character, for a closed vocabulary such as the ten digits: the decoder can then only emit
whole words it knows. Augmentation in training only (`rnnkit.audio.augment`): SpecAugment
masks on each batch of stacked steps, and ``fit(..., X_epoch=f)`` to train epoch ``e`` on
``f(e)`` (VTLP-warped features of the same recordings).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..audio.augment import check_masks, masker, picked
from ..audio.tta import warp_grid, warped_views
from ..ctc import ctc_loss
from ..ctc_combine import COMBINE, VOTES, combine_log_probs, vote_members, word_confidences
from ..ctc_decode import ctc_beam_decode, ctc_greedy_decode, ctc_lexicon_beam_decode
from ..data.batches import bucket_batches, pad
from ..errors import InputError
from ..io.checkpoint import save
from ..layers import Linear, Sequential
from ..layers.module import Module
from ..losses import log_softmax
from ..metrics_text import edit_distance, error_rate
from ..models.ensemble import Ensemble
from ..training import log_to_stderr
from ..training.distributed import shard
from ..training.report import plot_losses
from .base import Estimator
from .classifier import RECURRENT
from .fitting import join_members, run_fit
from .inputs import checked_epochs

BLANK = "_"  # shown for the blank; index 0
DEFAULT_EPOCHS = 20
PREDICT_BATCH = 64
SELECT = ("loss", "wer", "lexicon")  # what the kept epoch is chosen by (``select``)


class Transcriber(Estimator):
    """Transcribe speech: ``Transcriber().fit(X, texts).predict(X)``.

    ``X``: a list of ``(T_i, F)`` float arrays (speech features, `rnnkit.audio.FrontEnd`);
    ``texts``: their transcripts. ``units``: "char" or "word" (module docstring). Masks
    (``time_masks`` of up to ``time_mask_width`` steps, ``feature_masks`` of up to
    ``feature_mask_width`` features of each of ``feature_blocks`` blocks of a stacked step;
    0: none) in training only. Learned: ``alphabet_`` (the characters, or with
    ``units="word"`` the tuple of words; class ``i + 1`` is ``alphabet_[i]``, class 0 the
    blank), ``words_`` (the words of the transcripts, for
    ``predict(..., lexicon=True)``), ``mean_``/``std_`` (the feature statistics),
    ``model_``, ``history_``, ``n_steps_``, ``stopped_``, ``best_val_loss_`` and
    ``best_val_wer_`` (the validation loss and greedy WER of the kept epoch; the WER of
    every evaluation in ``history_["val_wer"]``).

    ``select``: which epoch's weights are kept (and what ``patience`` waits for): the lowest
    validation loss ("loss"), the lowest validation WER of the greedy transcripts ("wer"), or
    of the greedy transcripts with each word snapped to the nearest training word
    ("lexicon"); equal WERs go by the loss. The loss is noisy from epoch to epoch on a new
    voice, the WER is what is wanted.

    ``warps`` (odd; 1: off): test-time VTLP. The task featurises each recording under
    ``warps`` VTLP factors evenly spaced in ``[1 - warp_spread, 1 + warp_spread]``
    (`rnnkit.audio.tta`), and each utterance of ``X`` in `predict`, `score` and `log_probs`
    may then be an array ``(warps, T, F)`` of those views: the per-step CTC posteriors are
    averaged over them before decoding. `LiveTranscriber` does the same frame by frame.

    ``members``: an ensemble of that many networks, trained one after another on the same
    split (``seed`` splits off the validation utterances), member ``k`` with ``seed + k``: it
    is the network that ``Transcriber(seed=seed + k)`` fits alone on that split (with
    ``fit(..., X_epoch_of=f)``, each member trains on ``f(seed + k)``'s epochs). ``model_`` is
    then an `rnnkit.models.ensemble.Ensemble` of them. ``combine``: how their outputs make one
    transcript (`rnnkit.ctc_combine`): the per-step posteriors averaged as probabilities
    ("prob") or log-probabilities ("logprob") before decoding, or the members' transcripts
    voted word by word ("vote"; offline only), each vote weighted by the word's confidence
    from that member's posteriors ("weighted"; offline only; `word_confidences`).
    ``member(k)`` is member ``k`` alone.
    """

    # parameters added after checkpoints were first written (`Estimator._added_params`)
    _added_params: ClassVar[dict[str, Any]] = {
        "select": "loss",
        "warps": 1,
        "members": 1,
        "combine": "prob",
    }
    model_: Sequential | Ensemble
    best_val_wer_: float

    def __init__(
        self,
        cell: str = "gru",
        hidden_size: int = 160,
        num_layers: int = 2,
        bidirectional: bool = False,
        stack: int = 2,
        norm: str = "running",
        prior_frames: int = 100,
        dropout: float = 0.1,
        batch_size: int = 16,
        lr: float = 3e-3,
        clip: float = 5.0,
        units: str = "char",
        time_masks: int = 0,
        time_mask_width: int = 0,
        feature_masks: int = 0,
        feature_mask_width: int = 0,
        feature_blocks: int = 1,
        epochs: float | None = None,
        steps: int | None = None,
        minutes: float | None = None,
        patience: int | None = 5,
        validation_fraction: float = 0.1,
        select: str = "loss",
        warps: int = 1,
        warp_spread: float = 0.1,
        members: int = 1,
        combine: str = "vote",
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.stack = stack
        self.norm = norm
        self.prior_frames = prior_frames
        self.dropout = dropout
        self.batch_size = batch_size
        self.lr = lr
        self.clip = clip
        self.units = units
        self.time_masks = time_masks
        self.time_mask_width = time_mask_width
        self.feature_masks = feature_masks
        self.feature_mask_width = feature_mask_width
        self.feature_blocks = feature_blocks
        self.epochs = epochs
        self.steps = steps
        self.minutes = minutes
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.select = select
        self.warps = warps
        self.warp_spread = warp_spread
        self.members = members
        self.combine = combine
        self.seed = seed
        self.verbose = verbose

    # -- fit -----------------------------------------------------------------------------------
    def fit(
        self,
        X: Sequence[np.ndarray],
        y: Sequence[str],
        X_valid: Sequence[np.ndarray] | None = None,
        y_valid: Sequence[str] | None = None,
        out: str | Path | None = None,
        metadata: dict[str, Any] | None = None,
        X_epoch: Callable[[int], Sequence[np.ndarray]] | None = None,
        X_epoch_of: Callable[[int], Callable[[int], Sequence[np.ndarray]] | None] | None = None,
    ) -> Transcriber:
        """Learn from utterances ``X`` and transcripts ``y``; returns self. ``X_epoch``:
        epoch ``e`` trains on ``X_epoch(e)`` (the same utterances, in the same order; their
        lengths may differ from ``X``'s, as speed perturbation makes them: the batches are
        cut by ``X``'s) in place of ``X``; the feature statistics and validation use ``X``.
        ``X_epoch_of`` (instead of ``X_epoch``): the network of seed ``s`` trains on
        ``X_epoch_of(s)``'s epochs (each member of an ensemble its own augmentation)."""
        if X_epoch_of is not None:
            if X_epoch is not None:
                raise InputError("Transcriber.fit: give X_epoch or X_epoch_of, not both")
            if self.members == 1:
                X_epoch = X_epoch_of(self.seed)
        if self.units not in ("char", "word"):
            raise InputError(f"Transcriber: units must be 'char' or 'word', got {self.units!r}")
        check_masks(
            self.time_masks,
            self.time_mask_width,
            self.feature_masks,
            self.feature_mask_width,
            self.feature_blocks,
            "Transcriber",
        )
        if self.cell not in RECURRENT:
            raise InputError(
                f"Transcriber: cell must be one of {list(RECURRENT)}, got {self.cell!r}"
            )
        if self.norm not in ("running", "global", "utterance"):
            raise InputError(
                f"Transcriber: norm must be 'running', 'global' or 'utterance', got {self.norm!r}"
            )
        if self.stack < 1:
            raise InputError(f"Transcriber: stack must be at least 1, got {self.stack}")
        warp_grid(self.warps, self.warp_spread, "Transcriber")  # a one-line error if bad
        if self.select not in SELECT:
            raise InputError(
                f"Transcriber: select must be one of {list(SELECT)}, got {self.select!r}"
            )
        self._check_members()
        X, y = _check(X, y, "Transcriber.fit")
        names = [f"Transcriber.fit: X[{i}]" for i in range(len(X))]
        check_lengths(X, y, self.stack, self.units, names)
        if X_valid is None:
            rng = np.random.default_rng(self.seed)
            order = rng.permutation(len(X))
            n = max(1, int(round(self.validation_fraction * len(X))))
            held, kept = order[:n], order[n:] if len(X) > n else order
            X_valid, y_valid = [X[i] for i in held], [y[i] for i in held]
            X, y = [X[i] for i in kept], [y[i] for i in kept]
            if X_epoch is not None:
                X_epoch = picked(X_epoch, kept)
            if X_epoch_of is not None and self.members > 1:
                X_epoch_of = _picked_of(X_epoch_of, kept)
        else:
            X_valid, y_valid = _check(X_valid, y_valid, "Transcriber.fit (validation)")
            names = [f"Transcriber.fit: X_valid[{i}]" for i in range(len(X_valid))]
            check_lengths(X_valid, y_valid, self.stack, self.units, names)
        if self.members > 1:
            return self._fit_members(X, y, X_valid, y_valid, out, metadata, X_epoch, X_epoch_of)
        self.words_ = sorted({w for text in y for w in text.split()})
        self.alphabet_ = (
            "".join(sorted(set("".join(y)))) if self.units == "char" else tuple(self.words_)
        )
        if not self.alphabet_:
            raise InputError("Transcriber.fit: every transcript is empty; expected some text")
        frames = np.concatenate(X).astype(np.float64)
        self.mean_ = frames.mean(axis=0).astype(np.float32)
        self.std_ = np.maximum(frames.std(axis=0), 1e-5).astype(np.float32)
        self.n_inputs_ = int(frames.shape[1])
        self.model_ = self._network()
        train = (self._encode(X, "fit"), self._targets(y, "fit"))
        valid = (self._encode(X_valid, "fit (validation)"), self._targets(y_valid, "fit"))
        objective = CTCObjective(
            self.model_, train, valid, y_valid, self, self.batch_size, self.seed
        )
        objective.mask = masker(
            self.seed,
            self.time_masks,
            self.time_mask_width,
            self.feature_masks,
            self.feature_mask_width,
            self.feature_blocks,
        )
        if X_epoch is not None:
            objective.train_epoch = checked_epochs(
                X_epoch,
                train[0],
                self._encode,
                "Transcriber",
                "utterances",
                same_lengths=False,
            )
        if self.verbose:
            log_to_stderr(
                f"data: {len(X):,} training, {len(X_valid):,} validation utterances, "
                f"{self.n_inputs_} features x {self.stack} stacked, alphabet {self.alphabet_!r}"
            )
        result = run_fit(
            self,
            objective,
            unit="utterance",
            default_epochs=DEFAULT_EPOCHS,
            out=out,
            metadata=metadata,
            warmup=100,
        )
        evaluations = zip(result.history["val"], objective.scores, strict=False)  # [] off rank 0
        self.history_["val_wer"] = [[step, wer] for (step, _), (_, wer, _) in evaluations]
        best = objective.kept(result.best_val_loss)  # None on a rank that did not evaluate
        loss = result.best_val_loss if self.select == "loss" else math.nan
        self.best_val_loss_, self.best_val_wer_ = best if best else (loss, math.nan)
        return self

    def _check_members(self) -> None:
        m = self.members
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise InputError(f"Transcriber: members must be an integer >= 1, got {m!r}")
        if self.combine not in COMBINE:
            raise InputError(
                f"Transcriber: combine must be one of {list(COMBINE)}, got {self.combine!r}"
            )

    def _fit_members(
        self,
        X: list[np.ndarray],
        y: list[str],
        X_valid: list[np.ndarray],
        y_valid: list[str],
        out: str | Path | None,
        metadata: dict[str, Any] | None,
        X_epoch: Callable[[int], Sequence[np.ndarray]] | None,
        X_epoch_of: Callable[[int], Callable[[int], Sequence[np.ndarray]] | None] | None,
    ) -> Transcriber:
        """Fit ``members`` networks alone on the same split, seeds ``seed + k``; keep them as
        one `Ensemble` (saved at ``out`` with ``metadata``, the loss curve of the first)."""
        fitted: list[Transcriber] = []
        for k in range(self.members):
            seed = self.seed + k
            if self.verbose:
                log_to_stderr(f"ensemble member {k + 1}/{self.members}: seed {seed}")
            member = type(self)(**{**self.get_params(), "members": 1, "seed": seed})
            epochs = X_epoch_of(seed) if X_epoch_of is not None else X_epoch
            fitted.append(member.fit(X, y, X_valid, y_valid, X_epoch=epochs))
        first = fitted[0]
        self.words_, self.alphabet_ = first.words_, first.alphabet_
        self.mean_, self.std_, self.n_inputs_ = first.mean_, first.std_, first.n_inputs_
        join_members(self, fitted)
        self.members_val_wer_ = [m.best_val_wer_ for m in fitted]
        self.best_val_loss_ = self._ctc_loss(X_valid, y_valid)
        self.best_val_wer_ = self.score(X_valid, y_valid)["wer"]
        if out is not None:
            save(self, out, metadata)  # type: ignore[arg-type]  # an estimator: its network
            plot_losses(first.history_, "utterance", Path(out))
        return self

    def _ctc_loss(self, X: Sequence[np.ndarray], y: Sequence[str]) -> float:
        """The mean over utterances of the CTC loss per step of the combined posteriors
        ("vote", "weighted": the probabilities')."""
        total = 0.0
        for lp, target in zip(self.log_probs(X), self._targets(y, "fit"), strict=True):
            nll, _ = ctc_loss(
                lp[:, None, :],
                target[None, :] if len(target) else np.zeros((1, 1), dtype=np.int64),
                np.array([len(lp)]),
                np.array([len(target)]),
                reduction="none",
                zero_infinity=True,
            )
            total += float(np.asarray(nll)[0]) / len(lp)
        return total / len(X)

    @property
    def networks(self) -> list[Sequential]:
        """The network, or each member of an ensemble."""
        nets = self.model_.members if isinstance(self.model_, Ensemble) else [self.model_]
        return [n for n in nets if isinstance(n, Sequential)]

    def member(self, k: int) -> Transcriber:
        """Member ``k`` of an ensemble alone, as a fitted one-network `Transcriber` (the same
        normalisation, alphabet and decoding options); ``member(0)`` of one network: a copy."""
        self._check_fitted("member")
        nets = self.networks
        if not 0 <= k < len(nets):
            raise InputError(f"Transcriber.member: expected 0 <= k < {len(nets)}, got {k}")
        alone = type(self)(**{**self.get_params(), "members": 1, "seed": self.seed + k})
        alone._restore(self._learned(), nets[k])
        return alone

    def _network(self) -> Sequential:
        seeds = [int(s) for s in np.random.SeedSequence(self.seed).generate_state(2)]
        width = self.hidden_size * (2 if self.bidirectional else 1)
        recurrent = RECURRENT[self.cell](
            self.n_inputs_ * self.stack,
            self.hidden_size,
            self.num_layers,
            dropout=self.dropout if self.num_layers > 1 else 0.0,
            bidirectional=self.bidirectional,
            seed=seeds[0],
        )
        return Sequential(recurrent, Linear(width, len(self.alphabet_) + 1, seed=seeds[1]))

    # -- inputs --------------------------------------------------------------------------------
    def normalise(self, frames: np.ndarray, running: RunningStats | None = None) -> np.ndarray:
        """Frames normalised (module docstring); ``running``: the statistics carried from the
        frames before (a stream's), else a new utterance starts."""
        x = np.asarray(frames, dtype=np.float64)
        if self.norm == "global":
            return ((x - self.mean_) / self.std_).astype(np.float32)
        if self.norm == "utterance":  # the whole utterance's statistics: cannot stream
            return ((x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-5)).astype(np.float32)
        stats = running if running is not None else self.running_stats()
        return stats.normalise(x)

    def running_stats(self) -> RunningStats:
        return RunningStats(self.mean_, self.std_, self.prior_frames)

    def stacked(self, frames: np.ndarray) -> np.ndarray:
        """``(ceil(T / stack), F * stack)``: normalised frames, ``stack`` per step, zero-padded."""
        x = self.normalise(frames)
        k = self.stack
        T = -(-len(x) // k)
        padded = np.zeros((T * k, x.shape[1]), dtype=np.float32)
        padded[: len(x)] = x
        return padded.reshape(T, k * x.shape[1])

    def _encode(self, X: Sequence[np.ndarray], what: str) -> list[np.ndarray]:
        out = []
        for i, x in enumerate(X):
            a = np.asarray(x, dtype=np.float32)
            if a.ndim != 2 or a.shape[1] != self.n_inputs_ or len(a) == 0:
                raise InputError(
                    f"Transcriber.{what}: X[{i}] has shape {a.shape}, expected (T, "
                    f"{self.n_inputs_}) with T >= 1"
                )
            out.append(self.stacked(a))
        return out

    def _targets(self, texts: Sequence[str], what: str) -> list[np.ndarray]:
        index = {c: i + 1 for i, c in enumerate(self.alphabet_)}
        out = []
        for n, text in enumerate(texts):
            pieces = list(text) if self.units == "char" else text.split()
            unknown = sorted(set(pieces) - set(index))
            if unknown:
                what_units = "characters" if self.units == "char" else "words"
                raise InputError(
                    f"Transcriber.{what}: transcript {n} has {what_units} {unknown[:5]} not in "
                    f"the training transcripts' {list(self.alphabet_)[:20]!r}"
                )
            out.append(np.array([index[c] for c in pieces], dtype=np.int64))
        return out

    @property
    def separator(self) -> str:
        """What goes between decoded symbols: nothing for characters, a space for words."""
        return " " if getattr(self, "units", "char") == "word" else ""

    def text_of(self, labels: Sequence[int]) -> str:
        return self.separator.join(self.alphabet_[c - 1] for c in labels)

    # -- predict -------------------------------------------------------------------------------
    def log_probs(self, X: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``(T_i', n_classes)`` log-probabilities per step of each utterance; an utterance
        given as views ``(K, T, F)`` (``warps``): the log of their probabilities' mean."""
        per_member = self.member_log_probs(X)
        if len(per_member) == 1:
            return per_member[0]
        how = "prob" if self.combine in VOTES else self.combine
        return [combine_log_probs(parts, how) for parts in zip(*per_member, strict=True)]

    def member_log_probs(self, X: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        """`log_probs` of each network alone: ``[member][utterance]`` ``(T_i', n_classes)``."""
        self._check_fitted("predict")
        views = [np.asarray(x) if np.ndim(x) == 3 else np.asarray(x)[None] for x in X]
        flat = self._encode([v for x in views for v in x], "predict")
        result = []
        for net in self.networks:
            lp = log_probs_of(net, flat)
            out, start = [], 0
            for x in views:
                parts, start = lp[start : start + len(x)], start + len(x)
                if len(parts) == 1:
                    out.append(parts[0])
                else:  # the mean of the views' probabilities, per step
                    out.append(np.log(np.mean(np.exp(np.stack(parts)), axis=0)))
            result.append(out)
        return result

    def views(self, samples: np.ndarray, front: Any) -> np.ndarray:
        """``(warps, T, F)`` features of one recording under the test-time warps (``front``: the
        model's `rnnkit.audio.FrontEnd`); ``(T, F)`` when ``warps`` is 1."""
        factors = warp_grid(getattr(self, "warps", 1), self.warp_spread, "Transcriber")
        if len(factors) == 1:
            return front.features(samples)
        return np.stack(warped_views(samples, front, factors))

    def predict(self, X: Sequence[np.ndarray], beam: int = 1, lexicon: bool = False) -> list[str]:
        """The transcript of each utterance: greedy (``beam=1``) or prefix beam search;
        ``lexicon``: keep to the words of the training transcripts, a closed vocabulary such
        as digits: with ``beam > 1`` the beam search only spells those words
        (`rnnkit.ctc_decode.ctc_lexicon_beam_decode`); greedy output has each word replaced
        by the nearest of them in edit distance."""
        if beam < 1:
            raise InputError(f"Transcriber.predict: beam must be at least 1, got {beam}")
        model = getattr(self, "model_", None)  # (set by fit or load; checked where it is used)
        how = getattr(self, "combine", "prob")
        if how in VOTES and isinstance(model, Ensemble) and len(model) > 1:
            per_member = self.member_log_probs(X)
            hyps = [self.decode(lps, beam, lexicon) for lps in per_member]
            if how == "vote":
                return vote_members(hyps)
            pairs = zip(per_member, hyps, strict=True)
            return vote_members(hyps, [self.word_confidences(lps, t) for lps, t in pairs])
        return self.decode(self.log_probs(X), beam, lexicon)

    def word_confidences(
        self, log_probs: Sequence[np.ndarray], texts: Sequence[str]
    ) -> list[list[float]]:
        """Per utterance, a confidence in [0, 1] for each word of its transcript ``texts``
        given its ``(T_i', n_classes)`` log-probabilities (`rnnkit.ctc_combine.
        word_confidences`: from a forced alignment of the transcript to them)."""
        index = {c: i + 1 for i, c in enumerate(self.alphabet_)}
        char = self.units == "char"
        out = []
        for lp, text in zip(log_probs, texts, strict=True):
            words = [[index[c] for c in w] if char else [index[w]] for w in text.split()]
            out.append(word_confidences(lp, words, index.get(" ") if char else None))
        return out

    def decode(
        self, log_probs: Sequence[np.ndarray], beam: int = 1, lexicon: bool = False
    ) -> list[str]:
        """Transcripts of ``(T_i', n_classes)`` log-probabilities (as `predict` decodes)."""
        out = []
        for lp in log_probs:
            lp3 = lp[:, None, :]
            if lexicon and beam > 1:
                words, separator = self.lexicon_labels()
                labels = ctc_lexicon_beam_decode(lp3, words, separator, beam=beam)[0]
            elif beam > 1:
                labels = ctc_beam_decode(lp3, beam=beam)[0]
            else:
                labels = ctc_greedy_decode(lp3)[0]
            text = self.text_of(labels)
            out.append(" ".join(map(self.nearest_word, text.split())) if lexicon else text)
        return out

    def lexicon_labels(self) -> tuple[list[list[int]], int | None]:
        """The training transcripts' words as class labels, and the space's class (None for
        word units): what `rnnkit.ctc_decode.ctc_lexicon_beam_decode` takes."""
        index = {c: i + 1 for i, c in enumerate(self.alphabet_)}
        if self.units == "word":
            return [[index[w]] for w in self.words_ if w in index], None
        words = [[index[c] for c in w] for w in self.words_ if all(c in index for c in w)]
        return words, index.get(" ")

    def nearest_word(self, word: str) -> str:
        """The training vocabulary's word nearest to ``word`` (the first of equals)."""
        if not self.words_ or word in self.words_:
            return word
        return min(self.words_, key=lambda w: edit_distance(w, word))

    def score(
        self, X: Sequence[np.ndarray], y: Sequence[str], beam: int = 1, lexicon: bool = False
    ) -> dict[str, float]:
        """Character and word error rates (edit distance over the reference's length)."""
        hyp = self.predict(X, beam, lexicon)
        return {
            "cer": error_rate(list(y), hyp, words=False),
            "wer": error_rate(list(y), hyp, words=True),
        }

    # -- checkpoints ---------------------------------------------------------------------------
    def _learned(self) -> dict[str, Any]:
        return {
            "alphabet": self.alphabet_ if self.units == "char" else list(self.alphabet_),
            "words": self.words_,
            "mean": self.mean_.tolist(),
            "std": self.std_.tolist(),
            "n_inputs": self.n_inputs_,
        }

    def _restore(self, learned: dict[str, Any], model: Module) -> None:
        alphabet = learned["alphabet"]
        self.alphabet_ = str(alphabet) if self.units == "char" else tuple(map(str, alphabet))
        self.words_ = [str(w) for w in learned.get("words", [])]
        self.mean_ = np.asarray(learned["mean"], dtype=np.float32)
        self.std_ = np.asarray(learned["std"], dtype=np.float32)
        self.n_inputs_ = int(learned["n_inputs"])
        nets = model.members if isinstance(model, Ensemble) else [model]
        for net in nets:
            if not isinstance(net, Sequential):
                raise TypeError(f"expected a Sequential network, got {type(net).__name__}")
        if not isinstance(model, (Sequential, Ensemble)):
            raise TypeError(f"expected a Sequential network, got {type(model).__name__}")
        model.eval()
        self.model_ = model


def check_lengths(
    X: Sequence[np.ndarray], y: Sequence[str], stack: int, units: str, where: Sequence[str]
) -> None:
    """Every utterance has at least as many steps (``stack`` frames each) as its transcript
    has symbols, as CTC needs; else one line naming ``where[i]`` (a file and line, or
    ``X[i]``): a recording too short for its transcript."""
    for i, (x, text) in enumerate(zip(X, y, strict=True)):
        steps = -(-len(x) // stack)
        symbols = len(str(text)) if units == "char" else len(str(text).split())
        if symbols > steps:
            unit = "characters" if units == "char" else "words"
            raise InputError(
                f"{where[i]}: {len(x)} feature frame(s), {steps} step(s) of {stack}, for a "
                f"transcript of {symbols} {unit} ({str(text)[:30]!r}); CTC needs a step per "
                "symbol (a recording cut short, or the wrong transcript?)"
            )


def _check(X: Any, y: Any, where: str) -> tuple[list[np.ndarray], list[str]]:
    if y is None or len(X) != len(y):
        raise InputError(f"{where}: expected as many transcripts as utterances")
    if len(X) == 0:
        raise InputError(f"{where}: expected at least one utterance, got none")
    return list(X), [str(t) for t in y]


def _picked_of(
    X_epoch_of: Callable[[int], Callable[[int], Sequence[np.ndarray]] | None], kept: np.ndarray
) -> Callable[[int], Callable[[int], Sequence[np.ndarray]] | None]:
    """``X_epoch_of`` with each seed's epochs restricted to the rows ``kept``."""

    def of(seed: int) -> Callable[[int], Sequence[np.ndarray]] | None:
        epochs = X_epoch_of(seed)
        return None if epochs is None else picked(epochs, kept)

    return of


def log_probs_of(model: Sequential, seqs: list[np.ndarray]) -> list[np.ndarray]:
    model.eval()
    out: list[np.ndarray] = [np.zeros(0)] * len(seqs)
    for index in bucket_batches([len(s) for s in seqs], PREDICT_BATCH):
        x, lengths = pad(seqs, index)
        lp = log_softmax(np.asarray(model(x, lengths), dtype=np.float64))
        for b, i in enumerate(index):
            out[int(i)] = lp[: lengths[b], b]
    return out


class RunningStats:
    """Causal mean and variance normalisation: frame ``t`` is normalised by the mean and
    variance of frames ``0..t`` of its utterance, with the training set's statistics counted as
    ``prior`` frames already seen::

        m_t = (prior mu + sum_{s<=t} x_s) / (prior + t + 1)
        v_t = (prior (sigma^2 + mu^2) + sum_{s<=t} x_s^2) / (prior + t + 1) - m_t^2

    It adapts to a speaker's voice and microphone as cepstral mean and variance normalisation
    does, but needs no future frame: a stream (which carries this object) and the whole file
    (cumulative sums, the same additions in the same order) give the same numbers."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, prior: int) -> None:
        mu, sd = np.asarray(mean, np.float64), np.asarray(std, np.float64)
        self.prior = float(prior)
        self.s1 = self.prior * mu
        self.s2 = self.prior * (sd**2 + mu**2)
        self.n = self.prior

    def normalise(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(x.shape, dtype=np.float32)
        # cumulative sums that start from the carried ones: each step adds one frame, in
        # order, whatever the number of frames per call
        s1 = np.cumsum(np.vstack([self.s1[None], x]), axis=0)[1:]
        s2 = np.cumsum(np.vstack([self.s2[None], x * x]), axis=0)[1:]
        n = self.n + np.arange(1, len(x) + 1, dtype=np.float64)[:, None]
        mean = s1 / n
        var = np.maximum(s2 / n - mean * mean, 1e-10)
        self.s1, self.s2, self.n = s1[-1], s2[-1], float(n[-1, 0])
        return ((x - mean) / np.sqrt(var)).astype(np.float32)


class CTCObjective:
    """One training step: a bucketed batch forward and backward through the CTC loss per step (its
    gradient with respect to the logits, `rnnkit.ctc`). Epoch ``e``'s batches come from a
    generator seeded by (seed, e). After `evaluate`, `selection` is what the kept epoch and
    patience go by (the owner's ``select``: the loss, or the validation WER with a millionth of
    the loss to break ties); ``scores`` holds (loss, greedy WER, selection) per evaluation."""

    def __init__(
        self,
        model: Sequential,
        train: tuple[list[np.ndarray], list[np.ndarray]],
        valid: tuple[list[np.ndarray], list[np.ndarray]],
        valid_texts: list[str],
        owner: Transcriber,
        batch_size: int,
        seed: int,
    ) -> None:
        self.model, self.train, self.valid = model, train, valid
        self.valid_texts, self.owner = valid_texts, owner
        self.batch_size, self.seed = batch_size, seed
        self.lengths = np.array([len(s) for s in train[0]])
        self.steps_per_epoch = -(-len(self.lengths) // batch_size)
        self._epoch: tuple[int, list[np.ndarray]] = (-1, [])
        self.eval_note = ""
        self.shard: tuple[int, int] | None = None  # data-parallel: (rank, world), its rows
        # augmentation (`Transcriber`): masks on each training batch, f(x, lengths, step);
        # the training inputs of each epoch, f(epoch), in place of train[0]
        self.mask: Callable[[np.ndarray, np.ndarray, int], np.ndarray] | None = None
        self.train_epoch: Callable[[int], list[np.ndarray]] | None = None
        self._inputs: tuple[int, list[np.ndarray]] = (-1, train[0])
        self.scores: list[tuple[float, float, float]] = []

    def _batches(self, epoch: int) -> list[np.ndarray]:
        if self._epoch[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._epoch = (epoch, bucket_batches(self.lengths, self.batch_size, rng))
        return self._epoch[1]

    def _train_inputs(self, epoch: int) -> list[np.ndarray]:
        if self.train_epoch is None:
            return self.train[0]
        if self._inputs[0] != epoch:
            self._inputs = (epoch, self.train_epoch(epoch))
        return self._inputs[1]

    def _loss(
        self, logits: np.ndarray, lengths: np.ndarray, targets: list[np.ndarray]
    ) -> tuple[float, np.ndarray]:
        """Mean over the batch of each utterance's CTC loss per step (steady from batch to
        batch whatever the utterances' lengths, unlike the loss per character), and its
        gradient with respect to the logits."""
        lp = log_softmax(np.asarray(logits, dtype=np.float64))
        feasible = np.array([len(t) for t in targets]) <= np.asarray(lengths)
        # a copy made faster by speed perturbation may be too short for its transcript: it
        # is left out of this batch (the recordings as read are checked by `check_lengths`)
        targets = [t if ok else t[:0] for t, ok in zip(targets, feasible, strict=True)]
        tl = np.array([len(t) for t in targets])
        padded = np.zeros((len(targets), max(1, int(tl.max()))), dtype=np.int64)
        for b, t in enumerate(targets):
            padded[b, : len(t)] = t
        nll, grad = ctc_loss(lp, padded, lengths, tl, reduction="none", zero_infinity=True)
        weight = feasible / (len(targets) * np.asarray(lengths, dtype=np.float64))  # (B,)
        return float(np.sum(np.asarray(nll) * weight)), grad * weight[None, :, None]

    def train_step(self, step: int) -> tuple[float, int]:
        epoch, k = divmod(step, self.steps_per_epoch)
        index = self._batches(epoch)[k]
        index = index[shard(len(index), self.shard)]
        if len(index) == 0:  # a rank with no rows of a short last batch
            return 0.0, 0
        x, lengths = pad(self._train_inputs(epoch), index)
        if self.mask is not None:
            x = self.mask(x, lengths, step)
        self.model.train()
        logits, backward = self.model.forward_train(x, lengths)
        loss, grad = self._loss(logits, lengths, [self.train[1][int(i)] for i in index])
        backward(grad.astype(logits.dtype))
        return float(loss), len(index)

    def evaluate(self) -> float:
        seqs, targets = self.valid
        total, hyp = 0.0, []
        self.model.eval()
        for index in bucket_batches([len(s) for s in seqs], PREDICT_BATCH):
            x, lengths = pad(seqs, index)
            logits = self.model(x, lengths)
            loss, _ = self._loss(logits, lengths, [targets[int(i)] for i in index])
            total += float(loss) * len(index)
        self.model.train()
        for lp in log_probs_of(self.model, seqs):
            hyp.append(self.owner.text_of(ctc_greedy_decode(lp[:, None, :])[0]))
        self.model.train()
        loss = total / len(seqs)
        cer = error_rate(self.valid_texts, hyp, words=False)
        wer = error_rate(self.valid_texts, hyp, words=True)
        self.eval_note = f"CER {cer:.3f} WER {wer:.3f}"
        select = getattr(self.owner, "select", "loss")
        score = loss
        if select == "wer":
            score = wer + 1e-6 * loss
        elif select == "lexicon":
            snapped = [" ".join(map(self.owner.nearest_word, h.split())) for h in hyp]
            lexicon_wer = error_rate(self.valid_texts, snapped, words=True)
            self.eval_note += f" lexicon WER {lexicon_wer:.3f}"
            score = lexicon_wer + 1e-6 * loss
        self.scores.append((loss, wer, score))
        return loss

    def selection(self) -> float:
        """What the kept epoch is chosen by, lower is better (the class docstring)."""
        return self.scores[-1][2]

    def kept(self, best: float) -> tuple[float, float] | None:
        """(validation loss, greedy WER) of the evaluation whose selection was ``best``."""
        for loss, wer, score in self.scores:
            if score == best:
                return loss, wer
        return None

    def carry_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def load_carry(self, arrays: dict[str, np.ndarray]) -> None:
        pass
