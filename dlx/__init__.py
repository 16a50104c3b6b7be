"""dlx: config-driven deep-learning experiments (Hydra for config, PyTorch to train, MLflow to record)."""

__version__ = "0.1.0"


def load_model(run: str, uri: str | None = None):
    """The trained network of a dlx run (its MLflow run id, run name or output dir), in eval mode:

        import dlx
        model = dlx.load_model("4018a98e93894e839aca776de57a654f")

    dlx's one-line `mlflow.pytorch.load_model`: the network is rebuilt from dlx's code and the
    run's model config, and its weights read with torch.load(weights_only=True), so no pickled
    code runs. `uri`: the tracking store (default $MLFLOW_TRACKING_URI, else ./mlflow.db)."""
    from dlx.inference import load_model as load

    return load(run, uri)
