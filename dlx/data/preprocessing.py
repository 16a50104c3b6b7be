"""The CSV dataset's preprocessing, as a scikit-learn Pipeline fitted on the train rows only:
outlier fences (clip to mean +- z*std, or Tukey's IQR fences), missing-value filling (mean,
median, most frequent, interpolation), scaling (min-max, z-score), one-hot text columns and
feature selection (variance, k best by mutual information); `describe` turns the fitted
Pipeline into JSON (preprocessing.json, logged with the run)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin


class Fences(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Per-column outlier fences learned from the rows it is fitted on (missing values ignored);
    transform clips values to them. zscore: mean +- factor*std; iqr: Q1 - factor*IQR and
    Q3 + factor*IQR (Tukey's fences)."""

    def __init__(self, method: str = "zscore", factor: float = 3.0):
        self.method, self.factor = method, factor

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=float)
        if self.method == "iqr":
            q1, q3 = np.nanquantile(X, 0.25, axis=0), np.nanquantile(X, 0.75, axis=0)
            self.lower_, self.upper_ = q1 - self.factor * (q3 - q1), q3 + self.factor * (q3 - q1)
        else:
            mean, std = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
            self.lower_, self.upper_ = mean - self.factor * std, mean + self.factor * std
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        return np.clip(np.asarray(X, dtype=float), self.lower_, self.upper_)

    def inside(self, X) -> np.ndarray:
        """Rows whose every present value lies within the fences."""
        X = np.asarray(X, dtype=float)
        return (np.isnan(X) | ((X >= self.lower_) & (X <= self.upper_))).all(axis=1)


def interpolate(X):
    """Linear interpolation down each column, in file order (pandas' DataFrame.interpolate)."""
    return pd.DataFrame(np.asarray(X, dtype=float)).interpolate(limit_direction="both").to_numpy()


def pipeline(cfg, numeric: list[str], categorical: list[str], task: str, fences):
    """The scikit-learn Pipeline the config describes: numbers clipped to the outlier fences,
    imputed and scaled, text columns imputed and one-hot encoded, then feature selection.
    IQR fences come fitted already (they chose the train rows): frozen, not refitted."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_selection import (
        SelectKBest,
        VarianceThreshold,
        mutual_info_classif,
        mutual_info_regression,
    )
    from sklearn.frozen import FrozenEstimator
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (
        FunctionTransformer,
        MinMaxScaler,
        OneHotEncoder,
        StandardScaler,
    )

    num = []
    if fences is not None:
        num.append(("clip", FrozenEstimator(fences) if cfg.outliers == "iqr" else fences))
    if cfg.missing == "interpolate":  # then the train mean fills what interpolation cannot
        num.append(("interpolate", FunctionTransformer(interpolate, feature_names_out="one-to-one")))
    strategy = cfg.missing if cfg.missing in ("mean", "median", "most_frequent") else "mean"
    num.append(("impute", SimpleImputer(strategy=strategy, keep_empty_features=True)))
    if cfg.scaling != "none":
        num.append(("scale", MinMaxScaler() if cfg.scaling == "minmax" else StandardScaler()))
    cat = [("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True)),
           ("one_hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]
    columns = ColumnTransformer([("num", Pipeline(num), numeric), ("cat", Pipeline(cat), categorical)],
                                verbose_feature_names_out=False)
    if cfg.feature_selection == "variance":
        select = VarianceThreshold(cfg.variance_threshold)
    elif cfg.feature_selection == "kbest":
        score = mutual_info_regression if task == "regression" else mutual_info_classif
        select = SelectKBest(functools.partial(score, random_state=cfg.split_seed), k=cfg.k_best)
    else:
        select = "passthrough"
    return Pipeline([("columns", columns), ("select", select)])


def describe(pipe, cfg, numeric, categorical, names, classes, task) -> dict:
    """The fitted preprocessing as JSON: what each step learned from the train rows."""
    num = pipe.named_steps["columns"].named_transformers_["num"].named_steps
    cat = pipe.named_steps["columns"].named_transformers_["cat"].named_steps
    per = lambda values: {c: float(v) for c, v in zip(numeric, values)}  # noqa: E731
    out = {"path": str(cfg.path), "target": cfg.target, "task": task, "classes": list(classes),
           "numeric_columns": numeric, "categorical_columns": categorical, "features": names,
           "missing": cfg.missing, "outliers": cfg.outliers, "scaling": cfg.scaling,
           "feature_selection": cfg.feature_selection, "fitted": {}}
    fitted = out["fitted"]
    if numeric:
        fitted["impute"] = per(num["impute"].statistics_)
    if "clip" in num:  # values outside are clipped; with iqr, train rows outside were dropped
        fitted["fences"] = {c: [float(lo), float(hi)] for c, lo, hi
                            in zip(numeric, num["clip"].lower_, num["clip"].upper_)}
    if "scale" in num and cfg.scaling == "standard":
        fitted["scale"] = {"mean": per(num["scale"].mean_), "std": per(num["scale"].scale_)}
    elif "scale" in num:
        fitted["scale"] = {"min": per(num["scale"].data_min_), "max": per(num["scale"].data_max_)}
    if categorical:
        fitted["impute_categorical"] = {c: str(v) for c, v in zip(categorical, cat["impute"].statistics_)}
        fitted["one_hot"] = {c: [str(v) for v in cats]
                             for c, cats in zip(categorical, cat["one_hot"].categories_)}
    if cfg.feature_selection != "none":
        fitted["selected"] = names
    return out
