"""K-quants (q4_k_m, q5_k_m, q6_k) through llama.cpp's own quantizer, `llama_model_quantize` of the C API that
llama-cpp-python (the optional extra `sftkit[gguf]`, built from source) exposes; and the check that the
extra is there, made before any model loads."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from sftkit.errors import UserError
from sftkit.export.converter import LLAMA_CPP_PYTHON_VERSION

K_QUANTS = {"q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
            "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K"}
INSTALL = (f"CMAKE_ARGS='-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF' pip install 'sftkit[gguf]' (builds llama-cpp-python=="
           f"{LLAMA_CPP_PYTHON_VERSION} from source: about 15 minutes on 2 cores, needs cmake >= 3.21 and a C++ "
           "compiler)")


def llama_cpp_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def require_llama_cpp(what: str):
    """The llama_cpp module, or UserError naming the extra and its install command."""
    try:
        import llama_cpp
    except ImportError:
        raise UserError(f"{what} needs llama.cpp from the optional extra sftkit[gguf]: {INSTALL}") from None
    except OSError as exc:  # the package is there but its shared library does not load
        raise UserError(f"{what}: llama-cpp-python is installed but its library does not load ({exc}); "
                        f"reinstall it: {INSTALL}") from None
    return llama_cpp


def quantize(source: Path, target: Path, quant: str, num_threads: int | None = None) -> None:
    """Quantize an f32/f16 GGUF file to a K-quant. llama.cpp falls back to other types for tensors whose rows
    are not a multiple of the K-quant block (256); the caller reports the types actually written."""
    llama_cpp = require_llama_cpp(f"--quant {quant}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, K_QUANTS[quant])
    params.nthread = num_threads or os.cpu_count() or 1
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if status != 0:
        raise UserError(f"llama.cpp's quantizer failed ({status}) turning {source.name} into {quant}: check the free "
                        f"space in {target.parent}")
