"""`airpods models …` (the GGUF volume, and Ollama's models) and `airpods chat`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer

from airpods.cli.context import engine as engine_of
from airpods.cli.context import options_of, stack
from airpods.cli.lifecycle_cmd import Drain

app = typer.Typer(help="GGUF models in the shared llama.cpp volume (and Ollama's).", no_args_is_help=True)
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Force = Annotated[bool, typer.Option("--force", help="Replace an existing file of that name.")]


def _context(ctx: typer.Context):
    from airpods.models.manage import model_store

    everything = stack(options_of(ctx), None, every_service=True)
    engine = engine_of(options_of(ctx))
    return everything, engine, model_store(everything, engine)


def _running(engine) -> set[str]:
    return {c.name for c in engine.containers() if c.running}  # any project: a model file may be in use


def _after_change(everything, engine) -> None:
    """The volume changed: rewrite the routers' preset files (an embedding model added or
    removed) and have the running routers reread their model lists, without cutting a request
    (models/router.py: apply_presets)."""
    from airpods.models.manage import configured_model, llama_instances
    from airpods.models.presets import write_presets
    from airpods.models.router import DEFAULT_DRAIN_S, RouterError, apply_presets
    from airpods.usecases.common import stack_key

    running = {c.name: c.config_hash for c in engine.containers() if c.running}
    changed = write_presets(everything, engine, running)
    key = stack_key(everything)
    for spec in llama_instances(everything):
        if spec.container in running and not configured_model(spec) and spec.publish:
            old, new = changed.get(spec.name, ("", ""))
            try:
                apply_presets(spec, key, old, new, DEFAULT_DRAIN_S, print)
            except RouterError as exc:
                print(f"{spec.name}: could not reread its model list: {exc}")


@app.command()
def pull(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            help="user/repo:Q4_K_M, user/repo/FILE.gguf, user/repo --file F, an https:// URL, "
            "or (with --backend ollama) an Ollama model name."
        ),
    ],
    file: Annotated[str | None, typer.Option("--file", help="The file in the repo.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="File name in the volume.")] = None,
    sha256: Annotated[str | None, typer.Option("--sha256", help="Expected sha256 of a URL download.")] = None,
    backend: Annotated[str, typer.Option("--backend", help="llamacpp (the GGUF volume) or ollama.")] = "llamacpp",
    force: Force = False,
) -> None:
    """Download a model into the llama.cpp volume (atomically, verified), or into Ollama."""
    from airpods.cli.progress import ByteProgress
    from airpods.errors import UsageError

    if backend == "ollama":
        _ollama_pull(ctx, source)
        return
    if backend != "llamacpp":
        raise UsageError(f"unknown backend {backend!r}", hint="llamacpp or ollama")
    from airpods.models.download import pull_hf, pull_url
    from airpods.models.sources import UrlRef, parse_source

    ref = parse_source(source, file)
    everything, engine, store = _context(ctx)
    with ByteProgress() as progress:
        if isinstance(ref, UrlRef):
            fetched = pull_url(store, ref, name, progress, progress.announce, sha256, force)
        else:
            fetched = pull_hf(store, ref, name, progress, progress.announce, force)
    for f in fetched:
        print(f"pulled {f.name} ({f.size} bytes, sha256 {f.sha256})")
    _after_change(everything, engine)


def _ollama_pull(ctx: typer.Context, name: str) -> None:
    from airpods.models.ollama import ollama_pull

    url = _ollama_url(ctx)
    last: list[str] = []

    def show(status: str, total: int | None, completed: int | None) -> None:
        line = status + (f" {completed * 100 // total}%" if total and completed is not None else "")
        if not last or last[-1] != line:
            print(line, flush=True)
            last.append(line)

    ollama_pull(url, name, show)


def _ollama_url(ctx: typer.Context) -> str:
    from airpods.errors import UsageError

    for spec in stack(options_of(ctx), None, every_service=True).services:
        if spec.kind == "ollama" and spec.url:
            return spec.url
    raise UsageError("no ollama service with a published port is configured")


@app.command("list")
def list_(ctx: typer.Context, as_json: Json = False) -> None:
    """Every GGUF in the volume (from its header) and Ollama's models, with who serves them."""
    from airpods.cli.output import print_json
    from airpods.cli.progress import human_size
    from airpods.cli.table import format_table
    from airpods.models.manage import list_models
    from airpods.models.ollama import ollama_models

    everything, engine, store = _context(ctx)
    running = _running(engine)
    rows = list_models(store, everything, running)
    states = _router_states(everything, running)
    for row in rows:
        row["fits"] = _fits(everything, store, row)
        row["state"] = {router: found[row["name"]] for router, found in states.items() if row["name"] in found}
    for spec in everything.services:
        if spec.kind == "ollama" and spec.url and spec.container in running:
            rows += ollama_models(spec.url)
    if as_json:
        print_json({"volume": store.volume, "models": rows})
        return
    print(
        format_table(
            ("MODEL", "BACKEND", "SIZE", "ARCH", "PARAMS", "QUANT", "CONTEXT", "FITS", "SERVED BY", "STATE"),
            [
                (
                    _shown_name(r),
                    str(r["backend"]),
                    human_size(r["size"]) if isinstance(r["size"], int) else "-",
                    str(r["architecture"] or "-"),
                    _params(r["parameters"]),
                    str(r["quantization"] or "-"),
                    str(r["context_length"] or "-"),
                    "-" if r.get("fits") is None else "yes" if r["fits"] else "no",
                    ", ".join(cast("list[str]", r["served_by"])) or "-",
                    _state(cast("dict[str, str]", r.get("state") or {})),
                )
                for r in rows
            ],
        )
    )


