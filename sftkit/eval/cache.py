"""Cached task results for base models, keyed by (model fingerprint, task fingerprint, settings).

A model's fingerprint covers its config, tokenizer files and the name, size and modification time of every
weight file, so re-saving or replacing a checkpoint invalidates its results; a hub id is pinned to the
snapshot (commit) it resolves to in the local hub cache. The task fingerprint hashes the exact items
evaluated (after subsampling and few-shot expansion), so an edited data file invalidates too. Settings are
only those that change results (generation limit, extraction, dtype, ...), plus a code version.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from sftkit.paths import cache_dir

# bump when a change to scoring would change cached numbers
CODE_VERSION = 2  # 2: BIG-bench choices follow the output prefix after one space
_CONFIG_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "chat_template.jinja")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dir_fingerprint(path: Path) -> str:
    parts = [f.name + ":" + _sha(f.read_bytes()) for f in (path / n for n in _CONFIG_FILES) if f.is_file()]
    for f in sorted(path.iterdir()):
        if f.is_file() and f.name.endswith(_WEIGHT_SUFFIXES):
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return _sha("\n".join(parts).encode())


def model_fingerprint(name: str | None) -> str | None:
    """A fingerprint of a base model, or None when it cannot be pinned (not cached then).

    Run directories (fine-tuned models) are never cached: the issue asks only for base models.
    """
    from sftkit.models import is_run_dir, resolve_model_path

    if name and is_run_dir(name):
        return None
    path = Path(resolve_model_path(name))
    if path.is_dir():
        return _dir_fingerprint(path)
    try:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(str(path), "config.json")
    except Exception:  # no hub client or a malformed id: just do not cache
        return None
    if not isinstance(config, str):
        return None
    return "hub:" + str(path) + "@" + Path(config).parent.name  # snapshots/<commit>/config.json


def with_chat_template(model_fp: str, template: str) -> str:
    """The fingerprint of a model whose chat template is replaced by `template`."""
    return _sha(f"{model_fp}\nchat_template:{_sha(template.encode())}".encode())


def result_key(model_fp: str, task_fp: str, settings: dict) -> str:
    payload = json.dumps({"model": model_fp, "task": task_fp, "settings": settings, "code": CODE_VERSION},
                         sort_keys=True)
    return _sha(payload.encode())


def _path(key: str) -> Path:
    return cache_dir("eval_cache") / f"{key}.json"


def load(key: str) -> dict | None:
    path = _path(key)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):  # a torn write from a killed process: recompute
        return None


def save(key: str, payload: dict) -> None:
    """Write atomically (temporary file + rename), so readers never see half a result."""
    path = _path(key)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
