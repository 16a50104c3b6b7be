"""dlx: config-driven deep-learning experiments (Hydra for config, PyTorch to train, MLflow to record).

    import dlx
    result = dlx.train("model=mlp", "trainer.epochs=5")    # `dlx train ...`: one run, a Result
    found = dlx.sweep("optimizer.lr=0.01,0.1")             # `dlx train -m ...`: a Sweep
    model = dlx.load_model(result.run_id)                  # the trained network

Errors are dlx's own types (DlxError and its kinds), each with the line `dlx train` prints;
Ctrl-C raises dlx.Interrupted once the runs it reached have ended KILLED (dlx/api.py).
"""

__version__ = "0.1.0"

# Light imports: torch, Hydra and mlflow come when a run starts. `dlx.sweep` is the function: the
# sweep layer's package (dlx/sweep/) is imported first, so that importing it later never rebinds
# the name (code reaches the package with `from dlx.sweep import ...` / `from dlx.sweep.x ...`).
from dlx import sweep as _layer  # noqa: I001 - first, see above
from dlx.api import Sweep, sweep, train
from dlx.errors import ConfigError, DataError, DlxError, TrainingError
from dlx.interrupts import Interrupted
from dlx.runtime import Result

del _layer


def load_model(run: str, uri: str | None = None):
    """The trained network of a dlx run (its MLflow run id, run name or output dir), in eval mode:

        import dlx
        model = dlx.load_model("4018a98e93894e839aca776de57a654f")

    dlx's one-line `mlflow.pytorch.load_model`: the network is rebuilt from dlx's code and the
    run's model config, and its weights read with torch.load(weights_only=True), so no pickled
    code runs. `uri`: the tracking store (default $MLFLOW_TRACKING_URI, else ./mlflow.db)."""
    from dlx.inference import load_model as load

    return load(run, uri)


__all__ = ["train", "sweep", "load_model", "Result", "Sweep", "DlxError", "ConfigError",
           "DataError", "TrainingError", "Interrupted", "__version__"]
