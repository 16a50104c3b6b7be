"""The source material's CNNs: conv-pool blocks, then fc(hidden), then the output layer.

channels [32, 64] is the digits/MNIST CNN (conv32-pool-conv64-pool-fc128-out); [32, 64, 128] is
the CIFAR-10 one (model=cnn_cifar); [32] is the Keras MNIST example (conv32-pool-flatten-dense128).
Input channels and the size of the flattened features come from the Spec's input shape, so 8x8
digits, 28x28 MNIST and 32x32x3 CIFAR-10 all work without changes.
"""

from __future__ import annotations

from torch import nn

from dlx.errors import ConfigError


def image_shape(spec, model: str) -> tuple[int, int, int]:
    """(channels, height, width) of the Spec's inputs, or a ConfigError naming the model."""
    if len(spec.input_shape) != 3 or spec.vocab_size:
        raise ConfigError(
            f"model={model} needs image data shaped (channels, height, width); the dataset gives "
            f"{tuple(spec.input_shape)}{' token ids' if spec.vocab_size else ''}: "
            "pick model=mlp (features), rnn/lstm/gru/transformer (sequences) or an image dataset"
        )
    return tuple(spec.input_shape)


def kernel_sizes(kernel_size, blocks: int) -> list[int]:
    """One kernel size for every block, or one per block."""
    sizes = list(kernel_size) if isinstance(kernel_size, (list, tuple)) else [kernel_size] * blocks
    if len(sizes) != blocks:
        raise ConfigError(f"model.kernel_size={sizes} has {len(sizes)} sizes for {blocks} conv blocks "
                          "(model.channels): give one size, or one per block")
    return sizes


class CNN(nn.Module):
    def __init__(self, spec, channels=(32, 64), kernel_size=3, hidden=128, pool="max", batchnorm=False):
        super().__init__()
        c, h, w = image_shape(spec, "cnn")
        if min(h, w) < 2 ** len(channels):
            raise ConfigError(
                f"model.channels has {len(channels)} conv+pool blocks, too many for {h}x{w} inputs "
                f"(each pool halves the size): use at most {min(h, w).bit_length() - 1}"
            )
        Pool = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[pool]
        blocks: list[nn.Module] = []
        for out, k in zip(channels, kernel_sizes(kernel_size, len(channels))):
            blocks += [nn.Conv2d(c, out, k, padding=k // 2), *([nn.BatchNorm2d(out)] if batchnorm else []),
                       nn.ReLU(), Pool(2)]
            # 'same' padding keeps odd kernels' size; even kernels grow it by one before the pool
            c, h, w = out, (h + 2 * (k // 2) - k + 1) // 2, (w + 2 * (k // 2) - k + 1) // 2
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(  # the Dropout sites belong to the dropout regularizer (p=0 here)
            nn.Flatten(), nn.Dropout(0.0), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Dropout(0.0),
            nn.Linear(hidden, spec.num_outputs),
        )

    def forward(self, x):
        return self.head(self.features(x))
