"""Exact and near-duplicate detection.

Near duplicates use datasketch's MinHash (scheme `affine32`: each shingle hash is pre-mixed with the 32-bit
MurmurHash3 finaliser and permuted as `a*h + b mod 2^32`) and datasketch's LSH band/row choice for the
threshold (weighted for recall, see LSH_WEIGHTS). The signatures of a whole batch of rows are computed in one
numpy expression with the very permutations of a datasketch `MinHash` (a test checks they equal
`MinHash.update_batch`, value for value), because one `MinHash` object per row costs ~100 µs and 1 KB. Banding
is done on a signature matrix with `np.unique` instead of `MinHashLSH`'s dict-of-sets storage, which takes
~4 KB per row: too much for 1M rows. A row has one signature per part (prompt and reply, see `shingles`); LSH
candidates are confirmed by the estimated Jaccard similarity of every part before they are clustered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))
_MAX32 = np.uint32(0xFFFFFFFF)
# Earlier bucket members a row is compared with; buckets are small once exact duplicates are gone.
_MAX_COMPARISONS = 8
# Shingles per MinHash chunk: its 32-bit hashes and their permuted copy (512 KB) fit in a core's L2 cache.
_CHUNK_SHINGLES = 1 << 16


def exact_duplicates(keys: list[int], alive: np.ndarray) -> dict[int, int]:
    """Row -> the earlier row it duplicates, among rows still alive (the first copy is kept)."""
    first: dict[int, int] = {}
    dup_of = {}
    for i in np.nonzero(alive)[0].tolist():
        j = first.setdefault(keys[i], i)
        if j != i:
            dup_of[i] = j
    return dup_of


class MinHasher:
    """MinHash signatures of many rows at once, identical to datasketch `MinHash(num_perm, seed)` ones."""

    def __init__(self, num_perm: int, seed: int):
        from datasketch import MinHash

        proto = MinHash(num_perm=num_perm, seed=seed, scheme="affine32")
        self.num_perm, self.seed = num_perm, seed
        self.a = proto.permutations[0].astype(np.uint32)
        self.b = proto.permutations[1].astype(np.uint32)

    def signatures(self, shingles: np.ndarray, doc_index: np.ndarray, num_docs: int) -> np.ndarray:
        """(num_docs, num_perm) uint32 signatures; `shingles` are 32-bit hashes sorted by `doc_index`.

        A document without shingles gets the empty signature (every value 2^32-1). Documents are taken in
        chunks of about _CHUNK_SHINGLES shingles, one permutation at a time over a chunk's shingles: a 1-D pass
        over an array that stays in the core's cache, ~15x faster than a (shingles x num_perm) block and ~2x
        faster than the same pass over a whole batch.
        """
        out = np.full((num_docs, self.num_perm), _MAX32, dtype=np.uint32)
        if len(shingles) == 0:
            return out
        hv = _fmix32(shingles.astype(np.uint32))
        bounds = np.searchsorted(doc_index, np.arange(num_docs + 1))
        first = 0
        while first < num_docs:
            last = int(np.searchsorted(bounds, bounds[first] + _CHUNK_SHINGLES, side="right")) - 1
            last = min(max(last, first + 1), num_docs)
            self._fill(out[first:last], hv[bounds[first]:bounds[last]], bounds[first:last + 1] - bounds[first])
            first = last
        return out

    def _fill(self, out: np.ndarray, hv: np.ndarray, bounds: np.ndarray) -> None:
        """Signatures of the documents whose shingles are `hv[bounds[i]:bounds[i + 1]]`, into `out`."""
        nonempty = np.nonzero(bounds[1:] > bounds[:-1])[0]
        if len(nonempty) == 0:
            return
        starts = bounds[nonempty]
        permuted = np.empty_like(hv)
        for k in range(self.num_perm):
            np.multiply(hv, self.a[k], out=permuted)
            np.add(permuted, self.b[k], out=permuted)
            out[nonempty, k] = np.minimum.reduceat(permuted, starts)


def _fmix32(h: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = _FMIX32
    h = h ^ (h >> s1)
    h = h * m1
    h = h ^ (h >> s2)
    h = h * m2
    return h ^ (h >> s3)


# (false positive, false negative) weights for datasketch's band/row choice. Candidates are confirmed by their
# estimated Jaccard similarity, so a false positive costs one comparison while a false negative loses a
# duplicate: with the default (0.5, 0.5) a pair at the threshold 0.8 becomes a candidate only 40% of the time,
# with these 95% (and 99% at 0.85).
LSH_WEIGHTS = (0.05, 0.95)


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) that datasketch's MinHashLSH picks for this threshold, weighted for recall."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=LSH_WEIGHTS)
    return lsh.b, lsh.r


@dataclass
class NearDuplicates:
    dup_of: dict[int, int]  # dropped row -> the kept row of its cluster
    similarity: dict[int, float]  # dropped row -> estimated Jaccard with that kept row
    num_clusters: int  # clusters of two or more rows


def near_duplicates(signatures: np.ndarray, alive: np.ndarray, preference: np.ndarray, threshold: float,
                    number_keys: np.ndarray | None = None) -> NearDuplicates:
    """Cluster alive rows whose signatures agree on >= `threshold` of their values in every part; keep the
    preferred row.

    Candidates come from LSH bands of the whole row's signature (the elementwise minimum over its parts: the
    MinHash of the union of their disjoint shingle sets, whose Jaccard similarity is at least the lowest part's,
    see `shingles`).

    Args:
        signatures: (rows, parts, num_perm) uint32 MinHash signatures of each part of each row.
        alive: bool mask of rows taking part.
        preference: higher is better; ties go to the earlier row.
        number_keys: when given, only rows with equal keys are compared (they are part of every band's key).
    """
    num_perm = signatures.shape[2]
    bands, rows_per_band = lsh_params(threshold, num_perm)
    empty = (signatures == _MAX32).all(axis=(1, 2))
    members = np.nonzero(alive & ~empty)[0]
    numbers = None if number_keys is None else number_keys[members].astype(np.uint64).view(np.uint32).reshape(-1, 2)
    links = Links(len(signatures))
    for band in range(bands):
        block = signatures[members, :, band * rows_per_band:(band + 1) * rows_per_band].min(axis=1)
        block = np.ascontiguousarray(block if numbers is None else np.concatenate([block, numbers], axis=1))
        keys = block.view(np.dtype((np.void, block.dtype.itemsize * block.shape[1]))).ravel()
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        shared = counts[inverse] > 1
        if not shared.any():
            continue
        rows, groups = members[shared], inverse[shared]
        order = np.lexsort((rows, groups))
        rows, groups = rows[order], groups[order]
        splits = np.nonzero(np.diff(groups))[0] + 1
        for bucket in np.split(rows, splits):
            for pos in range(1, len(bucket)):
                row = bucket[pos]
                earlier = bucket[:pos][:_MAX_COMPARISONS]
                agree = (signatures[earlier] == signatures[row]).mean(axis=2).min(axis=1)
                for other in earlier[agree >= threshold]:
                    links.join(int(row), int(other))
    return links.duplicates(members.tolist(), preference,
                            lambda row, keep: float((signatures[row] == signatures[keep]).mean(axis=1).min()))


class Links:
    """Rows joined into clusters (union-find; a cluster's root is its smallest row)."""

    def __init__(self, num_rows: int):
        self.parent = list(range(num_rows))

    def find(self, row: int) -> int:
        parent = self.parent
        while parent[row] != row:
            parent[row] = parent[parent[row]]
            row = parent[row]
        return row

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def duplicates(self, rows: list[int], preference, similarity) -> NearDuplicates:
        """In each cluster of two or more of `rows`, keep the preferred row (ties: the earlier) and mark the
        others as its duplicates, with `similarity(row, kept)`."""
        clusters: dict[int, list[int]] = {}
        for row in rows:
            clusters.setdefault(self.find(row), []).append(row)
        dup_of, similar, num_clusters = {}, {}, 0
        for members in clusters.values():
            if len(members) < 2:
                continue
            num_clusters += 1
            keep = max(members, key=lambda i: (preference[i], -i))
            for row in members:
                if row != keep:
                    dup_of[row] = keep
                    similar[row] = similarity(row, keep)
        return NearDuplicates(dup_of, similar, num_clusters)
