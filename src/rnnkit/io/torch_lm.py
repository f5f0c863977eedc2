"""The PyTorch twin of `LanguageModel` (imported only by `to_torch`, which imports torch).

Same module names as rnnkit's, so the state dicts have the same keys: ``embedding.weight``,
``rnn.weight_ih_l0`` ..., ``head.weight``, ``head.bias``. ``forward(ids, state)`` takes
time-major ids ``(T, B)`` and returns logits ``(T, B, V)`` and the state, as rnnkit does.
"""

from __future__ import annotations

import dataclasses

import torch

from ..models.language import LMConfig

RNNS = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}


class TorchLanguageModel(torch.nn.Module):
    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = dataclasses.asdict(config)
        self.embedding = torch.nn.Embedding(config.vocab_size, config.embedding_size)
        self.rnn = RNNS[config.cell](
            config.embedding_size, config.hidden_size, config.num_layers, dropout=config.dropout
        )
        self.head = torch.nn.Linear(config.hidden_size, config.vocab_size)
        if config.tie_weights:
            self.head.weight = self.embedding.weight
        self.drop = torch.nn.Dropout(config.dropout)

    def forward(self, ids: torch.Tensor, state=None):
        h, state = self.rnn(self.drop(self.embedding(ids)), state)
        return self.head(self.drop(h)), state
