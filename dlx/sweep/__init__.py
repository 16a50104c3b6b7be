"""The sweep layer: `dlx train -m` as GridSearchCV, and sweeps that cost less than their points.

    session.py       one object per sweep: its parent run, progress, outcomes, the winner's refit
    points.py        the one function that trains a group of points: one Outcome per point
    group.py         group training: shared epoch prefixes, stacked lrs, cross-validation
    milestones.py    the shorter trainings inside a longer one (a group's points, CV's folds)
    cv.py            K-fold cross-validation of a group's networks; workers.py: its processes
    fused.py         whether lr points train as stacked copies
    sharing.py       which points share a training (the launchers' one grouping rule)
    launcher.py      dlx's Hydra launcher (in the sweep's process); ray_launcher.py: on Ray
    halving.py       sweep=halving; optuna_study.py: sweep=optuna (ask/tell, pruning)
    report.py        `dlx runs --best` (the ranking itself: dlx/tracking/ranking.py)
"""
