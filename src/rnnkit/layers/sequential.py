"""`Sequential`: modules applied one after another, with the backward chained for you.

    y = f_n(... f_2(f_1(x)))          forward: each child's ``forward_train`` returns its backward
    dx = b_1(b_2(... b_n(dy)))        backward: the children's backward closures, last first

No model made of existing modules needs a hand-written backward. Children are keyed ``"0"``,
``"1"``, ... so the state dict reads ``0.weight``, ``1.weight_ih_l0`` as in PyTorch.

Everything is time-major, ``(T, B, F)``. Each child is adapted to the chain:
- a recurrent layer (`RNN`, `LSTM`, `GRU`, `Recurrent`) starts from a zero state, receives
  ``lengths`` and passes its output sequence on (its final state is dropped);
- a module with ``accepts_lengths`` (`Pool`, `AttentionPool`) receives ``lengths``; one with
  ``pools_time`` removes the time axis, so no later module receives them;
- any other module (`Linear` on ``(T, B, F)`` is time-distributed, `Embedding`, `Dropout`,
  `LayerNorm`) is called on the previous output alone.

``dx`` is None when the first module takes ids (`Embedding`).

Wiring a graph that is not a chain (encoder -> attention -> decoder) needs no backward math
either: a custom `Module` calls its children's ``forward_train`` and its backward calls their
backward closures in reverse order, adding the gradients of a value used twice::

    class AttentiveClassifier(Module):
        def __init__(self):
            super().__init__()
            self.encoder = Sequential(Embedding(100, 16), LSTM(16, 32))
            self.attend = Attention(32, 32, kind="general")
            self.head = Linear(32, 2)
            self.children = {"encoder": self.encoder, "attend": self.attend, "head": self.head}

        def forward_train(self, ids, lengths):
            keys, back_enc = self.encoder.forward_train(ids, lengths)    # (T, B, H)
            query = keys[-1]                                             # (B, H)
            (context, _), back_att = self.attend.forward_train(query, keys, lengths=lengths)
            logits, back_head = self.head.forward_train(context)         # (B, 2)

            def backward(dlogits):
                dquery, dkeys = back_att(back_head(dlogits))
                dkeys[-1] += dquery           # keys[-1] was used twice: gradients add
                return back_enc(dkeys)

            return logits, backward

(tests/test_composition.py runs this pattern against finite differences.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .module import MODULE_REGISTRY, Module
from .recurrent import Recurrent


@dataclass(frozen=True)
class SequentialConfig:
    """Each child as ``{"class": class name, "config": its config as a dict}``."""

    modules: tuple = ()


class Sequential(Module):
    """``Sequential(*modules)``: ``y = model(x, lengths=None)``; ``y, backward = forward_train``."""

    config_class = SequentialConfig

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        if not modules:
            raise InputError("Sequential: expected at least one module, got none")
        for i, m in enumerate(modules):
            if not isinstance(m, Module) or not hasattr(m, "forward_train"):
                raise InputError(
                    f"Sequential: expected rnnkit modules with forward_train, got "
                    f"{type(m).__name__} at index {i}"
                )
            if isinstance(m, Recurrent) and m.batch_first:
                raise InputError(
                    f"Sequential: module {i} ({type(m).__name__}) has batch_first=True; "
                    "expected time-major layers (T, B, F)"
                )
        self.children = {str(i): m for i, m in enumerate(modules)}

    def __getitem__(self, index: int) -> Module:
        return list(self.children.values())[index]

    def __len__(self) -> int:
        return len(self.children)

    @property
    def config(self) -> SequentialConfig:
        return SequentialConfig(
            tuple(
                {"class": type(m).__name__, "config": dataclasses.asdict(m.config)}
                for m in self.children.values()
            )
        )

    @classmethod
    def from_config(cls, config: Any) -> Sequential:
        modules = []
        for i, entry in enumerate(config.modules):
            name = entry["class"] if isinstance(entry, dict) else None
            sub = MODULE_REGISTRY.get(name) if isinstance(name, str) else None
            if sub is None or sub.config_class is None:
                raise InputError(f"Sequential: module {i} has an unknown class {name!r}")
            modules.append(sub.from_config(sub.config_class(**entry["config"])))
        return cls(*modules)

    def __call__(self, x, lengths=None):
        """Inference (no dropout): the last module's output."""
        for m in self.children.values():
            if isinstance(m, Recurrent):
                x, _ = m(x, lengths=lengths)
            elif getattr(m, "accepts_lengths", False):
                x = m(x, lengths=lengths)
            else:
                x = m(x)
            if getattr(m, "pools_time", False):
                lengths = None
        return x

    def forward_train(self, x, lengths=None):
        """Training forward: ``y, backward``; then ``dx = backward(dy)``."""
        backs = []
        for m in self.children.values():
            if isinstance(m, Recurrent):
                x, _, back = m.forward_train(x, lengths=lengths)
                backs.append(lambda dy, back=back: back(dy)[0])  # dstate from the zero start
            elif getattr(m, "accepts_lengths", False):
                x, back = m.forward_train(x, lengths=lengths)
                backs.append(back)
            else:
                x, back = m.forward_train(x)
                backs.append(back)
            if getattr(m, "pools_time", False):
                lengths = None

        def backward(dy):
            for i in range(len(backs) - 1, -1, -1):
                if dy is None:  # only a first module taking ids may return None
                    raise InputError(f"Sequential: module {i + 1} returned no input gradient")
                dy = backs[i](dy)
            return dy

        return x, backward
