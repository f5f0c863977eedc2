"""`Estimator`: scikit-learn's conventions for rnnkit's models.

- ``__init__`` only stores its arguments, unchanged, under their own names; so `get_params`,
  `set_params`, ``sklearn.base.clone`` and grid search work without scikit-learn installed;
- `fit` learns attributes whose names end in ``_`` (``model_``, ``vocab_``, ``classes_``) and
  returns ``self``; asking a fitted attribute's question before `fit` raises `NotFittedError`;
- ``rnnkit.save(estimator, path)`` writes one safetensors file (the network's config and
  weights, the estimator's parameters and what it learned besides the weights, as JSON; no
  pickle); ``rnnkit.load(path)`` gives the estimator back.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, ClassVar

from ..errors import CheckpointError, InputError, NotFittedError
from ..io.checkpoint import ESTIMATOR_REGISTRY, Checkpoint
from ..layers.module import Module


class Estimator:
    """Base class: parameters as in scikit-learn, the checkpoint round trip, fitted checks.

    A subclass registers itself by name, so `rnnkit.load` can rebuild it; it implements
    `fit`, `_learned` (the JSON of what it learned besides the weights) and `_restore`.
    """

    _estimator_type: ClassVar[str] = ""  # "classifier", "regressor": scikit-learn reads it
    # parameters added after checkpoints were first written, each with the value that gives
    # the behaviour before it existed: a checkpoint without one loads with that value, not
    # with today's default, so it scores as it did when it was saved
    _added_params: ClassVar[dict[str, Any]] = {}
    model_: Module  # the fitted network (absent before fit)
    # what `rnnkit.estimators.fitting.run_fit` sets on every fitted estimator
    history_: dict[str, list]
    n_steps_: int
    stopped_: str
    best_val_loss_: float
    train_minutes_: float
    throughput_: float

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        ESTIMATOR_REGISTRY[cls.__name__] = cls

    # -- parameters ---------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind == p.POSITIONAL_OR_KEYWORD
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments, as given."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Estimator:
        """Change constructor arguments; an unknown name is an `InputError`. Returns self."""
        names = self._param_names()
        for key, value in params.items():
            if key not in names:
                raise InputError(
                    f"{type(self).__name__}.set_params: unknown parameter {key!r}; "
                    f"expected one of {names}"
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        changed = [
            f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k, object()) != v
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self) -> Any:  # scikit-learn >= 1.6 asks for these
        from sklearn.utils import ClassifierTags, Tags, TargetTags  # type: ignore[attr-defined]

        tags = Tags(estimator_type=self._estimator_type or None, target_tags=TargetTags(True))
        if self._estimator_type == "classifier":
            tags.classifier_tags = ClassifierTags()
        return tags

    # -- fitted or not ------------------------------------------------------------------------
    def _check_fitted(self, action: str) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"{type(self).__name__}: cannot {action} before fit; call fit(X, y) first "
                "or rnnkit.load a saved estimator"
            )

    # -- checkpoints --------------------------------------------------------------------------
    def _learned(self) -> dict[str, Any]:
        """What `fit` learned besides the network's weights, as JSON (vocabulary, classes)."""
        raise NotImplementedError

    def _restore(self, learned: dict[str, Any], model: Module) -> None:
        """Set the fitted attributes from `_learned`'s JSON and the loaded network."""
        raise NotImplementedError

    def _checkpoint(self) -> tuple[Module, dict[str, Any]]:
        """The network and the metadata `rnnkit.save` writes beside it."""
        self._check_fitted("save")
        return self.model_, self._metadata()

    def _metadata(self) -> dict[str, Any]:
        return {
            "estimator": type(self).__name__,
            "params": self.get_params(),
            "learned": self._learned(),
        }

    @classmethod
    def _from_checkpoint(cls, ckpt: Checkpoint, path: str | Path) -> Estimator:
        meta = ckpt.metadata
        params, learned = meta.get("params"), meta.get("learned")
        if not isinstance(params, dict) or not isinstance(learned, dict):
            raise CheckpointError(
                f"load: {str(path)!r} names the estimator {cls.__name__} but holds no "
                "parameters or learned state"
            )
        known = set(cls._param_names())
        params = {**cls._added_params, **params}
        try:
            estimator = cls(**{k: v for k, v in params.items() if k in known})
            estimator._restore(learned, ckpt.model)
        except (KeyError, TypeError, ValueError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise CheckpointError(
                f"load: {str(path)!r} has a malformed {cls.__name__} state ({reason})"
            ) from None
        return estimator
