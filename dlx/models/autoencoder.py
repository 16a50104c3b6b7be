"""Autoencoders: the input is squeezed through a small code and rebuilt (task reconstruction).

A model with `reconstructs = True` is trained on targets = inputs: run.py turns the dataset's
Bundle into a reconstruction Bundle (Bundle.for_reconstruction) after building it. The output is
a sigmoid, so the inputs should lie in [0, 1] (digits, and MNIST/CIFAR with normalize=scale).
"""

from __future__ import annotations

import math

from torch import nn

from dlx.errors import ConfigError
from dlx.models.cnn import image_shape
from dlx.models.mlp import dense_layers


class DenseAutoencoder(nn.Module):
    """Flatten -> encoder (hidden_sizes) -> decoder (mirrored) -> sigmoid, reshaped to the input.

    hidden_sizes=[128] on 28x28 images is the source's 784 -> 128 -> 784."""

    reconstructs = True

    def __init__(self, spec, hidden_sizes=(128,), activation="relu"):
        super().__init__()
        if spec.vocab_size:
            raise ConfigError("model=autoencoder needs numeric inputs, the dataset gives token ids: "
                              "pick an image or tabular dataset")
        if not hidden_sizes:
            raise ConfigError("model.hidden_sizes=[] leaves the autoencoder without a code layer: "
                              "give at least one size, e.g. [128]")
        n = math.prod(spec.input_shape)
        encoder, width = dense_layers(n, hidden_sizes, activation)
        decoder, width = dense_layers(width, list(reversed(hidden_sizes[:-1])), activation)
        self.encoder = nn.Sequential(nn.Flatten(), *encoder)
        self.decoder = nn.Sequential(*decoder, nn.Linear(width, n), nn.Sigmoid(),
                                     nn.Unflatten(1, tuple(spec.input_shape)))

    def forward(self, x):
        return self.decoder(self.encoder(x))


class ConvAutoencoder(nn.Module):
    """[conv -> ReLU -> maxpool] per channel count, then [upsample -> conv] back to the input size;
    the last conv has the input's channels and a sigmoid."""

    reconstructs = True

    def __init__(self, spec, channels=(16, 32), kernel_size=3):
        super().__init__()
        c, h, w = image_shape(spec, "conv_autoencoder")
        if min(h, w) < 2 ** len(channels):
            raise ConfigError(f"model.channels has {len(channels)} conv+pool blocks, too many for "
                              f"{h}x{w} inputs: use at most {min(h, w).bit_length() - 1}")
        if kernel_size % 2 == 0:
            raise ConfigError(f"model.kernel_size={kernel_size} must be odd, so convs keep the size")
        chans, sizes = [c, *channels], [(h, w)]
        encoder: list[nn.Module] = []
        for i in range(len(channels)):
            encoder += [nn.Conv2d(chans[i], chans[i + 1], kernel_size, padding=kernel_size // 2),
                        nn.ReLU(), nn.MaxPool2d(2)]
            sizes.append((sizes[-1][0] // 2, sizes[-1][1] // 2))
        decoder: list[nn.Module] = []
        for i in reversed(range(len(channels))):  # upsample to the exact size the encoder pooled from
            decoder += [nn.Upsample(size=sizes[i]),
                        nn.Conv2d(chans[i + 1], chans[i], kernel_size, padding=kernel_size // 2),
                        nn.ReLU() if i else nn.Sigmoid()]
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)

    def forward(self, x):
        return self.decoder(self.encoder(x))
