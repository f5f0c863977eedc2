"""The construction shared by the models that read a recurrent stack through a linear head.

``rnn = Recurrent(cell)(input_size, hidden_size, num_layers)``; ``head = Linear(hidden_size,
output_size)``; the two seeded from one seed (`SequenceRegressor`, `NextValueModel`).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..layers import GRU, LSTM, RNN, Linear
from ..layers.recurrent import Recurrent

RECURRENT = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


def recurrent_with_head(
    owner: str,
    cell: str,
    input_size: int,
    hidden_size: int,
    output_size: int,
    num_layers: int,
    seed: int | None,
    dtype: str,
) -> tuple[Recurrent, Linear]:
    """The stack and its head; ``owner`` names the model in the error for an unknown cell."""
    if cell not in RECURRENT:
        raise InputError(f"{owner}: unknown cell {cell!r}; expected one of {sorted(RECURRENT)}")
    seeds = np.random.SeedSequence(seed).generate_state(2)
    rnn = RECURRENT[cell](input_size, hidden_size, num_layers, seed=int(seeds[0]), dtype=dtype)
    head = Linear(hidden_size, output_size, seed=int(seeds[1]), dtype=dtype)
    return rnn, head
