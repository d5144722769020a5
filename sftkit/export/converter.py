"""llama.cpp's own HF-to-GGUF converter, fetched once into the cache and run as a subprocess.

No llama.cpp wheel is on PyPI, but the sdist of llama-cpp-python (pinned below, with its sha256) vendors the
whole of llama.cpp. At first use `pip download` fetches it and only the converter is extracted:
`convert_hf_to_gguf.py`, its `conversion/` package, `gguf-py/` and the licence, into
SFTKIT_HOME/llama.cpp/<version>/. It runs in a subprocess because it puts its own copy of `gguf` first on
`sys.path`, which must not replace the `gguf` package transformers reads GGUF files with in this process.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from sftkit.errors import UserError
from sftkit.paths import cache_dir

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
LLAMA_CPP_PYTHON_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
_VENDOR = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/"
_WANTED = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/gguf/", "LICENSE")
CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")  # what the converter writes directly (--outtype)


def converter_dir(fetch: bool = True) -> Path:
    """The extracted converter, fetched and extracted on first use (a temporary name, renamed when complete)."""
    target = cache_dir("llama.cpp") / LLAMA_CPP_PYTHON_VERSION
    if (target / "convert_hf_to_gguf.py").is_file():
        return target
    if not fetch:
        raise UserError(f"the GGUF converter is not in {target}: run an export once with network access to PyPI")
    with tempfile.TemporaryDirectory(prefix="sftkit-llama-cpp-") as tmp:
        sdist = _download_sdist(Path(tmp))
        staging = target.with_name(f"{target.name}.tmp{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        _extract(sdist, staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first; its copy is complete
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _download_sdist(into: Path) -> Path:
    requirement = into / "requirements.txt"
    requirement.write_text(f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION} --hash=sha256:{LLAMA_CPP_PYTHON_SHA256}\n")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
               "--require-hashes", "-r", str(requirement), "-d", str(into)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    found = sorted(into.glob("llama_cpp_python-*.tar.gz"))
    if done.returncode != 0 or not found:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"could not fetch llama.cpp's GGUF converter (the llama-cpp-python=="
                        f"{LLAMA_CPP_PYTHON_VERSION} sdist from PyPI): {last}. Check the connection to PyPI "
                        "(pip's proxy settings apply) and run the export again")
    return found[0]


def _extract(sdist: Path, into: Path) -> None:
    with tarfile.open(sdist) as archive:
        members = []
        for member in archive.getmembers():
            if not member.name.startswith(_VENDOR) or not (member.isfile() or member.isdir()):
                continue
            relative = member.name[len(_VENDOR):]
            if relative and any(relative == w or relative.startswith(w) for w in _WANTED):
                member.name = relative
                members.append(member)
        archive.extractall(into, members=members, filter="data")


def supported_architectures(directory: Path | None = None) -> set[str]:
    """The HF architecture names the converter knows (its `TEXT_MODEL_MAP`, read without importing it)."""
    source = ((directory or converter_dir()) / "conversion" / "__init__.py").read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "TEXT_MODEL_MAP":
            return set(ast.literal_eval(node.value))
    raise UserError(f"cannot read the converter's list of architectures in {directory}: delete that directory "
                    "so it is fetched again")


def check_architecture(architectures: list[str], where: str) -> None:
    """UserError unless the converter knows the model's architecture."""
    known = supported_architectures()
    if not any(name in known for name in architectures):
        raise UserError(f"{where}: llama.cpp's converter (llama-cpp-python {LLAMA_CPP_PYTHON_VERSION}) does not know "
                        f"the architecture {', '.join(architectures) or '(none in config.json)'}: export with "
                        "--format hf instead (vLLM, transformers)")


def convert(model_dir: Path, out_file: Path, out_type: str, log_file: Path) -> None:
    """Run the converter on an HF model directory; its output goes to `log_file`."""
    if out_type not in CONVERTER_TYPES:
        raise ValueError(f"the converter writes {CONVERTER_TYPES}, not {out_type}")
    script = converter_dir() / "convert_hf_to_gguf.py"
    command = [sys.executable, str(script), str(model_dir), "--outtype", out_type, "--outfile", str(out_file)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("NO_LOCAL_GGUF", None)  # the converter must use the gguf-py it ships with
    with open(log_file, "w", encoding="utf-8") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode != 0:
        lines = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        reason = next((line for line in reversed(lines) if "Error" in line or "error" in line), lines[-1] if lines
                      else "no output")
        if "No space left" in reason:
            raise UserError(f"{out_file.parent}: no space left on the device while writing the GGUF file: free "
                            "some space or pass --output on a larger disk")
        raise UserError(f"llama.cpp's converter failed on {model_dir}: {reason.strip()} (full log: {log_file})")
