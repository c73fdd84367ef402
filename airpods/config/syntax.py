"""Value syntax shared by the config schema and the code that runs (no pydantic here: commands
that only run the stack do not load it)."""

from __future__ import annotations

import re

MEMORY_RE = re.compile(r"^\d+(\.\d+)?[bkmgBKMG]\Z")
# A model's name as llama-server's router lists it (/v1/models): a GGUF file's name without
# .gguf, or a folder's name, in the model volume.
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def memory_bytes(value: str) -> int:
    """A Podman/Docker memory size ("512m", "8g", "1.5g") in bytes (binary units, as they read it)."""
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    return int(float(value[:-1]) * units[value[-1].lower()])
