"""ITQ baseline: PCA of classifier features to K dimensions, then the ITQ rotation."""
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
