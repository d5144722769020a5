"""Selection to a budget: rank by a quality score, keep diversity with embedding clusters.

`clusters` (the default) k-means the candidates' embeddings into k groups (k = sqrt(target) unless set) and
shares the budget evenly between them, water-filling: a group smaller than its share gives the rest to the
others. Within a group the best-scored rows are taken. So one over-represented topic cannot fill the budget
with its own best rows, while every kept row is still among the best of its topic (the spirit of Deita's
score-first, diversity-aware selection, without its quadratic distance filter). `none` keeps the best-scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sftkit.curate.embed import kmeans


@dataclass
class Selection:
    kept: list[int]  # candidate indices, ascending
    why: dict[int, str] = field(default_factory=dict)  # every candidate -> why it was kept or not
    num_clusters: int = 1
    cluster_sizes: list[int] = field(default_factory=list)
    quotas: list[int] = field(default_factory=list)


def water_fill(sizes: list[int], budget: int) -> list[int]:
    """Per-group quotas summing to min(budget, sum(sizes)), as even as the group sizes allow."""
    quotas = [0] * len(sizes)
    remaining = budget
    order = sorted(range(len(sizes)), key=lambda g: (sizes[g], g))
    for position, group in enumerate(order):
        left = len(order) - position
        quotas[group] = min(sizes[group], remaining // left if left > 1 else remaining)
        remaining -= quotas[group]
    return quotas


def select(rank_scores: np.ndarray, shown_scores: np.ndarray, target: int, vectors: np.ndarray | None = None,
           num_clusters: int | None = None, seed: int = 0, score_name: str = "score") -> Selection:
    """Choose `target` of the candidates.

    Args:
        rank_scores: higher ranks first (ties go to the earlier candidate).
        shown_scores: the score quoted in explanations (may differ from `rank_scores`, e.g. IFD >= 1).
        vectors: L2-normalised embeddings for cluster balancing; None ranks by score alone.
    """
    n = len(rank_scores)
    if vectors is None:
        labels = np.zeros(n, dtype=np.int64)
        k = 1
    else:
        k = num_clusters or max(1, round(math.sqrt(target)))
        labels = kmeans(vectors, k, seed)
        k = int(labels.max()) + 1
    groups = [np.nonzero(labels == g)[0] for g in range(k)]
    groups = [sorted(g.tolist(), key=lambda i: (-rank_scores[i], i)) for g in groups]
    sizes = [len(g) for g in groups]
    quotas = water_fill(sizes, target)
    kept, why = [], {}
    for g, members in enumerate(groups):
        where = f" in cluster {g} ({sizes[g]} rows, quota {quotas[g]})" if k > 1 else f" of {n}"
        for rank, i in enumerate(members, start=1):
            text = f"{score_name} {shown_scores[i]:.4g}, rank {rank}{where}"
            if rank <= quotas[g]:
                kept.append(i)
                why[i] = "kept: " + text
            else:
                why[i] = "not selected: " + text + " is beyond the quota"
    return Selection(sorted(kept), why, k, sizes, quotas)
