"""Online learning: the network of a stream keeps learning as the stream goes on.

A network fitted on the probationary period alone never learns to expect what comes after it:
an AWS metric's daily spike, a tweet volume's recurring bursts. With ``learn_every = N > 0``
(`AnomalyDetector`), each stream gets its own copy of the fitted network and its own AdamW
state, and every ``N`` values after its probationary period the network takes ``learn_steps``
AdamW steps (Gaussian NLL, full BPTT, constant learning rate ``learn_lr``) on the last
``probation`` normalised values, cut into consecutive chunks of ``chunk``:

    every N values:   theta <- AdamW(theta, grad NLL(z_{t-W} .. z_{t-1}))   x learn_steps

Causal: the step at row ``t`` comes after the value ``t - 1`` was scored and before ``t`` is,
so a value is always scored before it is learned from. The hidden state carries across an
update. The whole-series path (`network_out`) and `DetectorPool` (one value at a time) make the
same updates from the same values at the same rows, so they agree (tested).

Memory per stream is constant: the copy of the network's weights, their gradients and AdamW's
two moments (4 times the weights), and a ring buffer of the last ``W`` values.
"""

from __future__ import annotations

import copy

import numpy as np

from ..losses import gaussian_nll
from ..models.predictive import NextValueModel
from ..optim import AdamW, clip_grad_norm


class Learner:
    """One stream's own network, its AdamW state and the members' block masks."""

    __slots__ = ("model", "opt", "blocks")

    def __init__(self, model: NextValueModel, lr: float) -> None:
        self.model = copy.deepcopy(model)
        self.model.eval()
        self.opt = AdamW(self.model, lr=lr, weight_decay=0.0)  # no decay: blocks stay apart
        self.blocks = self.model.block_masks() if self.model.members > 1 else None

    def learn(self, z: np.ndarray, steps: int, chunk: int) -> None:
        """``steps`` AdamW steps on the normalised values ``z`` (in order), in consecutive
        chunks of ``chunk`` (the last one ending at ``z``'s end)."""
        n = z.size - 1  # inputs z[:-1], targets z[1:]
        if n < 1 or steps < 1:
            return
        length = min(chunk, n)
        starts = list(range(0, n - length + 1, length))
        if starts[-1] != n - length:
            starts.append(n - length)
        x = np.stack([z[a : a + length] for a in starts], axis=1)[..., None]  # (L, B, 1)
        y = np.stack([z[a + 1 : a + length + 1] for a in starts], axis=1)  # (L, B)
        model = self.model
        y3 = np.broadcast_to(y[..., None], (*y.shape, model.members))  # each member its NLL
        model.train()
        for _ in range(steps):
            model.zero_grad()
            (mean, var), backward = model.forward_train(x)
            _, dmean, dvar = gaussian_nll(mean, var, y3)
            backward(dmean, dvar)
            if self.blocks is not None:
                model.mask_grads(self.blocks)
            clip_grad_norm(model, 1.0)
            self.opt.step()
        model.eval()


def network_out(
    model: NextValueModel,
    z: np.ndarray,
    start: int,
    every: int,
    steps: int,
    lr: float,
    window: int,
    chunk: int,
) -> np.ndarray:
    """The head's outputs ``(T, 2K)`` for the whole normalised series ``z``, the network
    learning on the last ``window`` values every ``every`` values from row ``start`` on (0:
    never); ``out[t]`` predicts ``z[t + 1]``."""
    if every <= 0:
        out, _ = model.stream_forward(z[:, None, None])
        return out[:, 0]
    learner = Learner(model, lr)
    outs = []
    state = None
    a = 0
    for b in [*range(start + every, z.size, every), z.size]:
        out, state = learner.model.stream_forward(z[a:b, None, None], state)
        outs.append(out[:, 0])
        a = b
        if b < z.size:  # z[b - 1] is scored; z[b] is not yet
            learner.learn(z[max(0, b - window) : b], steps, chunk)
    return np.concatenate(outs)


def learner_bytes(model: NextValueModel, window: int) -> int:
    """Bytes a stream's learning holds: its weights, gradients and AdamW's two moments, and its
    ring buffer of ``window`` values (plus a counter)."""
    return 8 * (4 * model.num_parameters() + window + 1)
