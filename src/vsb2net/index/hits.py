"""``Hits``: what a search returns for one query, nearest first (ids, distances, metadata, and for a
search with tie groups the scores and each distance's count)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Hits:
    """The hits of one query, nearest first: ``ids``, ``distances`` and ``metadata`` align.

    ``scores`` (asymmetric search only): each hit's inner product with the query's real-valued code,
    the order within a distance.  ``groups`` (asymmetric or ``ties=True`` search): distance -> how
    many items the index holds at that distance, for every distance up to the last hit's (a range
    search: up to the radius); ``groups_exact`` is False when the last distance held more items than
    the search counted (``max_ties``), so its count is a lower bound.
    """

    ids: np.ndarray                      # int64
    distances: np.ndarray                # int32
    positions: np.ndarray                # int64, insertion positions inside the index
    metadata: list = field(default_factory=list)
    scores: np.ndarray | None = None     # float32, asymmetric search only
    groups: dict[int, int] | None = None
    groups_exact: bool = True

    def __len__(self) -> int:
        return len(self.ids)

    def first(self, k: int) -> Hits:
        """The first k hits (the tie-group counts stay: they count the index, not the list)."""
        if len(self) <= k:
            return self
        return Hits(self.ids[:k], self.distances[:k], self.positions[:k], self.metadata[:k],
                    None if self.scores is None else self.scores[:k], self.groups, self.groups_exact)

    def tie_groups(self) -> list[dict]:
        """One entry per distance among the hits, nearest first: how many items the index holds at
        that distance (``count``; a lower bound where ``exact`` is false) and how many are listed
        (``shown``).  Without counted groups (a plain search) the listed ones are all it knows."""
        shown: dict[int, int] = {}
        for d in self.distances.tolist():
            shown[d] = shown.get(d, 0) + 1
        groups = self.groups or {}
        last = max(shown) if shown else None
        return [{"distance": d, "count": int(groups.get(d, n)), "shown": n,
                 "exact": bool(self.groups is not None and (self.groups_exact or d != last))}
                for d, n in shown.items()]

    def rows(self) -> list[dict]:
        out = [{"rank": i + 1, "id": int(self.ids[i]), "distance": int(self.distances[i]),
                "metadata": self.metadata[i]} for i in range(len(self))]
        if self.scores is not None:
            for row, s in zip(out, self.scores.tolist()):
                row["score"] = round(s, 4)
        return out
