"""conf/tracking: where runs are recorded (dlx/tracking/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from dlx.config.fields import non_negative, path


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: Optional[str] = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db where dlx started
    experiment: str = "dlx"
    log_model: bool = True  # the trained weights and what rebuilds the network (dlx.load_model)
    system_metrics: bool = True  # MLflow's CPU, memory and GPU metrics while the run trains
    # seconds a tracking server that stops answering is waited for (a restart takes ~10 s) before
    # the run's records go to the spool; 0: straight to the spool
    outage_wait: float = non_negative(60.0)
    spool: str = path(".dlx-spool")  # where they go (relative to where dlx started); `dlx sync`


OPTIONS = {"default": TrackingConfig}
