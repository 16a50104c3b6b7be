"""What a run measures, without torch: the steps in an epoch, and scikit-learn's classification
report and confusion matrix. The training process, the tracking writer and `dlx eval` all read
these, so each rule has this one home (the metric names each task logs: dlx/tasks.py)."""

from __future__ import annotations

import math

def steps_per_epoch(n: int, batch_size: int, ranks: int = 1) -> int:
    """Optimizer steps in one epoch over n rows. A last batch of 1 row (batch norm cannot train on
    it), or with fewer rows than DDP ranks (one would get none), joins the batch before it."""
    steps = math.ceil(n / batch_size)
    if n > batch_size and 0 < n % batch_size < max(ranks, 2):
        steps -= 1
    return steps


def classification_report(target, pred, class_names) -> dict:
    """scikit-learn's classification report (per class precision/recall/F1) as a dict, from
    integer class arrays."""
    from sklearn.metrics import classification_report as report

    labels = list(range(len(class_names))) if class_names else None
    return report(target, pred, labels=labels, target_names=list(class_names) or None,
                  output_dict=True, zero_division=0)


def confusion_matrix(target, pred, class_names) -> dict:
    """scikit-learn's confusion matrix as JSON: rows are true classes, columns predicted ones."""
    from sklearn.metrics import confusion_matrix as cm

    labels = list(range(len(class_names) or int(max(target.max(), pred.max()) + 1)))
    names = list(class_names) or [str(i) for i in labels]
    return {"labels": names, "matrix": cm(target, pred, labels=labels).tolist(),
            "rows": "true class", "columns": "predicted class"}
