"""The source material's CNNs: conv-pool blocks, then fc(hidden), then the output layer.

channels [32, 64] is the digits/MNIST CNN (conv32-pool-conv64-pool-fc128-out); [32, 64, 128] is
the CIFAR-10 one (model=cnn_cifar); [32] with padding 'valid' is the Keras MNIST example
(conv32-pool-flatten-dense128, Keras' Conv2D default).
Input channels and the size of the flattened features come from the Spec's input shape, so 8x8
digits, 28x28 MNIST and 32x32x3 CIFAR-10 all work without changes.
"""

from __future__ import annotations

import torch
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
    def __init__(self, spec, channels=(32, 64), kernel_size=3, hidden=128, pool="max", batchnorm=False,
                 padding="same"):
        super().__init__()
        c, h, w = image_shape(spec, "cnn")
        Pool = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[pool]
        blocks: list[nn.Module] = []
        for i, (out, k) in enumerate(zip(channels, kernel_sizes(kernel_size, len(channels)))):
            pad = k // 2 if padding == "same" else 0  # 'valid' (Keras' default): no padding
            # 'same' keeps odd kernels' size (even kernels grow it by one); 'valid' shrinks it by k-1
            conv_h, conv_w = h + 2 * pad - k + 1, w + 2 * pad - k + 1
            if min(conv_h, conv_w) < 2:  # the pool needs 2x2
                raise ConfigError(
                    f"model.channels has {len(channels)} conv+pool blocks, too many for "
                    f"{spec.input_shape[1]}x{spec.input_shape[2]} inputs with model.padding={padding} "
                    f"and model.kernel_size={kernel_size} (block {i + 1} would see {h}x{w}): use "
                    f"fewer blocks{', or model.padding=same' if padding == 'valid' else ''}"
                )
            # max-pool and ReLU commute (ReLU never reorders values), and so do their gradients:
            # pooling first runs the ReLU on a quarter of the values (the same numbers, and the
            # same parameter names as conv-ReLU-pool). An average pool does not commute with it.
            act_pool = [Pool(2), nn.ReLU()] if pool == "max" else [nn.ReLU(), Pool(2)]
            blocks += [nn.Conv2d(c, out, k, padding=pad), *([nn.BatchNorm2d(out)] if batchnorm else []),
                       *act_pool]
            c, h, w = out, conv_h // 2, conv_w // 2
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(  # the Dropout sites belong to the dropout regularizer (p=0 here)
            nn.Flatten(), nn.Dropout(0.0), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Dropout(0.0),
            nn.Linear(hidden, spec.num_outputs),
        )

    def forward(self, x):
        x = self.features(x)
        if x.requires_grad and _channels_last(x):
            # Flatten hands back its gradient laid out NCHW; the last block's backward (its ReLU,
            # then the pool) on a gradient laid out unlike its channels-last input costs ~3x (the
            # pool's: 0.65 vs 0.2 ms a batch of the Keras CNN)
            x.register_hook(_to_channels_last)
        return self.head(x)


def _channels_last(x) -> bool:
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _to_channels_last(grad):
    return grad.contiguous(memory_format=torch.channels_last)
