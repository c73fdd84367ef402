"""`airpods models chat`: a terminal chat with a llama.cpp instance, through its API when it
runs, else llama-cli in a one-off container on a model file of the volume."""

from __future__ import annotations

from dataclasses import replace

from airpods.engine.base import Engine, OneOff
from airpods.errors import UsageError
from airpods.stack.model import Stack
from airpods.usecases.common import stack_key


def chat(stack: Stack, engine: Engine, model: str | None) -> int:
    """Chat with the first llama.cpp instance of `stack`; the exit status of the chat. Raises
    UsageError when there is no instance, no model to chat with, or (not running) no model file
    named."""
    from airpods.models.chat import api_chat, first_model
    from airpods.models.manage import llama_instances, model_mount, tool_image

    instances = llama_instances(stack)
    if not instances:
        raise UsageError("no llama.cpp instance to chat with")
    spec = instances[0]
    key = stack_key(stack) if spec.secrets else None
    running = {c.name for c in engine.containers() if c.running}
    if spec.url and spec.container in running:
        chosen = model or first_model(spec.url, key)
        if not chosen:
            raise UsageError(
                "the instance has no model yet", hint="`airpods models pull …` or `airpods models import F`"
            )
        return api_chat(spec.url, key, chosen)
    if not model:
        raise UsageError(f"{spec.name} is not running: name a model file for llama-cli with --model")
    job = OneOff(
        tool_image(spec.image, "light"),
        ("--model", f"/models/{model.removesuffix('.gguf')}.gguf"),
        mounts=(replace(model_mount(stack), mode="ro"),),
        gpu=spec.gpu_request,
        tool="chat",
    )
    return engine.run_interactive(job)
