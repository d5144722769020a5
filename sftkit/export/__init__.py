"""Shipping a trained model: `sftkit export` to vLLM-ready Hugging Face safetensors (hf.py), GGUF through
llama.cpp's own converter and quantizer (converter.py, gguf.py, quantize.py) and Ollama (ollama.py, with
gotemplate.py rendering its Go template in Python), each export verified against the model it came from
(verify.py, llamacpp.py, checks.py) and described in export_report.json (report.py). exporter.py runs it."""
