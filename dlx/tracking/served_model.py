"""The code of the MLflow model `dlx export` logs (MLflow's "models from code"): MLflow copies
this file into the model and runs it to load the model. The model is dlx.tracking.pyfunc's
DlxModel, from the dlx installed where the model is loaded."""

import mlflow.models

from dlx.tracking.pyfunc import DlxModel

mlflow.models.set_model(DlxModel())
