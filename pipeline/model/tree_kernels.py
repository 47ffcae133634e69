"""The boosting scorer's two loops over its trees, compiled with numba (`pipeline.model.trees`
holds the arrays; it imports this module when a prediction is made, so numba loads then)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def raw(x, feature, threshold, missing_left, left, right, leaf, value, offsets, baseline):
    """baseline + Σ over trees of the leaf value each row reaches."""
    out = np.full(x.shape[0], baseline)
    for t in range(len(offsets) - 1):
        base = offsets[t]
        for i in range(x.shape[0]):
            node = base
            while not leaf[node]:
                v = x[i, feature[node]]
                go_left = missing_left[node] if np.isnan(v) else v <= threshold[node]
                node = base + (left[node] if go_left else right[node])
            out[i] += value[node]
    return out


@njit(cache=True)
def credits(row, feature, threshold, missing_left, left, right, leaf, value, offsets, n):
    """Per feature, the change of node value along each tree's path (Saabas)."""
    out = np.zeros(n)
    for t in range(len(offsets) - 1):
        base = offsets[t]
        node = base
        while not leaf[node]:
            v = row[feature[node]]
            go_left = missing_left[node] if np.isnan(v) else v <= threshold[node]
            child = base + (left[node] if go_left else right[node])
            out[feature[node]] += value[child] - value[node]
            node = child
    return out
