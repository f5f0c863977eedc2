"""`SequenceClassifier`: one label for each sequence (text, token ids or feature frames).

The network is a `Sequential` of existing modules, so no backward is written here:

    Embedding -> LSTM/GRU/RNN (stacked, uni- or bidirectional) -> Pool or AttentionPool
              -> Dropout -> Linear -> softmax cross-entropy (class weights as the mask)

(no Embedding for ``(T_i, F)`` float features). ``members=N`` trains N such networks, one
after another, with seeds ``seed .. seed+N-1`` and keeps them in one `Ensemble` whose
probabilities are their average. Sequences of different lengths go in
batches of similar lengths (`rnnkit.data.batches`), padded and passed with ``lengths``.
Training runs through the one `Trainer`: a budget in epochs, steps or minutes, validation
every epoch, early stopping after ``patience`` epochs without a better validation loss, the
best weights kept, the divergence guard.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..audio.augment import check_masks, masker, picked
from ..audio.tta import check_pick, check_tta
from ..data.batches import pad
from ..data.labelled import stratified_split
from ..data.text import Vocabulary
from ..errors import InputError
from ..io.checkpoint import save
from ..layers import GRU, LSTM, RNN, AttentionPool, Dropout, Embedding, Linear, Pool, Sequential
from ..layers.module import Module
from ..models.ensemble import Ensemble
from ..training import last_path, log_to_stderr, read_last
from ..training.report import plot_losses
from .base import Estimator
from .classify_objective import (
    PREDICT_BATCH,
    ClassifyObjective,
    predict_proba,
    saved_vocabulary,
)
from .fitting import join_members, run_fit
from .inputs import KINDS, checked_epochs, feature_size, input_kind, labels_of
from .resume import fingerprint

RECURRENT = {"lstm": LSTM, "gru": GRU, "rnn": RNN}
POOLING = ("mean", "max", "last", "attention", "meanmax")
DEFAULT_EPOCHS = 10  # the budget when none is given


class SequenceClassifier(Estimator):
    """Classify sequences: ``SequenceClassifier().fit(X, y).predict(X)``.

    ``X`` is a list of strings (tokenised by the estimator's vocabulary, ``tokens`` "char" or
    "word"), of 1-D integer token-id arrays, or of ``(T_i, F)`` float arrays; ``y`` the labels
    (any values numpy can sort). Learned: ``classes_``, ``model_`` (the `Sequential`),
    ``vocab_`` (strings only), ``input_`` ("text", "ids" or "features"), ``history_``,
    ``n_steps_``, ``stopped_``, ``best_val_loss_`` and ``throughput_`` (training sequences per
    second of step time, the first `WARMUP_STEPS` steps left out).

    The budget is ``epochs``, ``steps`` or ``minutes`` (the first one reached ends training;
    none given: 10 epochs); ``fit(..., out=PATH, resume=True)`` continues a stopped fit.
    Without ``fit(..., X_valid, y_valid)``, a stratified
    ``validation_fraction`` of the training data is held out. ``class_weight``: None,
    "balanced", or a dict label -> weight. ``label_smoothing`` ``e``: train towards
    ``1 - e`` on the label and ``e`` spread evenly over all classes (as PyTorch's
    ``cross_entropy``). ``mixup`` ``a`` (0: none): each training batch mixed with itself in
    another order, features and loss, by a weight drawn from Beta(a, a) per step (Zhang et
    al. 2018; padded features, each pair at the longer length).

    Augmentation, in training only (`rnnkit.audio.augment`): ``time_masks`` runs of up to
    ``time_mask_width`` steps and ``feature_masks`` runs of up to ``feature_mask_width``
    features of each of ``feature_blocks`` blocks set to 0 in every training batch of feature
    frames (SpecAugment; 0: none); ``fit(..., X_epoch=f)`` trains epoch ``e`` on ``f(e)``
    instead of ``X`` (the same sequences; their lengths may differ from ``X``'s, which cut the
    batches), e.g. recordings featurised with a fresh vocal tract length warp and speed each
    epoch (`rnnkit.audio.augment.WarpedEpochs`).

    ``members``: an ensemble of that many networks, trained one after another on the same
    data (the same training/validation split, drawn with ``seed``, and the same ``X_epoch``)
    with seeds ``seed``, ``seed+1``, ... (their own batches, masks, dropout and initial
    weights); ``model_`` is then an `rnnkit.models.ensemble.Ensemble` and the probabilities are
    the members' average. Member ``k`` is the network that ``members=1, seed=seed+k`` trains
    on the same split. The histories and loss curve are the first member's; ``n_steps_`` and
    ``train_minutes_`` add up the members', ``best_val_loss_`` is the ensemble's.

    ``tta_vtlp``, ``tta_warps``: test-time VTLP for audio, kept with the model for the audio
    task (`rnnkit.audio.tta`): a recording is featurised under ``tta_warps`` warp factors
    evenly spaced in ``[1 - tta_vtlp, 1 + tta_vtlp]`` and the probabilities averaged. The
    estimator itself reads feature frames and ignores them (0 and 1: one plain view);
    ``tta_warps`` is odd, so the plain features are one of the views. ``tta_pick``: how the
    views' probabilities become one, ``"mean"`` or ``"confident"`` (per recording the view
    of the lowest entropy; `rnnkit.audio.tta.pick_views`).

    ``ema`` ``d`` (0: none): an exponential moving average of the weights, its decay ``d`` per
    step (`TrainConfig.ema`), is what is validated, kept as the best and returned: the
    weights averaged over about ``1 / (1 - d)`` steps (Polyak averaging; for unseen speakers or
    domains, averaged weights sit in flatter minima, Izmailov et al. 2018, Cha et al. 2021).
    """

    _estimator_type = "classifier"
    # added after checkpoints were first written: older files load as one plain network
    _added_params: ClassVar[dict[str, Any]] = {
        "members": 1,
        "tta_vtlp": 0.0,
        "tta_warps": 1,
        "mixup": 0.0,
        "tta_pick": "mean",
        "ema": 0.0,
    }
    model_: Sequential | Ensemble

    def __init__(
        self,
        tokens: str = "char",
        min_count: int = 1,
        max_vocab: int | None = None,
        embedding_dim: int = 128,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = True,
        pooling: str = "mean",
        attention_size: int = 64,
        dropout: float = 0.5,
        class_weight: Any = None,
        label_smoothing: float = 0.0,
        batch_size: int = 32,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        clip: float = 1.0,
        time_masks: int = 0,
        time_mask_width: int = 0,
        feature_masks: int = 0,
        feature_mask_width: int = 0,
        feature_blocks: int = 1,
        epochs: float | None = None,
        steps: int | None = None,
        minutes: float | None = None,
        patience: int | None = 3,
        validation_fraction: float = 0.1,
        seed: int = 0,
        members: int = 1,
        tta_vtlp: float = 0.0,
        tta_warps: int = 1,
        mixup: float = 0.0,
        tta_pick: str = "mean",
        ema: float = 0.0,
        verbose: bool = False,
    ) -> None:
        self.tokens = tokens
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.embedding_dim = embedding_dim
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.pooling = pooling
        self.attention_size = attention_size
        self.dropout = dropout
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.clip = clip
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
        self.seed = seed
        self.members = members
        self.tta_vtlp = tta_vtlp
        self.tta_warps = tta_warps
        self.mixup = mixup
        self.tta_pick = tta_pick
        self.ema = ema
        self.verbose = verbose

    # -- fit -----------------------------------------------------------------------------------
    def fit(
        self,
        X: Sequence[Any],
        y: Sequence[Any],
        X_valid: Sequence[Any] | None = None,
        y_valid: Sequence[Any] | None = None,
        out: str | Path | None = None,
        metadata: dict[str, Any] | None = None,
        resume: bool = False,
        force: bool = False,
        X_epoch: Callable[[int], Sequence[Any]] | None = None,
    ) -> SequenceClassifier:
        """Learn from ``X``, ``y``; returns self. ``out``: keep the best checkpoint there
        (with ``.last`` and ``.loss.png`` beside it), else in a temporary folder;
        ``metadata`` is added to the checkpoint's. ``resume``: continue the interrupted fit
        saved at ``out`` (`rnnkit.estimators.resume`: same model and data, or ``force``).
        ``X_epoch``: epoch ``e`` trains on ``X_epoch(e)`` (feature frames of ``X``'s
        sequences, lengths free: the batches are cut by ``X``'s) in place of ``X``; validation
        and the data's fingerprint use ``X``."""
        self._check_params()
        if resume and out is None:
            raise InputError("SequenceClassifier.fit: resume=True needs out, the saved run's path")
        saved = read_last(last_path(Path(out))) if resume and out is not None else None
        labels = labels_of(y, len(X), "SequenceClassifier.fit")
        self.classes_ = np.unique(labels)
        if len(self.classes_) < 2:
            raise InputError(
                f"SequenceClassifier.fit: y has one class only ({self.classes_[0]!r}); "
                "expected at least two"
            )
        targets = np.searchsorted(self.classes_, labels)
        if X_valid is None:
            train_i, valid_i = stratified_split(
                labels.tolist(), self.validation_fraction, self.seed
            )
            if len(valid_i) == 0:
                valid_i = train_i  # too few examples to hold any out: validate on training data
            X_train, X_valid = [X[i] for i in train_i], [X[i] for i in valid_i]
            y_train, y_valid_idx = targets[train_i], targets[valid_i]
            if X_epoch is not None:
                X_epoch = picked(X_epoch, train_i)
        else:
            X_train, y_train = list(X), targets
            v = labels_of(y_valid, len(X_valid), "SequenceClassifier.fit (validation)")
            unknown = sorted(set(v.tolist()) - set(self.classes_.tolist()))
            if unknown:
                raise InputError(
                    f"SequenceClassifier.fit: the validation labels {unknown[:5]} are not in y"
                )
            y_valid_idx = np.searchsorted(self.classes_, v)
        if self.members > 1:
            if resume:
                raise InputError(
                    "SequenceClassifier.fit: resume continues one network's fit; members="
                    f"{self.members} trains several from scratch (drop resume or members)"
                )
            valid = (X_valid, self.classes_[y_valid_idx].tolist())
            train = (X_train, self.classes_[y_train].tolist())
            return self._fit_members(train, valid, X_epoch, out, metadata)
        self.input_ = input_kind(X_train, "SequenceClassifier.fit")
        if self.input_ == "text":
            self.vocab_ = (
                Vocabulary.build(X_train, self.tokens, self.max_vocab, self.min_count)
                if saved is None
                else saved_vocabulary(saved.metadata)  # a resumed model keeps its vocabulary
            )
        self.n_inputs_ = (
            int(max(int(np.max(s)) for s in (np.asarray(x) for x in X_train)) + 1)
            if self.input_ == "ids"
            else (len(self.vocab_) if self.input_ == "text" else feature_size(X_train))
        )
        self.model_ = self._network()
        train = (self._encode(X_train, "fit"), y_train)
        valid = (self._encode(X_valid, "fit (validation)"), y_valid_idx)
        objective = ClassifyObjective(
            self.model_, train, valid, self.batch_size, self._weights(targets), self.seed
        )
        objective.label_smoothing = self.label_smoothing
        objective.mixup = self.mixup
        objective.mask = masker(
            self.seed,
            self.time_masks,
            self.time_mask_width,
            self.feature_masks,
            self.feature_mask_width,
            self.feature_blocks,
        )
        if self.input_ != "features" and (objective.mask is not None or X_epoch is not None):
            raise InputError(
                "SequenceClassifier.fit: masks and X_epoch augment feature frames; X holds "
                f"{KINDS[self.input_]}"
            )
        if X_epoch is not None:
            objective.train_epoch = checked_epochs(
                X_epoch,
                train[0],
                self._encode,
                "SequenceClassifier",
                "sequences",
                same_lengths=False,
            )
        data = {"train": fingerprint(*train), "valid": fingerprint(*valid)}
        describe = (
            f"data: {len(X_train):,} training, {len(X_valid):,} validation examples, "
            f"classes {self.classes_.tolist()[:10]}"
        )
        run_fit(
            self,
            objective,
            describe=describe,
            unit="example",
            default_epochs=DEFAULT_EPOCHS,
            out=out,
            metadata=metadata,
            saved=saved,
            data=data,
            force=force,
        )
        return self

    def _fit_members(
        self,
        train: tuple[Sequence[Any], list[Any]],
        valid: tuple[Sequence[Any], list[Any]],
        X_epoch: Callable[[int], Sequence[Any]] | None,
        out: str | Path | None,
        metadata: dict[str, Any] | None,
    ) -> SequenceClassifier:
        """Fit ``members`` networks alone on the same split, seeds ``seed + k``; keep them
        as one `Ensemble` (saved at ``out`` with ``metadata``, loss curve of the first)."""
        fitted: list[SequenceClassifier] = []
        for k in range(self.members):
            if self.verbose:
                log_to_stderr(f"ensemble member {k + 1}/{self.members}: seed {self.seed + k}")
            member = type(self)(**{**self.get_params(), "members": 1, "seed": self.seed + k})
            fitted.append(member.fit(train[0], train[1], valid[0], valid[1], X_epoch=X_epoch))
        first = fitted[0]
        self.input_, self.n_inputs_ = first.input_, first.n_inputs_
        if self.input_ == "text":
            self.vocab_ = first.vocab_
        join_members(self, fitted)
        proba = self.predict_proba(valid[0])
        truth = np.searchsorted(self.classes_, valid[1])
        self.best_val_loss_ = float(
            np.mean(-np.log(np.maximum(proba[np.arange(len(truth)), truth], 1e-12)))
        )
        if out is not None:
            save(self, out, metadata)  # type: ignore[arg-type]  # an estimator: its network
            plot_losses(first.history_, "example", Path(out))
        return self

    def _check_params(self) -> None:
        if self.cell not in RECURRENT:
            raise InputError(
                f"SequenceClassifier: cell must be one of {list(RECURRENT)}, got {self.cell!r}"
            )
        if self.pooling not in POOLING:
            raise InputError(
                f"SequenceClassifier: pooling must be one of {POOLING}, got {self.pooling!r}"
            )
        if self.tokens not in ("char", "word"):
            raise InputError(
                f"SequenceClassifier: tokens must be 'char' or 'word', got {self.tokens!r}"
            )
        check_masks(
            self.time_masks,
            self.time_mask_width,
            self.feature_masks,
            self.feature_mask_width,
            self.feature_blocks,
            "SequenceClassifier",
        )
        if not 0 <= self.label_smoothing < 1:
            raise InputError(
                "SequenceClassifier: label_smoothing must be in [0, 1), "
                f"got {self.label_smoothing!r}"
            )
        a = self.mixup
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 <= a <= 10:
            raise InputError(
                f"SequenceClassifier: mixup must be a number in [0, 10] (Beta(a, a) of the "
                f"mixing weight; 0: none), got {a!r}"
            )
        d = self.ema
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d < 1:
            raise InputError(
                "SequenceClassifier: ema must be a number in [0, 1) (the decay per step of the "
                f"moving average of the weights; 0: none), got {d!r}"
            )
        m = self.members
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise InputError(f"SequenceClassifier: members must be an integer >= 1, got {m!r}")
        check_tta(self.tta_vtlp, self.tta_warps, "SequenceClassifier")
        check_pick(self.tta_pick, "SequenceClassifier")
        if not 0 <= self.validation_fraction < 1:
            raise InputError(
                "SequenceClassifier: validation_fraction must be in [0, 1), "
                f"got {self.validation_fraction!r}"
            )

    def _network(self) -> Sequential:
        seeds = [int(s) for s in np.random.SeedSequence(self.seed).generate_state(5)]
        directions = 2 if self.bidirectional else 1
        width = self.hidden_size * directions
        modules: list[Module] = []
        size = self.n_inputs_
        if self.input_ != "features":
            modules.append(Embedding(self.n_inputs_, self.embedding_dim, seed=seeds[0]))
            size = self.embedding_dim
        modules.append(
            RECURRENT[self.cell](
                size,
                self.hidden_size,
                self.num_layers,
                dropout=self.dropout if self.num_layers > 1 else 0.0,
                bidirectional=self.bidirectional,
                seed=seeds[1],
            )
        )
        if self.pooling == "attention":
            modules.append(AttentionPool(width, self.attention_size, seed=seeds[2]))
        else:
            last = self.pooling == "last" and self.bidirectional
            modules.append(Pool(self.pooling, bidirectional=last))
        if self.dropout > 0:
            modules.append(Dropout(self.dropout, seed=seeds[3]))
        pooled = 2 * width if self.pooling == "meanmax" else width  # mean and max side by side
        modules.append(Linear(pooled, len(self.classes_), seed=seeds[4]))
        return Sequential(*modules)

    def _weights(self, targets: np.ndarray) -> np.ndarray | None:
        """Per-class loss weights from ``class_weight``."""
        cw = self.class_weight
        if cw is None:
            return None
        C = len(self.classes_)
        if cw == "balanced":
            counts = np.bincount(targets, minlength=C)
            return (len(targets) / (C * np.maximum(counts, 1))).astype(np.float32)
        if isinstance(cw, dict):
            w = np.ones(C, dtype=np.float32)
            names = {str(c): i for i, c in enumerate(self.classes_.tolist())}
            for label, weight in cw.items():
                if str(label) not in names:
                    raise InputError(
                        f"SequenceClassifier: class_weight names an unknown class {label!r}"
                    )
                w[names[str(label)]] = float(weight)
            return w
        raise InputError(
            f"SequenceClassifier: class_weight must be None, 'balanced' or a dict, got {cw!r}"
        )

    # -- inputs --------------------------------------------------------------------------------
    def _encode(self, X: Sequence[Any], what: str) -> list[np.ndarray]:
        kind = input_kind(X, f"SequenceClassifier.{what}")
        if kind != self.input_:
            raise InputError(
                f"SequenceClassifier.{what}: expected {KINDS[self.input_]} as in fit, "
                f"got {KINDS[kind]}"
            )
        if kind == "text":
            return self.vocab_.encode_many(X)
        seqs: list[np.ndarray] = []
        for i, x in enumerate(X):
            a = np.asarray(x)
            if kind == "ids":
                a = a.astype(np.int64).reshape(-1)
                if len(a) and (a.min() < 0 or a.max() >= self.n_inputs_):
                    raise InputError(
                        f"SequenceClassifier.{what}: X[{i}] holds ids outside "
                        f"[0, {self.n_inputs_}) seen in fit"
                    )
                seqs.append(a if len(a) else np.zeros(1, dtype=np.int64))
                continue
            a = a.astype(np.float32).reshape(len(a), -1)
            if a.shape[1] != self.n_inputs_ or len(a) == 0:
                raise InputError(
                    f"SequenceClassifier.{what}: X[{i}] has shape {np.shape(x)}, expected "
                    f"(T, {self.n_inputs_}) with T >= 1"
                )
            if not np.all(np.isfinite(a)):
                raise InputError(f"SequenceClassifier.{what}: X[{i}] holds NaN or infinity")
            seqs.append(a)
        return seqs

    # -- predict -------------------------------------------------------------------------------
    def predict_proba(self, X: Sequence[Any]) -> np.ndarray:
        """``(N, n_classes)`` probabilities, columns in the order of ``classes_``."""
        self._check_fitted("predict")
        if len(X) == 0:
            return np.zeros((0, len(self.classes_)))
        return predict_proba(self.model_, self._encode(X, "predict"))

    def predict(self, X: Sequence[Any]) -> np.ndarray:
        """The likeliest class of each sequence."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def attention_weights(self, X: Sequence[Any]) -> list[np.ndarray]:
        """The attention pool's weight on each step of each sequence (``(T_i,)``, summing to
        1), for a model fitted with ``pooling="attention"``."""
        self._check_fitted("attention_weights")
        if self.pooling != "attention":
            raise InputError(
                "SequenceClassifier.attention_weights: the model pools with "
                f"{self.pooling!r}; attention weights need pooling='attention'"
            )
        seqs = self._encode(X, "attention_weights") if len(X) else []
        nets = self.model_.members if isinstance(self.model_, Ensemble) else [self.model_]
        runs = [_attention(net, seqs) for net in nets]
        return [np.mean(per_net, axis=0) for per_net in zip(*runs, strict=True)]

    def score(self, X: Sequence[Any], y: Sequence[Any]) -> float:
        """Accuracy on ``X``, ``y``."""
        labels = labels_of(y, len(X), "SequenceClassifier.score")
        return float(np.mean(self.predict(X) == labels))

    # -- checkpoints ---------------------------------------------------------------------------
    def _learned(self) -> dict[str, Any]:
        learned: dict[str, Any] = {
            "classes": self.classes_.tolist(),
            "input": self.input_,
            "n_inputs": self.n_inputs_,
        }
        if self.input_ == "text":
            learned["vocab"] = list(self.vocab_.tokens)
            learned["level"] = self.vocab_.level
        return learned

    def _restore(self, learned: dict[str, Any], model: Module) -> None:
        self.classes_ = np.asarray(_composed(list(learned["classes"])))
        self.input_ = str(learned["input"])
        self.n_inputs_ = int(learned["n_inputs"])
        if self.input_ == "text":
            self.vocab_ = Vocabulary(tuple(learned["vocab"]), str(learned["level"]))
        nets = model.members if isinstance(model, Ensemble) else [model]
        for net in nets:
            if not isinstance(net, Sequential):
                raise TypeError(f"expected a Sequential network, got {type(net).__name__}")
        if not isinstance(model, (Sequential, Ensemble)):
            raise TypeError(f"expected a Sequential network, got {type(model).__name__}")
        model.eval()
        self.model_ = model


def _composed(classes: list[Any]) -> list[Any]:
    """Text labels in Unicode's composed form (NFC), as `rnnkit.data.labelled` reads them: a
    model saved before that reader composed them, on labels from macOS folder names
    (decomposed), then knows ``zwölf`` typed anywhere. Kept as saved if they are not all
    text, or if two would become one."""
    if not all(isinstance(c, str) for c in classes):
        return classes
    composed = [unicodedata.normalize("NFC", c) for c in classes]
    return composed if len(set(composed)) == len(composed) else classes


def _attention(net: Module, seqs: list[np.ndarray]) -> list[np.ndarray]:
    """The attention pool's weights ``(T_i,)`` of one network on each sequence."""
    pool = next(m for m in net.children.values() if isinstance(m, AttentionPool))
    out: list[np.ndarray] = []
    for start in range(0, len(seqs), PREDICT_BATCH):
        x, lengths = pad(seqs, np.arange(start, min(start + PREDICT_BATCH, len(seqs))))
        net(x, lengths)  # type: ignore[operator]
        a = np.asarray(pool.last_weights)  # (T, B)
        out += [a[:n, b].astype(np.float64) for b, n in enumerate(lengths.tolist())]
    return out
