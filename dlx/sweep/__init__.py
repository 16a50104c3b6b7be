"""Sweeps: `dlx train -m` as GridSearchCV, and sweeps that cost less than their points.

    callback.py  one parent MLflow run per multirun, the children nested under it
    report.py    `dlx runs --best` (the ranking: dlx/tracking/ranking.py)
    prefix.py    points that differ only in trainer.epochs share one training
    launcher.py  dlx's Hydra launcher: runs the points, sharing what can be shared
"""
