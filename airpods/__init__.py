"""airpods: run a local AI stack (llama.cpp, Ollama, Open WebUI, ComfyUI) as Podman pods."""

__version__ = "0.1.0"