def _router_states(everything, running: set[str]) -> dict[str, dict[str, str]]:
    """Each running router → its models' states as it says them ("failed (exit 1)" for one
    whose process failed); a router that does not answer is left out."""
    from airpods.models.manage import configured_model, llama_instances
    from airpods.models.router import Router, RouterError
    from airpods.usecases.common import stack_key

    found = {}
    for spec in llama_instances(everything):
        if spec.container in running and spec.publish and configured_model(spec) is None:
            try:
                states = Router(spec, stack_key(everything), timeout=2.0).models()
            except RouterError:
                continue
            found[spec.name] = {name: state.describe() for name, state in states.items()}
    return found


def _state(states: dict[str, str]) -> str:
    """A model's state on the routers: the state alone for one router, else per router."""
    if len(states) == 1:
        return next(iter(states.values()))
    return ", ".join(f"{router}: {state}" for router, state in states.items()) or "-"


def _fits(everything, store, row: dict[str, object]) -> bool | None:
    """Whether a stored model fits the instance that would serve it (`models fit`), None when
    that cannot be told (a model with a problem, no llama.cpp instance)."""
    from airpods.errors import AirpodsError
    from airpods.models.fit_check import fit_report, gpu_memory

    if row.get("problem") or row.get("backend") != "llamacpp":
        return None
    try:
        model = store.model(str(row["name"]))
        instance = _fit_instance(everything, model.name, None)
        return fit_report(instance, model, vram=gpu_memory(everything.gpu, instance)).fits
    except AirpodsError:
        return None


def _tool_line(line: str) -> None:
    """A line of llama-quantize's or the converter's own output, as it comes (their progress)."""
    import sys

    print(f"  {line}", file=sys.stderr, flush=True)


def _shown_name(row: dict[str, object]) -> str:
    """A model's name, with its parts when it is a folder and what is wrong with it."""
    parts = row.get("parts") or []
    name = str(row["file"]) + (f" ({len(parts)} files)" if isinstance(parts, list) and len(parts) > 1 else "")
    return name + (f" [{row['problem']}]" if row.get("problem") else "")


