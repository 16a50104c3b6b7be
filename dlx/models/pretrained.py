"""torchvision's ResNet-18 and VGG-11 for transfer learning.

model.pretrained is the path of a local weights file in torchvision's state-dict format (what
`torch.save(torchvision.models.resnet18(weights=...).state_dict(), path)` writes, or the .pth file
torchvision itself downloads). dlx never downloads: a missing file is an error that says where
to put it. The classifier head is replaced for the dataset's classes; model.freeze trains only
that head. Grayscale images are repeated to 3 channels and small ones resized up (min_size).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dlx.errors import ConfigError
from dlx.models.cnn import image_shape

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def weights_url(arch: str) -> str:
    """Where torchvision publishes the ImageNet weights of `arch` (read from its enum: no network)."""
    from torchvision.models import get_model_weights

    return get_model_weights(arch).DEFAULT.url


def read_weights(path: str, arch: str) -> dict:
    """The state dict in the weights file at `path` (safe: weights_only), or a ConfigError."""
    file = Path(path).expanduser()
    url = weights_url(arch)
    if not file.is_file():
        raise ConfigError(
            f"model.pretrained={path}: no such file; dlx does not download weights: fetch "
            f"torchvision's {arch} weights {url} (or torch.save a torchvision {arch} state_dict) "
            f"to {file.resolve()}, or set model.pretrained=null for random init"
        )
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning: the error says it
            warnings.simplefilter("ignore")
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling problem means a wrong file
        raise ConfigError(f"model.pretrained={path} is not a PyTorch weights file "
                          f"({type(e).__name__}: {str(e).splitlines()[0]}): use torchvision's {url}") from e
    if not isinstance(state, dict):
        raise ConfigError(f"model.pretrained={path} holds a {type(state).__name__}, not a state dict: "
                          f"save model.state_dict(), or use torchvision's {url}")
    return state


def load_weights(net: nn.Module, state: dict, path: str, arch: str) -> None:
    """Put a torchvision `arch` state dict into `net`; anything else is a ConfigError."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and getattr(state[k], "shape", None) != own[k].shape]
    if missing or unexpected or wrong:
        raise ConfigError(
            f"model.pretrained={path} does not hold torchvision {arch} weights ({len(missing)} keys "
            f"missing, e.g. {missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]}; "
            f"{len(wrong)} of another shape, e.g. {wrong[:2]}): use torchvision's {weights_url(arch)}"
        )
    net.load_state_dict(state)


class Pretrained(nn.Module):
    ARCH = "resnet18"

    def __init__(self, spec, pretrained=None, freeze=False, min_size=32, normalize=True):
        super().__init__()
        import torchvision

        c, h, w = image_shape(spec, self.ARCH)
        if c not in (1, 3):
            raise ConfigError(f"model={self.ARCH} takes RGB or grayscale images, the dataset has {c} "
                              "channels: pick model=cnn")
        state = read_weights(pretrained, self.ARCH) if pretrained else None  # before the big build
        kwargs = {"dropout": 0.0} if self.ARCH.startswith("vgg") else {}  # Dropout sites: p=0 (regularizer)
        net = getattr(torchvision.models, self.ARCH)(weights=None, **kwargs)
        if state is not None:
            load_weights(net, state, pretrained, self.ARCH)
        self.net = net
        self._replace_head(spec.num_outputs)
        self.freeze = freeze
        if freeze:  # only the new head learns
            for p in net.parameters():
                p.requires_grad_(False)
            for p in self.head.parameters():
                p.requires_grad_(True)
        self.gray = c == 1
        scale = max(1.0, min_size / min(h, w))
        self.size = None if scale == 1.0 else (round(h * scale), round(w * scale))
        self.normalize = normalize
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def head(self) -> nn.Linear:
        """The classifier layer that replaced ImageNet's 1000-class one."""
        return self.net.fc

    def _replace_head(self, outputs: int) -> None:
        self.net.fc = nn.Linear(self.net.fc.in_features, outputs)

    def train(self, mode: bool = True):
        """A frozen backbone's batch-norm statistics stay as loaded, even while the head trains."""
        super().train(mode)
        if self.freeze:
            for m in self.net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, x):
        if self.gray:
            x = x.expand(-1, 3, -1, -1)  # grayscale -> 3 identical channels
        if self.size is not None:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        if self.normalize:
            x = (x - self.mean) / self.std
        return self.net(x)


class ResNet18(Pretrained):
    ARCH = "resnet18"


class VGG11(Pretrained):
    ARCH = "vgg11"

    @property
    def head(self) -> nn.Linear:
        return self.net.classifier[-1]

    def _replace_head(self, outputs: int) -> None:
        self.net.classifier[-1] = nn.Linear(self.net.classifier[-1].in_features, outputs)
