"""A dlx run as an MLflow pyfunc model, the one `dlx export` logs: MLflow's serving (`mlflow
models serve`, `build-docker`), its model registry and `mlflow.pyfunc.load_model` in a batch job
take the run's raw inputs and answer exactly as `dlx predict` does, because the model is dlx's
own predict path (dlx.predictor.Predictor) over what the run logged.

The model is logged as code (MLflow's "models from code"): served_model.py, three lines that
hand MLflow a `DlxModel`; nothing of it is cloudpickled. What it carries, as one artifact
folder `dlx`: the network as dlx keeps it (model/weights.pt, read with
torch.load(weights_only=True), and model.json, which rebuilds it under the trust rule), the
dataset's fitted artifacts (vocab.json, preprocessing.json, and for CSV runs
preprocessing.joblib, a pickle loaded only where dlx's pickle policy allows it) and
serving.json (the run's dataset config). Its signature is the run's raw input and the columns of
`dlx predict`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

ARTIFACT = "dlx"  # the model's artifact folder: context.artifacts["dlx"]
CODE = Path(__file__).with_name("served_model.py")  # the model's code file


class InputError(MlflowException):
    """A bad input: MLflow's 400 (INVALID_PARAMETER_VALUE) whose message is the one line dlx
    wrote. MLflow's scoring server rewrites the message of an MlflowException raised by predict
    to `Failed to predict data '<the whole input>'. \\nError: <message>`; this one keeps its
    line, so that a client reads what is wrong and the input is not echoed back."""

    def __init__(self, line: str):
        self._line = line
        super().__init__(line, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._line

    @message.setter
    def message(self, value: str) -> None:  # MLflow's rewrite (and __init__'s own) are ignored
        pass


class DlxModel(mlflow.pyfunc.PythonModel):
    """The served model: raw inputs in, `dlx predict`'s prediction columns out (without the
    column that names each input)."""

    def load_context(self, context) -> None:
        from dlx import predictor
        from dlx.errors import DlxError
        from dlx.tracking import pickles_trusted

        try:
            self.predictor = predictor.load_served(Path(context.artifacts[ARTIFACT]),
                                                   pickles_trusted())
        except DlxError as e:  # the trust rule, the pickle policy: one line where it is loaded
            raise MlflowException(str(e)) from None
        self.columns = list(predictor.columns(self.predictor.spec))

    # model_input is a DataFrame, or an np.ndarray for image and custom runs (their signature
    # is a tensor): the annotation only tells MLflow, which infers no schema from these types,
    # that the model's signature is given, not to be inferred from type hints
    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None):
        from dlx.errors import DataError

        try:
            _, rows = self.predictor.answer(model_input)
        except DataError as e:
            raise InputError(str(e)) from None
        return pd.DataFrame(rows, columns=self.columns)


def signature(inputs: dict, outputs: dict[str, str]):
    """The model's signature: `inputs` as the dataset encoder describes what it reads in memory
    (registry.Encoder.inputs), `outputs` the prediction's columns (predictor.columns). Input
    columns are optional for MLflow, so that a missing one reaches dlx's check, whose one line
    names it and the columns the run was trained on."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema, TensorSpec

    if "columns" in inputs:
        given = Schema([ColSpec(t, name, required=False) for name, t in inputs["columns"].items()])
    else:
        given = Schema([TensorSpec(np.dtype(inputs["tensor"]), tuple(inputs["shape"]))])
    answer = Schema([ColSpec(Array(DataType.double) if t == "double[]" else t, name)
                     for name, t in outputs.items()])
    return ModelSignature(given, answer)
