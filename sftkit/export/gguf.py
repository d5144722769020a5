"""GGUF files: written by llama.cpp's converter (f32, f16, bf16, q8_0) or its quantizer (K-quants, from an f32
file), and read back with the `gguf` package: metadata fields and the tensor types actually written."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sftkit.export.converter import CONVERTER_TYPES, convert
from sftkit.export.quantize import K_QUANTS, quantize

QUANTS = (*CONVERTER_TYPES, *K_QUANTS)


def write_gguf(hf_dir: Path, out_file: Path, quant: str, log_file: Path) -> None:
    """Convert the HF directory to `out_file` at `quant`. A K-quant goes through an f32 file beside it, which is
    removed afterwards."""
    if quant in CONVERTER_TYPES:
        convert(hf_dir, out_file, quant, log_file)
        return
    full = out_file.with_name(out_file.stem + ".f32-tmp.gguf")
    try:
        convert(hf_dir, full, "f32", log_file)
        quantize(full, out_file, quant)
    finally:
        full.unlink(missing_ok=True)


def _reader(path: Path):
    from gguf import GGUFReader

    return GGUFReader(str(path))


def _value(reader, key: str):
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def read_gguf(path: Path) -> tuple[dict, dict[str, str]]:
    """(metadata, tensor types) of a GGUF file, from one read (parsing a file's fields takes seconds).

    metadata: what the checks compare with the HF model; tensor types: {GGUF tensor name: type name} as
    written (`Q8_0`, `F32`, `Q5_0`, ...)."""
    reader = _reader(path)
    arch = _value(reader, "general.architecture")
    keys = {"context_length": f"{arch}.context_length", "rope_freq_base": f"{arch}.rope.freq_base",
            "rope_scaling_type": f"{arch}.rope.scaling.type", "rope_scaling_factor": f"{arch}.rope.scaling.factor",
            "block_count": f"{arch}.block_count", "embedding_length": f"{arch}.embedding_length",
            "bos_token_id": "tokenizer.ggml.bos_token_id", "eos_token_id": "tokenizer.ggml.eos_token_id",
            "eot_token_id": "tokenizer.ggml.eot_token_id", "add_bos_token": "tokenizer.ggml.add_bos_token",
            "chat_template": "tokenizer.chat_template", "file_type": "general.file_type",
            "tokens": "tokenizer.ggml.tokens"}
    meta = {"architecture": arch, **{name: _value(reader, key) for name, key in keys.items()}}
    return meta, {t.name: t.tensor_type.name for t in reader.tensors}


def type_counts(types: dict[str, str]) -> dict[str, int]:
    return dict(sorted(Counter(types.values()).items()))
