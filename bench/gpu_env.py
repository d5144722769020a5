"""What the GPU benchmark carries and checks: the bundle prepared on a CPU machine, and the packages on the GPU one.

The bundle (`bench/gpu.sh --prepare`, on a machine with PyPI access) holds the real variable-length chat data,
tokenised once by sftkit (`data/data.jsonl`, `data/tokens.jsonl`), SmolLM2's tokenizer (`tokenizer/`), and the
wheels of the pure-Python packages a bare GPU image lacks (`wheels/`, for CPython 3.12 on manylinux x86-64).
On the GPU machine nothing is fetched: missing packages are installed from `wheels/` into a private directory
put on PYTHONPATH, and every version the benchmark depends on is printed before anything runs.

This module imports nothing outside the standard library at import time: it runs before the wheels are on
the path.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

# Distribution name -> the module it provides. The GPU image of this workplace (KINDS.md) has torch,
# transformers, peft, accelerate, pyarrow, pandas, xxhash, rich, typer, pyyaml, safetensors, psutil; not these.
CARRIED = {"trl": "trl", "datasets": "datasets", "dill": "dill", "multiprocess": "multiprocess",
           "pydantic": "pydantic", "pydantic-core": "pydantic_core", "annotated-types": "annotated_types",
           "typing-inspection": "typing_inspection"}
REQUIRED = ("torch", "transformers", "peft", "accelerate", "safetensors", "pydantic", "yaml", "rich")
FOR_TRL = ("trl", "datasets")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


def prepare_bundle(bundle: Path, tokenizer, max_length: int, examples_per_task: int, data_file: str | None,
                   wheels: bool) -> dict:
    """Write the bundle; return the data's statistics. `data_file`: a chat JSONL instead of the BIG-bench mix."""
    from bench.common import prepare_mix

    stats = prepare_mix(bundle / "data", tokenizer, max_length, examples_per_task, seed=42, data_file=data_file)
    tokenizer.save_pretrained(bundle / "tokenizer")
    if wheels:
        download_wheels(bundle / "wheels")
    (bundle / "bundle.json").write_text(json.dumps({"data": stats, "max_length": max_length}, indent=2))
    return stats


def download_wheels(directory: Path) -> None:
    """The CARRIED packages at this machine's versions (the ones sftkit is tested with), as 3.12 wheels."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in CARRIED:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
                   "3.12", "--implementation", "cp", "-d", str(directory), f"{name}=={md.version(name)}"]
        for platform in PLATFORMS:
            command += ["--platform", platform]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def install_missing(bundle: Path, site: Path) -> list[str]:
    """Install the bundle's wheels of packages this interpreter lacks into `site`, put it first on sys.path and
    PYTHONPATH (worker processes inherit it); return what was installed."""
    missing = [name for name, module in CARRIED.items() if importlib.util.find_spec(module) is None]
    wheels = [w for w in sorted((bundle / "wheels").glob("*.whl"))
              if w.name.split("-")[0].lower().replace("_", "-") in missing]
    if wheels:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, wheels)], check=True)
    if site.is_dir():
        sys.path.insert(0, str(site))
        os.environ["PYTHONPATH"] = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return [w.name for w in wheels]


def check_environment() -> dict:
    """Versions of everything the benchmark uses, the GPU, and what is missing (with what it disables)."""
    env = {"python": sys.version.split()[0], "packages": {}, "missing": [], "problems": []}
    for name in (*REQUIRED, *FOR_TRL, "triton"):
        try:
            env["packages"][name] = md.version("PyYAML" if name == "yaml" else name)
        except md.PackageNotFoundError:
            env["packages"][name] = None
            env["missing"].append(name)
    for name in FOR_TRL:  # importable is what counts: datasets needs a recent pyarrow, for one
        try:
            __import__(name)
        except Exception as exc:  # noqa: BLE001 - any import failure disables the TRL rows
            env["problems"].append(f"{name} does not import ({type(exc).__name__}: {str(exc)[:160]}): no TRL rows")
    import torch

    env["cuda"] = torch.cuda.is_available()
    if env["cuda"]:
        env["gpu"] = torch.cuda.get_device_name(0)
        env["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401

        env["varlen_attn"] = True
    except ImportError:
        env["varlen_attn"] = False
        env["problems"].append(f"torch {torch.__version__} has no torch.nn.attention.varlen: sftkit falls back "
                               "to per-document SDPA")
    return env


def describe(env: dict) -> str:
    lines = [f"python {env['python']}; " + ", ".join(f"{k} {v or 'MISSING'}" for k, v in env["packages"].items())]
    if env.get("cuda"):
        lines.append(f"GPU: {env['gpu']} (compute capability {env['capability']}); varlen_attn: {env['varlen_attn']}")
    else:
        lines.append("GPU: none (CUDA not available)")
    lines += [f"missing: {', '.join(env['missing'])}"] if env["missing"] else []
    lines += env["problems"]
    return "\n".join(lines)
