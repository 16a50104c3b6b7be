"""Datasets: config in, a Bundle of train/val/test tensors plus a Spec out (see loader.load)."""

from dlx.data.bundle import Bundle, Spec

__all__ = ["Bundle", "Spec"]
