"""GGUF models: the shared model volume, headers, downloads and llama.cpp tools."""
