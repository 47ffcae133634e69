"""The feature API under the name first planned for it; `compute.py` holds the code."""

from pipeline.features.compute import (
    compute_features,
    compute_market_features,
    feature_names,
    market_factor_frame,
)

__all__ = ["compute_features", "compute_market_features", "feature_names", "market_factor_frame"]
