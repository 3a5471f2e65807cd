"""Gradient-boosted trees for the offline judge's stacked heads, stored as plain arrays.

scikit-learn fits them (`HistGradientBoostingRegressor`); their nodes are then copied into
arrays saved with safetensors and evaluated here in numpy, so a judge folder holds no pickle
and loads under any scikit-learn version. `fit_forest` checks the copy predicts what the fitted
model predicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

FIELDS = ("feature", "threshold", "left", "right", "leaf", "missing_left", "value", "starts",
          "baseline")
SETTINGS = {"max_iter": 500, "learning_rate": 0.03, "max_leaf_nodes": 15,
            "min_samples_leaf": 20, "l2_regularization": 1.0}


@dataclass(frozen=True)
class Forest:
    """Every tree's nodes end to end; tree t owns nodes starts[t]..starts[t+1]-1 and its child
    indices are local to it."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray
    missing_left: np.ndarray
    value: np.ndarray
    starts: np.ndarray
    baseline: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        """[n] predictions for [n, features] inputs, as the fitted regressor gives them."""
        x = np.asarray(x, dtype=np.float64)
        out = np.full(len(x), self.baseline)
        rows = np.arange(len(x))
        for t in range(len(self.starts) - 1):
            s = int(self.starts[t])
            node = np.zeros(len(x), dtype=np.int64)
            live = ~self.leaf[s + node]
            while live.any():
                i, n = rows[live], s + node[live]
                v = x[i, self.feature[n]]
                go_left = np.where(np.isnan(v), self.missing_left[n], v <= self.threshold[n])
                node[live] = np.where(go_left, self.left[n], self.right[n])
                live[i] = ~self.leaf[s + node[i]]
            out += self.value[s + node]
        return out

    def tensors(self, prefix: str) -> dict[str, Tensor]:
        arrays = {k: np.asarray(getattr(self, k)) for k in FIELDS if k != "baseline"}
        arrays["baseline"] = np.array([self.baseline])
        return {f"{prefix}.{k}": torch.from_numpy(np.ascontiguousarray(v))
                for k, v in arrays.items()}

    @classmethod
    def from_tensors(cls, state: dict[str, Tensor], prefix: str) -> Forest:
        a = {k: state[f"{prefix}.{k}"].numpy() for k in FIELDS}
        return cls(a["feature"], a["threshold"], a["left"], a["right"], a["leaf"].astype(bool),
                   a["missing_left"].astype(bool), a["value"], a["starts"],
                   float(a["baseline"][0]))


def fit_forest(x: np.ndarray, y: np.ndarray, seed: int = 0,
               weight: np.ndarray | None = None) -> Forest:
    """Fit on finite targets (each row weighted by `weight`, if given), copy the trees out,
    and check the copy agrees."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(**SETTINGS, random_state=seed)
    model.fit(x, y, sample_weight=weight)
    nodes = [tree[0].nodes for tree in model._predictors]
    if any(n["is_categorical"].any() for n in nodes):
        raise ValueError("categorical splits are not supported")
    cat = np.concatenate
    forest = Forest(
        feature=cat([n["feature_idx"] for n in nodes]).astype(np.int64),
        threshold=cat([n["num_threshold"] for n in nodes]).astype(np.float64),
        left=cat([n["left"] for n in nodes]).astype(np.int64),
        right=cat([n["right"] for n in nodes]).astype(np.int64),
        leaf=cat([n["is_leaf"] for n in nodes]).astype(bool),
        missing_left=cat([n["missing_go_to_left"] for n in nodes]).astype(bool),
        value=cat([n["value"] for n in nodes]).astype(np.float64),
        starts=np.cumsum([0] + [len(n) for n in nodes]).astype(np.int64),
        baseline=float(np.ravel(model._baseline_prediction)[0]))
    check = x[: min(len(x), 256)]
    if not np.allclose(forest.predict(check), model.predict(check), atol=1e-6):
        raise RuntimeError("the copied trees disagree with scikit-learn's; its tree layout "
                           "may have changed")
    return forest
