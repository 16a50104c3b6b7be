"""conf/tracking: where runs are recorded (dlx/tracking/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: Optional[str] = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db where dlx started
    experiment: str = "dlx"
    log_model: bool = True  # the trained weights and what rebuilds the network (dlx.load_model)
    system_metrics: bool = True  # MLflow's CPU, memory and GPU metrics while the run trains


OPTIONS = {"default": TrackingConfig}
