"""LSH baseline: random Gaussian projections of centred classifier features (Charikar 2002)."""
from __future__ import annotations

import numpy as np

from .base import METHODS
from .feature_hashing import FeatureHashing
from .relations import ClassContext


@METHODS.register("lsh", help="random projections of seen-class classifier features (unsupervised reference)")
class LSH(FeatureHashing):
    paper = ("Charikar: Similarity Estimation Techniques from Rounding Algorithms, STOC 2002 "
             "(on a seen-class classifier's features)")
    def fit_projection(self, centred: np.ndarray, y: np.ndarray, ctx: ClassContext) -> np.ndarray:
        rng = np.random.default_rng(1234 + self.cfg.bits)
        return rng.normal(size=(centred.shape[1], self.cfg.bits))
