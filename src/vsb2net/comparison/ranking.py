"""Many methods over many blocks: an omnibus test, pairwise tests and the critical-difference
diagram, from well-kept libraries (scipy's Friedman test, scikit-posthocs' pairwise Wilcoxon
signed-rank tests with Holm's correction and its critical-difference diagram).

A *block* is one independent comparison: a distinct unseen split (or one of the 45 pairs), on one
dataset and protocol.  Lengths of the same runs are not extra blocks.  Wilcoxon-Holm is preferred
to Nemenyi's mean-rank test when methods are few and blocks share data; the Nemenyi critical
difference is reported beside it for what it says about power (14 methods: about 7 ranks over 8
blocks, about 3 over 45).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import VsbError

#: the test level of every verdict
ALPHA = 0.05
#: the power at which the smallest detectable gap is stated
POWER = 0.8


def nemenyi_cd(k: int, n: int, alpha: float = ALPHA) -> float:
    """Nemenyi's critical difference of mean ranks for ``k`` methods over ``n`` blocks (Demšar 2006):
    q_alpha sqrt(k (k + 1) / (6 n)), q_alpha the studentized range quantile over sqrt(2)."""
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6 * n)))


def smallest_detectable_gap(diffs: np.ndarray, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest mean paired gap a two-sided paired t-test over these blocks detects with
    ``power``, given the spread of the observed gaps: (t_{1-alpha/2} + t_power) s / sqrt(n)."""
    diffs = np.asarray(diffs, dtype=np.float64)
    n = len(diffs)
    if n < 2:
        return math.inf
    t = stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)
    return float(t * diffs.std(ddof=1) / math.sqrt(n))


@dataclass
class Ranking:
    """The methods ranked over the blocks (rank 1: the highest score)."""

    methods: list[str]
    blocks: list[str]
    scores: np.ndarray                       # (blocks, methods)
    mean_ranks: dict[str, float]
    friedman_p: float
    #: Holm-corrected p-values of the pairwise Wilcoxon signed-rank tests
    pairwise_p: pd.DataFrame
    nemenyi_cd: float
    alpha: float = ALPHA
    notes: list[str] = field(default_factory=list)

    def differs(self, a: str, b: str) -> bool:
        return bool(self.friedman_p < self.alpha and self.pairwise_p.loc[a, b] < self.alpha)

    def diagram(self, path: str | Path, title: str = "") -> Path:
        """The critical-difference diagram (methods joined by a bar do not differ at alpha).  The
        drawing is not byte-stable across processes (the library's drawing order), so a file that
        already shows the same ranking (its key, kept in the PNG's text) is left as it is."""
        path = Path(path)
        sig = self.pairwise_p < self.alpha if self.friedman_p < self.alpha else self.pairwise_p < 0
        key = hashlib.sha256(json.dumps([title, self.alpha, {m: round(v, 6) for m, v in self.mean_ranks.items()},
                                         sig.values.tolist()], sort_keys=True).encode()).hexdigest()
        if path.is_file():
            from PIL import Image

            with Image.open(path) as old:
                if getattr(old, "text", {}).get("vsb2net-key") == key:
                    return path
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import scikit_posthocs as sp

        from ..io import atomic_path

        fig, ax = plt.subplots(figsize=(8, 0.35 * len(self.methods) + 1.2))
        p_values = self.pairwise_p if self.friedman_p < self.alpha else self.pairwise_p * 0 + 1
        sp.critical_difference_diagram(pd.Series(self.mean_ranks), p_values, ax=ax, alpha=self.alpha)
        ax.set_title(title, fontsize=10)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"vsb2net-key": key})
        plt.close(fig)
        return path


def rank_methods(scores: dict[str, dict[str, float]], alpha: float = ALPHA) -> Ranking:
    """``scores[method][block]``: every method needs a score on the same blocks (at least 3
    methods and 5 blocks: fewer cannot reach significance with these tests)."""
    methods = list(scores)
    blocks = sorted(set.intersection(*(set(s) for s in scores.values()))) if scores else []
    if len(methods) < 3 or len(blocks) < 5:
        raise VsbError(f"ranking {len(methods)} methods over {len(blocks)} common blocks: need at least 3 methods "
                       "and 5 blocks.")
    table = np.array([[scores[m][b] for m in methods] for b in blocks], dtype=np.float64)
    ranks = stats.rankdata(-table, axis=1)   # rank 1 = best; ties share their mean rank
    mean_ranks = dict(zip(methods, ranks.mean(0).tolist()))
    friedman = stats.friedmanchisquare(*table.T)
    import scikit_posthocs as sp

    pairwise = sp.posthoc_wilcoxon([table[:, j] for j in range(len(methods))], p_adjust="holm",
                                   zero_method="zsplit")
    pairwise.index = pairwise.columns = methods
    return Ranking(methods, blocks, table, mean_ranks, float(friedman.pvalue), pairwise,
                   nemenyi_cd(len(methods), len(blocks), alpha), alpha)
