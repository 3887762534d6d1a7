"""Linear zero-shot hashing on fixed features, in the spirit of TSK/ZSH (Yang et al., ACM MM 2016).

Features of a classifier trained on the seen classes are mapped to the class-semantic space by
ridge regression onto the word vectors of their labels (the alignment), and the semantic
embedding is binarised by PCA + ITQ rotation.  A class vector is coded by the same projection,
so classes can be coded too (zero-shot classification, search by class name).  Our simplification:
when K exceeds the semantic dimension D, the K - D remaining bits are random projections of the
embedding (PCA has only D directions).

Reference checked by tests/test_loss_references.py::test_tsk_aligns_features_to_the_label_vectors_by_ridge_regression:
Yang et al., ACM MM 2016 (arXiv 1606.05032), in spirit only: its alignment of visual features to the
labels' word vectors is here a ridge regression (the test solves it independently, as a least-squares
problem), followed by PCA + ITQ; no public reference implementation by the authors found
(shubhampachori12110095/Zero-Shot-Hashing-via-Transferring-Supervised-Knowledge, main.m, a
third-party MATLAB version, optimises the paper's full objective with a rotation on the Stiefel
manifold and kernel hash functions: not the form here).
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import ModelConfig
from .base import METHODS
from .feature_hashing import FeatureHashing, itq_rotation, pca_directions
from .relations import ClassContext


@METHODS.register("tsk", help="TSK/ZSH-style: features -> semantic space (ridge), then PCA+ITQ")
class TSK(FeatureHashing):
    codes_classes = True
    family = "zero-shot"
    paper = "Yang et al.: Zero-Shot Hashing via Transferring Supervised Knowledge, ACM MM 2016"
    ridge = 1.0
    to_semantic: torch.Tensor
    semantic_mean: torch.Tensor
    semantic_projection: torch.Tensor

    def __init__(self, cfg: ModelConfig, in_shape: tuple[int, ...], semantic_dim: int) -> None:
        super().__init__(cfg, in_shape, semantic_dim)
        self.register_buffer("to_semantic", torch.zeros(self.backbone.out_dim, semantic_dim))
        self.register_buffer("semantic_mean", torch.zeros(semantic_dim))
        self.register_buffer("semantic_projection", torch.zeros(semantic_dim, cfg.bits))

    def fit_projection(self, centred: np.ndarray, y: np.ndarray, ctx: ClassContext) -> np.ndarray:
        vectors = ctx.vectors[: ctx.n_train].cpu().double().numpy()
        # a multi-label item's target is the mean vector of its labels
        targets = (y / y.sum(1, keepdims=True)) @ vectors if y.ndim == 2 else vectors[y]
        d = centred.shape[1]
        w = np.linalg.solve(centred.T @ centred + self.ridge * len(centred) * np.eye(d) / d, centred.T @ targets)
        emb = centred @ w
        emb_mean = emb.mean(0)
        emb_c = emb - emb_mean
        k_pca = min(self.cfg.bits, emb.shape[1])
        pca = pca_directions(emb_c, k_pca)
        proj = pca @ itq_rotation(emb_c @ pca)
        if self.cfg.bits > k_pca:
            rng = np.random.default_rng(99)
            proj = np.hstack([proj, rng.normal(size=(emb.shape[1], self.cfg.bits - k_pca))])
        self.to_semantic.copy_(torch.from_numpy(w).float())
        self.semantic_mean.copy_(torch.from_numpy(emb_mean).float())
        self.semantic_projection.copy_(torch.from_numpy(proj).float())
        # image code = ((f - mean) W - emb_mean) P; expressed through the semantic buffers below
        return np.zeros((d, self.cfg.bits))

    def hash_images(self, x: torch.Tensor) -> torch.Tensor:
        emb = (self.backbone(x) - self.mean) @ self.to_semantic
        return (emb - self.semantic_mean) @ self.semantic_projection

    def hash_classes(self, vectors: torch.Tensor) -> torch.Tensor:
        return (vectors - self.semantic_mean) @ self.semantic_projection
