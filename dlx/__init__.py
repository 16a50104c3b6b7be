"""dlx: config-driven deep-learning experiments (Hydra for config, PyTorch to train, MLflow to record)."""

__version__ = "0.1.0"
