"""LSH baseline: random Gaussian projections of centred classifier features (Charikar 2002).

Reference checked by tests/test_loss_references.py::test_lsh_bits_disagree_in_proportion_to_the_angle:
Charikar, STOC 2002, random-hyperplane hashing (a bit sign(r . x) with Gaussian r differs between x
and y with probability theta(x, y) / pi; there is no loss to fit); reference implementation:
willard-yuan/hashing-baseline-for-image-retrieval, LSH/trainLSH.m and LSH/compressLSH.m (Gaussian
projections, bit = [x w > 0]), a common baseline; here the projections act on centred features.
"""
from __future__ import annotations

import numpy as np

from .base import METHODS
from .feature_hashing import FeatureHashing
from .relations import ClassContext


@METHODS.register("lsh", help="random projections of a seen-class classifier's (supervised) features")
class LSH(FeatureHashing):
    paper = ("Charikar: Similarity Estimation Techniques from Rounding Algorithms, STOC 2002 "
             "(on a seen-class classifier's features)")
    def fit_projection(self, centred: np.ndarray, y: np.ndarray, ctx: ClassContext) -> np.ndarray:
        rng = np.random.default_rng(1234 + self.cfg.bits)
        return rng.normal(size=(centred.shape[1], self.cfg.bits))
