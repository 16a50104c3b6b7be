"""Fully-connected network with a selectable activation."""

from __future__ import annotations

import math

from torch import nn

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


class MLP(nn.Module):
    def __init__(self, spec, hidden_sizes=(128, 64), activation="relu"):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(spec.input_shape)
        for h in hidden_sizes:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            width = h
        layers.append(nn.Linear(width, spec.num_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
