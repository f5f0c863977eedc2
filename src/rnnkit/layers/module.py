"""`Module`: the parameter, gradient and config bookkeeping shared by every layer and model.

A module owns ``params`` and ``grads``: two dicts with the same keys (the ``state_dict()`` keys,
PyTorch's names) holding arrays of the same shapes. Gradients accumulate in place, so a parent
module or an optimizer may keep references to them. Child modules are listed in ``children`` and
their keys are prefixed with the child's name and a dot, as in PyTorch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from ..errors import CheckpointError, InputError

# Every Module subclass, by class name, so a checkpoint can name the class to rebuild.
MODULE_REGISTRY: dict[str, type[Module]] = {}


@dataclasses.dataclass(frozen=True)
class StreamHook:
    """What a model shows the streaming runtime (`rnnkit.stream`) so that one step runs on the
    fused step kernels: its recurrent stack, and how one input reaches it and its output
    leaves. The runtime reaches into nothing else of the model.

    ``encode(x)``: one step's input of one stream (a token id, say) as the stack's input
    ``(F,)``, or None when it cannot (the general path then reports what is wrong);
    ``encode_many(xs)``: the same for one input of each of B streams, ``(B, F)`` or None;
    ``decode(h)``: the stack's top output ``(..., H)`` as the model's output. None: the
    identity (a bare recurrent stack).
    """

    core: Any  # a unidirectional `Recurrent`
    encode: Callable[[Any], np.ndarray | None] | None = None
    encode_many: Callable[[Any], np.ndarray | None] | None = None
    decode: Callable[[np.ndarray], np.ndarray] | None = None


class Module:
    """Base class: parameters, gradients, children, config, state dicts."""

    config_class: ClassVar[type | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        MODULE_REGISTRY[cls.__name__] = cls

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.children: dict[str, Module] = {}
        self.training = False
        self.rng: np.random.Generator | None = None  # for dropout, where a module has any

    # -- parameters -------------------------------------------------------------------------
    def _add_param(self, name: str, value: np.ndarray) -> None:
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)

    def _named(self) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
        """(key, parameter, gradient) for this module and its children, shared arrays once."""
        out = [(k, v, self.grads.get(k)) for k, v in self.params.items()]  # none if quantized
        for prefix, child in self.children.items():
            out += [(f"{prefix}.{k}", v, g) for k, v, g in child._named()]
        seen: set[int] = set()
        unique = []
        for key, value, grad in out:  # a tied weight is listed under its first key only
            if id(value) not in seen:
                seen.add(id(value))
                unique.append((key, value, grad))
        return unique

    def named_parameters(self) -> dict[str, np.ndarray]:
        """Live references to every parameter, children's keys prefixed ``child.``."""
        return {k: v for k, v, _ in self._named()}

    def named_grads(self) -> dict[str, np.ndarray]:
        """Live references to every gradient, with the same keys as `named_parameters`."""
        return {k: g for k, _, g in self._named() if g is not None}

    def generators(self) -> dict[str, np.random.Generator]:
        """Every random generator used in training (dropout), keyed by module path."""
        out = {"": self.rng} if self.rng is not None else {}
        for prefix, child in self.children.items():
            for key, rng in child.generators().items():
                out[f"{prefix}.{key}".rstrip(".")] = rng
        return out

    def zero_grad(self) -> None:
        """Set every accumulated gradient to zero, in place."""
        for g in self.named_grads().values():
            g.fill(0)

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.named_parameters().values()))

    def train(self, mode: bool = True) -> Module:
        """Switch training behaviour (dropout) on or off, here and in every child."""
        self.training = mode
        for child in self.children.values():
            child.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    # -- state dicts ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter, keyed as in PyTorch."""
        return {k: v.copy() for k, v in self.named_parameters().items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Copy weights in, after checking that keys and shapes match exactly.

        Raises `CheckpointError` naming the first missing key, extra key or wrong shape.
        """
        own = self.named_parameters()
        name = type(self).__name__
        if not isinstance(state, Mapping):
            raise CheckpointError(
                f"{name}: expected a state dict (a mapping of key to array), got "
                f"{type(state).__name__}"
            )
        missing = [k for k in own if k not in state]
        if missing:
            shape = tuple(own[missing[0]].shape)
            raise CheckpointError(f"{name}: missing key {missing[0]!r} (expected shape {shape})")
        extra = [k for k in state if k not in own]
        if extra:
            shape = tuple(np.shape(state[extra[0]]))
            raise CheckpointError(f"{name}: unexpected key {extra[0]!r} with shape {shape}")
        for key, dst in own.items():
            src = np.asarray(state[key])
            if src.dtype.kind not in "fiu":
                raise CheckpointError(
                    f"{name}: key {key!r} expected a float array, got dtype {src.dtype}"
                )
            if src.shape != dst.shape:
                raise CheckpointError(
                    f"{name}: key {key!r} expected shape {tuple(dst.shape)}, got {tuple(src.shape)}"
                )
            if not np.all(np.isfinite(src)):
                raise CheckpointError(f"{name}: key {key!r} contains NaN or infinity")
        for key, dst in own.items():
            dst[...] = np.asarray(state[key], dtype=dst.dtype)

    # -- config -----------------------------------------------------------------------------
    @property
    def config(self) -> Any:
        """The frozen dataclass that rebuilds this module (saved in checkpoints)."""
        raise NotImplementedError(f"{type(self).__name__} has no config")

    @classmethod
    def from_config(cls, config: Any) -> Module:
        kwargs = dataclasses.asdict(config)
        return cls(**kwargs)

    def __repr__(self) -> str:
        try:
            fields = dataclasses.asdict(self.config)
        except NotImplementedError:
            return f"{type(self).__name__}()"
        inner = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        return f"{type(self).__name__}({inner})"


class ModuleList(Module):
    """Several modules seen as one: keys ``0.weight_ih_l0``, ``1.weight``, ... (as PyTorch).

    For an optimizer or `clip_grad_norm` over all of them: ``Adam(ModuleList([rnn, head]))``.
    """

    def __init__(self, modules: list[Module]) -> None:
        super().__init__()
        if not isinstance(modules, (list, tuple)):
            raise InputError(
                f"ModuleList: expected a list of rnnkit modules, got {type(modules).__name__}"
            )
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise InputError(
                    f"ModuleList: expected rnnkit modules, got {type(m).__name__} at index {i}"
                )
        self.children = {str(i): m for i, m in enumerate(modules)}

    def __getitem__(self, index: int) -> Module:
        return self.children[str(index)]

    def __len__(self) -> int:
        return len(self.children)