def _params(value: object) -> str:
    if not isinstance(value, int):
        return str(value or "-")
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return str(value)


@app.command()
def fit(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A model's name as `models list` shows it (.gguf optional).")],
    context: Annotated[
        int | None,
        typer.Option(
            "--ctx", min=1, max=(1 << 31) - 1, help="The context (--ctx-size) to check; default: the instance's."
        ),
    ] = None,
    service: Annotated[
        str | None, typer.Option("--service", help="The llama.cpp instance; default: the one that serves it.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Will it fit? The memory llama-server will allocate for a model (weights, KV cache,
    compute buffer; estimated from its GGUF header), against the instance's resources.memory and
    the host's free memory, and the largest context that fits. Exit 1 when it does not fit."""
    from airpods.cli.output import print_json
    from airpods.models.fit_check import fit_report, gpu_memory
    from airpods.models.fit_check import size_text as human_size

    everything, _, store = _context(ctx)
    model = store.model(name)
    instance = _fit_instance(everything, model.name, service)
    report = fit_report(instance, model, context, vram=gpu_memory(everything.gpu, instance))
    if as_json:
        print_json(report.to_json())
        raise typer.Exit(1 if report.problem else 0)
    found = report.estimate
    layers = f", {report.settings.gpu_layers} layers on the GPU" if found.gpu else ""
    print(f"{report.model} on {report.service}, --ctx-size {found.ctx}{layers}:")
    for label, host, gpu in (
        ("weights", found.weights_host, found.weights_gpu),
        ("KV cache", found.kv_host, found.kv_gpu),
        ("compute buffer", found.compute_host, found.compute_gpu),
        ("total", found.host, found.gpu),
    ):
        print(f"  {label:<16} {human_size(host):>10} host" + (f"  {human_size(gpu):>10} GPU" if found.gpu else ""))
    limit = human_size(report.limit) if report.limit is not None else "none"
    free = human_size(report.available) if report.available is not None else "unknown"
    print(f"  memory limit     {limit:>10} (services.{report.service}.resources.memory)")
    print(f"  host free        {free:>10} (MemAvailable now)")
    largest = "unknown" if report.largest_ctx is None else report.largest_ctx or "none"
    trained = f" (the model was trained for {report.n_ctx_train})" if report.n_ctx_train else ""
    print(f"  largest context that fits: {largest}{trained}")
    if report.problem:
        print(f"does not fit: {report.problem}; {report.hint}")
        raise typer.Exit(1)
    else:
        print("fits" if report.fits else "fits (no limit or host figure to compare with)")


def _fit_instance(everything, model: str, wanted: str | None):
    """The llama.cpp instance a model is checked on: `wanted`, else the one configured to
    serve it, else the first router."""
    from airpods.errors import UsageError
    from airpods.models.manage import configured_model, llama_instances

    instances = llama_instances(everything)
    if wanted is not None:
        for spec in instances:
            if spec.name == wanted:
                return spec
        known = ", ".join(s.name for s in instances) or "none"
        raise UsageError(f"{wanted!r} is not a llama.cpp service", hint=f"llama.cpp services: {known}")
    serving = [s for s in instances if configured_model(s) == model]
    routers = [s for s in instances if configured_model(s) is None]
    if not (serving or routers or instances):
        raise UsageError("no llama.cpp service is configured", hint="add [services.llamacpp] to the config")
    return (serving or routers or instances)[0]


@app.command()
def inspect(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A model's name as `models list` shows it (.gguf optional).")],
    as_json: Json = False,
) -> None:
    """The GGUF metadata worth seeing (never the tensor data); a folder model's parts."""
    from airpods.cli.output import print_json
    from airpods.models.manage import inspect_model

    _, _, store = _context(ctx)
    model, info = inspect_model(store, name)
    parts = [str(p.relative_to(store.root)) for p in model.parts]
    if as_json:
        print_json({**info.summary(), "parts": parts, "problem": model.problem, "metadata": info.metadata})
        return
    for key, value in {**info.summary(), "parts": ", ".join(parts), **info.metadata}.items():
        print(f"{key:<40} {value}")
    if model.problem:
        print(f"{'problem':<40} {model.problem}")


@app.command()
def rm(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="A model's name as `models list` shows it (.gguf optional).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Remove it even if an instance is configured to serve it.")
    ] = False,
    partial: Annotated[
        bool, typer.Option("--partial", help="Remove the downloads kept part way (all of them, or NAME's).")
    ] = False,
) -> None:
    """Delete a model from the volume (every file of a folder model; asks first), or with
    --partial what interrupted downloads left (a partial NAME alone is removed without it too)."""
    import os

    from airpods.cli.progress import human_size
    from airpods.errors import UsageError
    from airpods.models.manage import remove_model
    from airpods.models.store import model_name

    everything, engine, store = _context(ctx)
    partials = [p for p in store.partials() if name is None or p.name == model_name(name)]
    if name is None and not partial:
        raise UsageError("name the model to remove", hint="`airpods models list` shows them; --partial for downloads")
    if partial or (partials and model_name(name or "") not in {m.name for m in store.models()}):
        if not partials:
            raise UsageError("no partial download" + (f" of {name}" if name else ""), hint="`airpods models list`")
        what = ", ".join(f"{p.name} (partial, {human_size(p.size)})" for p in partials)
        if not yes and not typer.confirm(f"Delete {what} from {store.volume}?", default=False):
            raise UsageError("nothing deleted", hint="`--yes` confirms without asking")
        for kept in partials:
            store.remove_partial(kept)
        print(f"removed {what}")
        return
    assert name is not None
    model = store.model(name)
    what = f"{model.name} ({len(model.parts)} files)" if len(model.parts) > 1 else model.name
    if model.path.is_symlink():
        what += f" (a link: what it points to, {os.readlink(model.path)}, is left)"
    if not yes and not typer.confirm(f"Delete {what} from {store.volume}?", default=False):
        raise UsageError("nothing deleted", hint="`--yes` confirms without asking")
    remove_model(store, everything, name, force)
    print(f"removed {what}")
    _after_change(everything, engine)


