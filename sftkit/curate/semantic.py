"""Semantic duplicates: rows whose sentence embeddings have cosine similarity >= a threshold.

All-pairs comparison is quadratic, so rows are first split by k-means into groups of about `cluster_size`
and compared exhaustively only within a group (SemDeDup, Abbas et al., 2023). Near-identical meanings land in
the same group almost always; a pair split across two groups is missed, which costs recall, never precision.
"""

from __future__ import annotations

import math

import numpy as np

from sftkit.curate.dedup import Links, NearDuplicates
from sftkit.curate.embed import kmeans


def semantic_duplicates(vectors: np.ndarray, preference: np.ndarray, threshold: float, cluster_size: int,
                        seed: int) -> NearDuplicates:
    """Clusters of rows (indices into `vectors`) linked by cosine >= `threshold`; the preferred row is kept.

    Args:
        vectors: L2-normalised embeddings.
        preference: higher is better; ties go to the earlier row.
    """
    n = len(vectors)
    groups = kmeans(vectors, math.ceil(n / cluster_size), seed) if n > cluster_size else np.zeros(n, np.int64)
    links = Links(n)
    for group in np.unique(groups):
        rows = np.nonzero(groups == group)[0]
        sims = vectors[rows] @ vectors[rows].T
        left, right = np.nonzero(np.triu(sims >= threshold, k=1))
        for a, b in zip(rows[left].tolist(), rows[right].tolist()):
            links.join(a, b)
    return links.duplicates(list(range(n)), preference, lambda row, keep: float(vectors[row] @ vectors[keep]))
