"""Training: optimizer, regularizers, schedules, the fit loop, evaluation, checkpoints.
(Importing the package imports nothing heavy: metrics.py is read without torch.)"""