@app.command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A local .gguf file, or a folder of them (shards, or model + mmproj).")],
    name: Annotated[str | None, typer.Option("--name", help="The model's name in the volume.")] = None,
    force: Force = False,
) -> None:
    """Copy a local GGUF (or a folder of GGUF parts, as one model) into the volume (headers
    checked first, written atomically)."""
    from airpods.cli.progress import ByteProgress
    from airpods.models.manage import import_model

    everything, engine, store = _context(ctx)
    with ByteProgress() as progress:
        target = import_model(store, path, name, force, progress)
    print(f"imported {target}")
    _after_change(everything, engine)


@app.command()
def quantize(
    ctx: typer.Context,
    src: Annotated[str, typer.Argument(help="A model in the volume.")],
    qtype: Annotated[str, typer.Argument(metavar="TYPE", help="Q4_K_M, Q8_0, IQ4_XS, …")],
    name: Annotated[str | None, typer.Option("--name", help="The new model's name (.gguf optional).")] = None,
    force: Force = False,
) -> None:
    """Run llama-quantize (the llama.cpp :full image) on a model in the volume."""
    from airpods.models.manage import quantize_model

    everything, engine, store = _context(ctx)
    print(f"quantizing {src} to {qtype.upper()} …", flush=True)
    out = quantize_model(engine, store, everything, src, qtype, name, force, on_line=_tool_line)
    print(f"wrote {out.stem} ({out.stat().st_size} bytes)")
    _after_change(everything, engine)


