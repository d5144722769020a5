"""Shipping a trained model: `sftkit export` to vLLM-ready Hugging Face safetensors (hf.py), GGUF through
llama.cpp's own converter and quantizer (converter.py, gguf.py, quantize.py) and Ollama (ollama.py, with
gotemplate.py rendering its Go template in Python), each export verified against the model it came from
(verify.py, llamacpp.py, checks.py) and described in export_report.json (report.py). exporter.py runs it."""

import sys
import types


class _CallablePackage(types.ModuleType):
    """`sftkit.export(...)` is the API verb `sftkit.api.export`. Importing any module of this package makes
    Python set the attribute `sftkit.export` to the package, so the package itself answers the call."""

    def __call__(self, *args, **kwargs):
        from sftkit.api import export

        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
