"""Linear and logistic regression: a single dense layer over the flattened input."""

from __future__ import annotations

import math

from torch import nn

from dlx.errors import ConfigError


class Linear(nn.Module):
    """One dense layer, no activation. Regression: 1 unit trained with MSE."""

    def __init__(self, spec):
        super().__init__()
        if spec.vocab_size:
            raise ConfigError("model=linear/logistic needs numeric features, the dataset gives token "
                              "ids: use model=rnn, lstm, gru or transformer")
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(math.prod(spec.input_shape), spec.num_outputs)

    def forward(self, x):
        return self.fc(self.flatten(x))


class Logistic(Linear):
    """Dense + sigmoid (binary) or softmax (multiclass); the squashing lives in the loss."""

    def __init__(self, spec):
        if not spec.is_classification:
            raise ConfigError(
                f"model=logistic needs a classification dataset, this one is {spec.task}; "
                "use model=linear for regression"
            )
        super().__init__(spec)