@app.command()
def convert(
    ctx: typer.Context,
    hf_dir: Annotated[Path, typer.Argument(help="A Hugging Face model folder (config.json, safetensors).")],
    out: Annotated[str | None, typer.Option("--name", help="The model's name (default: the folder's).")] = None,
    force: Force = False,
) -> None:
    """Convert a Hugging Face model folder to an F16 GGUF with the image's convert_hf_to_gguf.py."""
    from airpods.models.manage import convert_model

    everything, engine, store = _context(ctx)
    print(f"converting {hf_dir} …", flush=True)
    path = convert_model(
        engine, store, everything, hf_dir, out or f"{hf_dir.resolve().name}-F16", force, on_line=_tool_line
    )
    print(f"wrote {path.stem} ({path.stat().st_size} bytes)")
    _after_change(everything, engine)


@app.command()
def reload(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A model's name as the router lists it (`airpods status`).")],
    service: Annotated[
        str | None, typer.Option("--service", help="The llama.cpp router; default: the first running one.")
    ] = None,
    drain: Drain = 60.0,
    as_json: Json = False,
) -> None:
    """Unload one model of a running llama.cpp router and load it again, with the flags its
    preset section has now (a changed flag of a loaded model applies from its next load);
    the router's other models are not touched. Exit 1 when it does not load."""
    from airpods.cli.output import print_json
    from airpods.errors import RuntimeFailure, UsageError
    from airpods.models.router import Router, RouterError, UnknownModel, reload_model
    from airpods.usecases.common import stack_key

    everything = stack(options_of(ctx), None, every_service=True)
    engine = engine_of(options_of(ctx))
    spec = _router(everything, engine, service)

    say = (lambda _line: None) if as_json else print
    try:
        state = reload_model(Router(spec, stack_key(everything)), name, drain, spec.health.timeout_s, say)
    except UnknownModel as unknown:
        listed = ", ".join(unknown.args[1]) or "none"
        raise UsageError(f"{spec.name} has no model {name!r}", hint=f"the models it lists: {listed}") from None
    except RouterError as exc:
        raise RuntimeFailure(str(exc), hint=f"`airpods status {spec.name}` shows its models and their state") from None
    if as_json:
        print_json({"service": spec.name, "model": name, "state": state.describe()})
    if state.value != "loaded":
        tail = "\n".join(engine.logs_tail(spec.container, 20))
        raise RuntimeFailure(
            f"{spec.name}: {name} is {state.describe()} after reloading" + (f"; its log ends:\n{tail}" if tail else ""),
            hint=f"`airpods logs {spec.name}` shows the whole log",
        )
    if not as_json:
        print(f"{spec.name}: {name} loaded")


def _router(everything, engine, wanted: str | None):
    """The running llama.cpp router `wanted` (default: the first running one). Raises
    UsageError for a name that is not a router, RuntimeFailure when it is not running."""
    from airpods.errors import RuntimeFailure, UsageError
    from airpods.models.manage import configured_model, llama_instances

    routers = [s for s in llama_instances(everything) if configured_model(s) is None]
    if wanted is not None and wanted not in {s.name for s in routers}:
        known = ", ".join(s.name for s in routers) or "none"
        raise UsageError(f"{wanted!r} is not a llama.cpp router", hint=f"llama.cpp routers: {known}")
    running = _running(engine)
    chosen = [s for s in routers if (wanted is None or s.name == wanted) and s.container in running]
    if not chosen:
        raise RuntimeFailure(
            f"{wanted} is not running" if wanted else "no llama.cpp router is running",
            hint=f"`airpods start {wanted}`" if wanted else "`airpods start`",
        )
    return chosen[0]


def chat(
    ctx: typer.Context,
    instance: Annotated[str | None, typer.Argument(help="A llama.cpp instance (default: the first).")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model id (API) or file in the volume (llama-cli).")
    ] = None,
) -> None:
    """Chat in the terminal: through a running instance's API, else llama-cli in a one-off container."""
    from airpods.usecases.chat import chat as chat_with

    wanted = stack(options_of(ctx), [instance] if instance else None, ensure_key=True)
    raise typer.Exit(chat_with(wanted, engine_of(options_of(ctx)), model))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="models")
    root.command()(chat)
