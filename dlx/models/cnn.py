"""The source material's CNN: conv-pool blocks, then fc(hidden), then the output layer.

With the default channels [32, 64] this is conv32-pool-conv64-pool-fc128-out; the size of the
flattened features is computed from the input shape, so 8x8 digits and 28x28 MNIST both work.
"""

from __future__ import annotations

from torch import nn

from dlx.errors import ConfigError


class CNN(nn.Module):
    def __init__(self, spec, channels=(32, 64), kernel_size=3, hidden=128, pool="max"):
        super().__init__()
        if len(spec.input_shape) != 3:
            raise ConfigError(
                f"model=cnn needs image data shaped (channels, height, width); the dataset gives "
                f"{tuple(spec.input_shape)}: pick model=mlp or an image dataset"
            )
        c, h, w = spec.input_shape
        if min(h, w) < 2 ** len(channels):
            raise ConfigError(
                f"model.channels has {len(channels)} conv+pool blocks, too many for {h}x{w} inputs "
                f"(each pool halves the size): use at most {min(h, w).bit_length() - 1}"
            )
        Pool = nn.MaxPool2d if pool == "max" else nn.AvgPool2d
        blocks: list[nn.Module] = []
        for out in channels:
            blocks += [nn.Conv2d(c, out, kernel_size, padding=kernel_size // 2), nn.ReLU(), Pool(2)]
            c, h, w = out, h // 2, w // 2
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Linear(hidden, spec.num_outputs)
        )

    def forward(self, x):
        return self.head(self.features(x))
