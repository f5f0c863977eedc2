"""`Ensemble`: several networks of the same task in one module, so one checkpoint holds them all.

    p(c | x) = (1 / N) sum_k softmax(f_k(x))_c          the members' probabilities averaged

Calling the ensemble returns ``log p`` (log of the averaged probabilities), so a softmax of
its output is the average again and code written for one network's logits reads it
unchanged. Members are keyed ``"0"``, ``"1"``, ... so the state dict reads
``0.1.weight_ih_l0``, ``1.1.weight_ih_l0`` (member, then the member's own key). The ensemble is
for prediction: each member is trained alone (`rnnkit.SequenceClassifier(members=N)`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..layers.module import MODULE_REGISTRY, Module
from ..losses import softmax


@dataclass(frozen=True)
class EnsembleConfig:
    """Each member as ``{"class": class name, "config": its config as a dict}``."""

    members: tuple = ()


class Ensemble(Module):
    """``Ensemble(*networks)``: ``log_p = ensemble(x, lengths)``, the log of the members'
    averaged softmax; ``ensemble.members`` are the networks themselves."""

    config_class = EnsembleConfig

    def __init__(self, *members: Module) -> None:
        super().__init__()
        if not members:
            raise InputError("Ensemble: expected at least one network, got none")
        for i, m in enumerate(members):
            if not isinstance(m, Module) or not callable(m):
                raise InputError(
                    f"Ensemble: expected rnnkit networks, got {type(m).__name__} at index {i}"
                )
        self.children = {str(i): m for i, m in enumerate(members)}

    @property
    def members(self) -> list[Module]:
        return list(self.children.values())

    def __len__(self) -> int:
        return len(self.children)

    @property
    def config(self) -> EnsembleConfig:
        return EnsembleConfig(
            tuple(
                {"class": type(m).__name__, "config": dataclasses.asdict(m.config)}
                for m in self.children.values()
            )
        )

    @classmethod
    def from_config(cls, config: Any) -> Ensemble:
        members = []
        for i, entry in enumerate(config.members):
            name = entry["class"] if isinstance(entry, dict) else None
            sub = MODULE_REGISTRY.get(name) if isinstance(name, str) else None
            if sub is None or sub.config_class is None:
                raise InputError(f"Ensemble: member {i} has an unknown class {name!r}")
            members.append(sub.from_config(sub.config_class(**entry["config"])))
        return cls(*members)

    def __call__(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """Inference: ``log`` of the members' averaged probabilities, ``(B, C)``."""
        p = np.mean(
            [softmax(np.asarray(m(x, lengths), dtype=np.float64)) for m in self.members],  # type: ignore[operator]
            axis=0,
        )
        return np.log(np.maximum(p, np.finfo(np.float64).tiny))
