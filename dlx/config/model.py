"""conf/model: one schema per network family (dlx/models/<family>.py builds it from the data Spec).

Class-level facts (not config keys) that validation needs before anything is built:
RECONSTRUCTS (an autoencoder: trained on targets = inputs) and DROPOUT (the network has dropout
sites for regularizer=[dropout] to set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, List, Optional

from omegaconf import MISSING

from dlx.config.fields import matches, one_of, path, positive, sizes

# model.activation: the allowed names and the torch.nn module each one builds
ACTIVATIONS = {"sigmoid": "Sigmoid", "relu": "ReLU", "tanh": "Tanh", "gelu": "GELU"}


def _kernel_sizes_ok(value: Any) -> bool:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    return all(isinstance(v, int) and v > 0 for v in values)


@dataclass
class ModelConfig:
    _target_: str = MISSING
    RECONSTRUCTS: ClassVar[bool] = False
    DROPOUT: ClassVar[bool] = True
    OPEN: ClassVar[bool] = False  # True: keys beyond the fields are the target's arguments


@dataclass
class LinearConfig(ModelConfig):
    _target_: str = "dlx.models.linear.Linear"
    DROPOUT: ClassVar[bool] = False


@dataclass
class LogisticConfig(LinearConfig):
    _target_: str = "dlx.models.linear.Logistic"


@dataclass
class DenseConfig(ModelConfig):
    """Fully-connected layers: their widths and activation."""

    hidden_sizes: List[int] = sizes([128, 64])
    activation: str = one_of("relu", *ACTIVATIONS)


@dataclass
class MLPConfig(DenseConfig):
    _target_: str = "dlx.models.mlp.MLP"
    batchnorm: bool = False  # BatchNorm1d after each hidden layer, before its activation


@dataclass
class CNNConfig(ModelConfig):
    """The source's digits/MNIST CNN: conv32-pool-conv64-pool-fc128-out."""

    _target_: str = "dlx.models.cnn.CNN"
    channels: List[int] = sizes([32, 64])  # one conv+pool block each
    kernel_size: Any = matches(3, _kernel_sizes_ok, "must be a size > 0 or a list of sizes > 0")
    hidden: int = positive(128)  # the fully-connected layer before the output
    pool: str = one_of("max", "max", "avg")
    batchnorm: bool = False  # BatchNorm2d after each conv, before its ReLU
    padding: str = one_of("same", "same", "valid")  # same: k//2 zeros (PyTorch sources); valid: none (Keras)


@dataclass
class CNNCifarConfig(CNNConfig):
    """The source's CIFAR-10 CNN: conv32-pool-conv64-pool-conv128-pool-fc128-out."""

    channels: List[int] = sizes([32, 64, 128])


@dataclass
class RecurrentConfig(ModelConfig):
    _target_: str = "dlx.models.rnn.RNN"  # simple (Elman) RNN, the source's SimpleRNN
    embedding_dim: int = positive(32)  # token ids (dataset vocab_size > 0) are embedded to this width
    hidden_size: int = positive(64)
    num_layers: int = positive(1)  # stacked recurrent layers
    bidirectional: bool = False  # a second layer per level reads the sequence backwards


@dataclass
class LSTMConfig(RecurrentConfig):
    _target_: str = "dlx.models.rnn.LSTM"


@dataclass
class GRUConfig(RecurrentConfig):
    _target_: str = "dlx.models.rnn.GRU"


@dataclass
class TransformerConfig(ModelConfig):
    _target_: str = "dlx.models.transformer.Transformer"
    d_model: int = positive(64)  # token embedding width
    num_heads: int = positive(4)  # must divide d_model
    num_layers: int = positive(2)  # encoder layers
    dim_feedforward: int = positive(128)  # width of each layer's feed-forward block


@dataclass
class AutoencoderConfig(DenseConfig):
    """Dense: input -> hidden_sizes -> mirrored -> sigmoid (784 -> 128 -> 784 on MNIST); the
    activation is the hidden layers', the output is a sigmoid."""

    _target_: str = "dlx.models.autoencoder.DenseAutoencoder"
    hidden_sizes: List[int] = sizes([128])  # encoder; the decoder mirrors it
    RECONSTRUCTS: ClassVar[bool] = True


@dataclass
class ConvAutoencoderConfig(ModelConfig):
    _target_: str = "dlx.models.autoencoder.ConvAutoencoder"
    channels: List[int] = sizes([16, 32])  # one conv+pool block each
    kernel_size: int = positive(3)  # odd, so convs keep the image size
    RECONSTRUCTS: ClassVar[bool] = True
    DROPOUT: ClassVar[bool] = False


@dataclass
class ResNet18Config(ModelConfig):
    _target_: str = "dlx.models.pretrained.ResNet18"
    pretrained: Optional[str] = path(None)  # torchvision's weights file; None: random init
    freeze: bool = False  # train only the new classifier head
    min_size: int = positive(32)  # smaller images are resized up to this before the backbone
    normalize: bool = True  # ImageNet mean/std on the inputs, as the weights were trained
    DROPOUT: ClassVar[bool] = False


@dataclass
class VGG11Config(ResNet18Config):
    _target_: str = "dlx.models.pretrained.VGG11"
    DROPOUT: ClassVar[bool] = True  # VGG's classifier has two Dropout layers


@dataclass
class CustomModelConfig(ModelConfig):
    """Your own network: `_target_` names an nn.Module subclass that takes `spec` (the data's
    Spec); every other key is passed to it (+model.hidden=32), checked against its signature
    (dlx/config/targets.py; docs/extending.md)."""

    _target_: str = MISSING  # e.g. mynets.TinyNet
    OPEN: ClassVar[bool] = True


OPTIONS = {
    "linear": LinearConfig, "logistic": LogisticConfig, "mlp": MLPConfig, "cnn": CNNConfig,
    "cnn_cifar": CNNCifarConfig, "rnn": RecurrentConfig, "lstm": LSTMConfig, "gru": GRUConfig,
    "transformer": TransformerConfig, "autoencoder": AutoencoderConfig,
    "conv_autoencoder": ConvAutoencoderConfig, "resnet18": ResNet18Config, "vgg11": VGG11Config,
    "custom": CustomModelConfig,
}
