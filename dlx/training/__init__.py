"""Training: device choice, losses and metrics, and the fit loop."""
