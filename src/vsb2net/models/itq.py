"""ITQ baseline: PCA of classifier features to K dimensions, then the ITQ rotation.

Reference checked by tests/test_baselines.py::test_itq_rotation_is_orthogonal_and_lowers_quantisation_error and
tests/test_loss_references.py::test_itq_rotation_is_the_procrustes_solution_for_its_codes: Gong &
Lazebnik, CVPR 2011, Section 2 (centred data, PCA, then B = sgn(V R) and R from the SVD of B^T V in
turn, an orthogonal Procrustes problem); reference implementation: the authors' ITQ.m (Yunchao Gong),
republished in willard-yuan/hashing-baseline-for-image-retrieval, ITQ.m (sign(0) -> +1, R from the
SVD of B^T V, as ``itq_rotation``); the test takes the rotation's fixed point from scipy's
``orthogonal_procrustes`` and the PCA span from an eigendecomposition.
"""
from __future__ import annotations

import numpy as np

from .base import METHODS
from .feature_hashing import FeatureHashing, itq_rotation, pca_directions
from .relations import ClassContext


@METHODS.register("itq", help="PCA + iterative quantisation of seen-class classifier features")
class ITQ(FeatureHashing):
    paper = ("Gong, Lazebnik: Iterative Quantization: A Procrustean Approach to Learning Binary Codes, CVPR 2011 "
             "(on a seen-class classifier's features)")
    def fit_projection(self, centred: np.ndarray, y: np.ndarray, ctx: ClassContext) -> np.ndarray:
        pca = pca_directions(centred, self.cfg.bits)
        return pca @ itq_rotation(centred @ pca)
