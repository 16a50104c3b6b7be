"""Fully-connected network with a selectable activation and optional batch normalization."""

from __future__ import annotations

import math

from torch import nn

from dlx.config.model import ACTIVATIONS
from dlx.errors import ConfigError


def activation(name: str) -> nn.Module:
    """The torch.nn module for model.activation (its allowed names: dlx/config/model.py)."""
    return getattr(nn, ACTIVATIONS[name])()


def dense_layers(width: int, hidden_sizes, act: str, batchnorm: bool = False) -> tuple[list, int]:
    """Linear [-> BatchNorm] -> activation -> Dropout(p=0) per hidden size; returns (layers, width).
    The Dropout modules are the dropout regularizer's sites (it sets their p)."""
    layers: list[nn.Module] = []
    for h in hidden_sizes:
        if h <= 0:
            raise ConfigError(f"model.hidden_sizes={list(hidden_sizes)} must hold sizes > 0")
        layers += [nn.Linear(width, h), *([nn.BatchNorm1d(h)] if batchnorm else []), activation(act),
                   nn.Dropout(0.0)]
        width = h
    return layers, width


class MLP(nn.Module):
    """Flatten -> [Linear -> (BatchNorm) -> activation -> Dropout] x len(hidden_sizes) -> Linear.

    With hidden_sizes=[h] and activation=sigmoid this is the source's hand-written sigmoid network
    (the output's sigmoid/softmax lives in the loss)."""

    def __init__(self, spec, hidden_sizes=(128, 64), activation="relu", batchnorm=False):
        super().__init__()
        if spec.vocab_size:
            raise ConfigError("model=mlp needs numeric features, the dataset gives token ids: "
                              "use model=rnn, lstm, gru or transformer")
        layers, width = dense_layers(math.prod(spec.input_shape), hidden_sizes, activation, batchnorm)
        self.net = nn.Sequential(nn.Flatten(), *layers, nn.Linear(width, spec.num_outputs))

    def forward(self, x):
        return self.net(x)
