"""Recurrent classifiers: [embedding] -> stacked RNN/LSTM/GRU layers -> head on the last state.

Inputs are token ids (Spec.vocab_size > 0; 0 is <pad>, sequences are right-padded) or float
sequences shaped (steps, features). Padding is masked, not packed: each sequence's state is read
at its own last token, and the backward direction of a bidirectional layer reads each sequence
reversed within its length. So extra padding never changes a prediction, and everything stays on
the device (no lengths copied to the host per batch, as pack_padded_sequence would need).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from dlx.errors import ConfigError

# torch.export (`dlx export`, format pt2) warns about nn.LSTM/GRU's cached flat weights; the
# exported program is right (a test loads it back), so the warning is only noise on the terminal
warnings.filterwarnings("ignore", message=r"The tensor attributes .*_flat_weights", category=UserWarning)


def sequence_input(spec, model: str) -> tuple[int, int]:
    """(steps, features per step) of the Spec's inputs, or a ConfigError naming the model."""
    if spec.vocab_size > 0 and len(spec.input_shape) == 1:
        return spec.input_shape[0], 0  # token ids: features come from the embedding
    if spec.vocab_size == 0 and len(spec.input_shape) == 2:
        return tuple(spec.input_shape)  # (steps, features) floats
    raise ConfigError(
        f"model={model} needs sequences: token ids (a text dataset such as imdb or "
        f"synthetic_sequence) or (steps, features) floats; the dataset gives "
        f"{tuple(spec.input_shape)}{' images' if len(spec.input_shape) == 3 else ''} with no "
        "sequence axis: pick model=cnn or mlp for it, or a sequence dataset"
    )


def lengths_of(x: torch.Tensor, tokens: bool) -> torch.Tensor:
    """Real length of each sequence: non-<pad> tokens, or all steps for float sequences."""
    if tokens:
        return (x != 0).sum(1).clamp_min(1)  # an all-padding row reads its first step
    return torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)


def reverse_within(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of h (batch, steps, features) within its length; padding stays last.
    Its own inverse."""
    steps = torch.arange(h.shape[1], device=h.device)
    idx = lengths[:, None] - 1 - steps[None, :]
    idx = torch.where(idx >= 0, idx, steps[None, :])  # padded positions map to themselves
    return h.gather(1, idx[:, :, None].expand(-1, -1, h.shape[2]))


class Recurrent(nn.Module):
    CELL = nn.RNN  # nn.RNN (tanh), nn.LSTM or nn.GRU

    def __init__(self, spec, embedding_dim=32, hidden_size=64, num_layers=1, bidirectional=False):
        super().__init__()
        name = type(self).__name__.lower()
        _, features = sequence_input(spec, name)
        if min(hidden_size, num_layers, embedding_dim) <= 0:
            raise ConfigError(f"model.hidden_size={hidden_size}, model.num_layers={num_layers} and "
                              f"model.embedding_dim={embedding_dim} must all be > 0")
        self.tokens = spec.vocab_size > 0
        self.embed = nn.Embedding(spec.vocab_size, embedding_dim, padding_idx=0) if self.tokens else None
        width = embedding_dim if self.tokens else features
        directions = 2 if bidirectional else 1
        self.layers = nn.ModuleList()
        for _ in range(num_layers):  # one single-layer module per direction, so padding can be masked
            self.layers.append(nn.ModuleList(
                [self.CELL(width, hidden_size, batch_first=True) for _ in range(directions)]))
            width = hidden_size * directions
        self.dropout = nn.Dropout(0.0)  # between layers and before the head (the dropout regularizer's)
        self.head = nn.Linear(width, spec.num_outputs)

    def forward(self, x):
        lengths = lengths_of(x, self.tokens)
        h = self.embed(x) if self.tokens else x
        for i, directions in enumerate(self.layers):
            if i:
                h = self.dropout(h)
            outs = [directions[0](h)[0]]
            if len(directions) == 2:
                outs.append(reverse_within(directions[1](reverse_within(h, lengths))[0], lengths))
            h = torch.cat(outs, dim=2)
        # the forward direction's state after the last real token; the backward one's after the first
        last = (lengths - 1)[:, None, None].expand(-1, 1, h.shape[2])
        forward_last = h.gather(1, last)[:, 0]
        if len(self.layers[-1]) == 2:
            half = h.shape[2] // 2
            forward_last = torch.cat([forward_last[:, :half], h[:, 0, half:]], dim=1)
        return self.head(self.dropout(forward_last))


class RNN(Recurrent):
    """Elman RNN (tanh), the source's `SimpleRNN`."""

    CELL = nn.RNN


class LSTM(Recurrent):
    CELL = nn.LSTM


class GRU(Recurrent):
    CELL = nn.GRU
