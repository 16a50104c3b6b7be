"""The tasks a run can be, and the metrics each one logs: facts that config checks (which
trainer.monitor values exist), evaluation and reports all read. A leaf: no torch, no dlx imports."""

from __future__ import annotations

# per task, the metrics evaluate() computes besides the loss (dlx/training/evaluation.py)
TASK_METRICS = {
    "regression": ("mse", "mae", "r2"),
    "reconstruction": ("mse", "mae"),  # the reconstruction error, per pixel/feature
    "binary": ("accuracy",),
    "multiclass": ("accuracy",),
    "classification": ("accuracy",),  # a CSV's task before its classes are counted
}
CLASSIFICATION = ("binary", "multiclass", "classification")


def metric_names(task: str) -> tuple[str, ...]:
    """The metrics a `task` run logs per split, e.g. ("loss", "accuracy"): val_loss, test_loss..."""
    return ("loss", *TASK_METRICS[task])


def headline(task: str) -> str:
    """The one metric that sums a finished run up: accuracy, r2 or mse."""
    return {"regression": "r2", "reconstruction": "mse"}.get(task, "accuracy")
