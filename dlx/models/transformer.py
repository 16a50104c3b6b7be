"""A small transformer encoder classifier (the source's self-attention example).

[embedding or linear projection] + sinusoidal positional encoding -> nn.TransformerEncoder with a
key padding mask (token 0 is <pad>) -> mean over the real positions -> head. Padded positions are
never attended to nor pooled, so extra padding does not change a prediction.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlx.errors import ConfigError
from dlx.models.rnn import sequence_input


def positional_encoding(steps: int, d_model: int) -> torch.Tensor:
    """The sinusoidal table of "Attention Is All You Need": (steps, d_model)."""
    pos = torch.arange(steps, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(steps, d_model)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : d_model // 2]
    return pe


class Transformer(nn.Module):
    def __init__(self, spec, d_model=64, num_heads=4, num_layers=2, dim_feedforward=128):
        super().__init__()
        steps, features = sequence_input(spec, "transformer")
        if d_model % num_heads:
            raise ConfigError(f"model.num_heads={num_heads} must divide model.d_model={d_model} "
                              "(each head gets d_model/num_heads dimensions)")
        self.tokens = spec.vocab_size > 0
        self.embed = (nn.Embedding(spec.vocab_size, d_model, padding_idx=0) if self.tokens
                      else nn.Linear(features, d_model))
        # longer than the dataset's sequences, so a batch padded further still finds its positions
        self.register_buffer("pe", positional_encoding(max(steps, 512), d_model), persistent=False)
        layer = nn.TransformerEncoderLayer(d_model, num_heads, dim_feedforward, dropout=0.0,
                                           batch_first=True)  # its Dropouts: the regularizer's sites
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.dropout = nn.Dropout(0.0)
        self.head = nn.Linear(d_model, spec.num_outputs)

    def forward(self, x):
        pad = (x == 0) if self.tokens else torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        pad = pad & ~pad.all(1, keepdim=True)  # an all-padding row attends to all of itself (no NaN)
        h = self.embed(x) * math.sqrt(self.head.in_features) + self.pe[: x.shape[1]]
        h = self.encoder(h, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(2).to(h.dtype)
        pooled = (h * keep).sum(1) / keep.sum(1)
        return self.head(self.dropout(pooled))
