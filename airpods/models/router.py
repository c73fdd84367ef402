"""A running llama.cpp router as airpods speaks to it, and the changes to it that must not cut
a request.

Facts from llama.cpp's tools/server/server-models.cpp (build b11434, the rig's), measured on it:
- `GET /models` lists every model with `status.value` unloaded | loading | loaded | sleeping |
  downloading, `status.failed` and `status.exit_code` once its process ended in error, and
  `status.preset`, the section it runs (or would run) with;
- `GET /slots?model=NAME` answers the slots of a model's process, each with `is_processing`
  (a running request); asked of an unloaded model, the router would load it, so only loaded
  models are asked;
- `POST /models/load` and `/models/unload` with `{"model": NAME}`;
- `GET /models?reload=1` rereads the preset file and the models folder: it **unloads every
  running model whose section changed or went** (a request running on it is cut: "proxy error:
  Failed to read connection") and loads no `load-on-startup` model ("a reload never spawns an
  instance"). So airpods lets the requests on the models a reload will unload finish first
  (bounded by `--drain`), and afterwards loads again what was loaded and the startup models.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from airpods.stack.model import ServiceSpec

RUNNING = ("loaded", "loading", "sleeping")  # a model with a process (what a reload may unload)
DRAIN_POLL_S = 0.5
DEFAULT_DRAIN_S = 60.0
HTTP_TIMEOUT_S = 10.0
EVERY_MODEL = "*"  # the preset file's shared section: a change there changes every model


@dataclass(frozen=True)
class ModelState:
    """One model of a router, as its GET /models says."""

    name: str
    value: str  # unloaded | loading | loaded | sleeping | downloading
    failed: bool = False
    exit_code: int | None = None

    @property
    def running(self) -> bool:
        return self.value in RUNNING

    def describe(self) -> str:
        return f"failed (exit {self.exit_code})" if self.failed else self.value


class RouterError(OSError):
    """The router did not answer as a llama.cpp router does (no answer, or an error status)."""


class UnknownModel(RouterError):
    """The router does not list the model asked for (`args`: its name, the names it lists)."""


class Router:
    """HTTP calls to one router, authenticated with the stack's key where it checks one."""

    def __init__(self, spec: ServiceSpec, key: str | None, timeout: float = HTTP_TIMEOUT_S) -> None:
        if not spec.publish:
            raise RouterError(f"{spec.name} is not published on the host")
        self.name, self.url, self.key, self.timeout = spec.name, spec.publish[0].url(), key, timeout

    def call(self, path: str, body: dict[str, object] | None = None) -> object:
        """GET `path` (POST `body` as JSON when given) and return the JSON answer. Raises
        RouterError for no answer, an error status or an answer that is not JSON."""
        import urllib.error
        import urllib.request

        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise RouterError(f"{self.name}: {path} answered HTTP {exc.code}") from None
        except (OSError, ValueError) as exc:
            raise RouterError(f"{self.name}: {path}: {exc}") from None

    def models(self, reload: bool = False) -> dict[str, ModelState]:
        """Every model and its state, by name (`reload`: after rereading the preset file)."""
        answer = self.call("/models?reload=1" if reload else "/models")
        rows = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(rows, list):
            raise RouterError(f"{self.name}: /models is not a router's model list")
        states = {}
        for row in rows:
            status = row.get("status") if isinstance(row, dict) else None
            if isinstance(status, dict) and isinstance(row.get("id"), str):
                code = status.get("exit_code")
                states[row["id"]] = ModelState(
                    row["id"],
                    str(status.get("value", "")),
                    bool(status.get("failed")),
                    code if isinstance(code, int) else None,
                )
        return states

    def slots(self, model: str) -> tuple[int, int]:
        """(running requests, slots) of a loaded model, from its GET /slots."""
        from urllib.parse import quote

        answer = self.call(f"/slots?model={quote(model)}")
        slots = [s for s in answer if isinstance(s, dict)] if isinstance(answer, list) else []
        return sum(1 for s in slots if s.get("is_processing")), len(slots)

    def load(self, model: str) -> None:
        self.call("/models/load", {"model": model})

    def unload(self, model: str) -> None:
        self.call("/models/unload", {"model": model})


def running_requests(router: Router, models: Iterable[str]) -> dict[str, int]:
    """Model → requests running on it, for the loaded `models` that have any (a model whose
    slots cannot be read counts none: it is loading or just went)."""
    busy = {}
    for model in models:
        try:
            running, _ = router.slots(model)
        except RouterError:
            continue
        if running:
            busy[model] = running
    return busy


def drain(
    router: Router,
    models: Collection[str],
    drain_s: float,
    say: Callable[[str], None],
    why: str,
    cancel: Callable[[], bool] = lambda: False,
) -> dict[str, int]:
    """Wait until no request runs on `models` (loaded ones), at most `drain_s` seconds, saying
    once what it waits for and `why`. Returns the requests still running when it gave up ({}
    when they finished)."""
    busy = running_requests(router, models)
    if not busy or drain_s <= 0:
        return busy
    said = ", ".join(f"{n} on {m}" for m, n in busy.items())
    say(
        f"{router.name}: {sum(busy.values())} request(s) running ({said}): {why}; waiting up to {drain_s:g} s "
        "for them to finish (--drain 0 does not wait)"
    )
    deadline = time.monotonic() + drain_s
    while busy and time.monotonic() < deadline and not cancel():
        time.sleep(DRAIN_POLL_S)
        busy = running_requests(router, busy)
    return busy


def changed_sections(old: str, new: str) -> set[str]:
    """The sections of a preset file that differ between two of its texts (added, gone or
    changed; comments and order aside). EVERY_MODEL among them when the shared section changed.
    A text that is not an INI file counts as every section changed."""
    import configparser

    def sections(text: str) -> dict[str, dict[str, str]] | None:
        parser = configparser.ConfigParser(interpolation=None, strict=False, default_section="\0")
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys as written
        try:
            parser.read_string("[\0top]\n" + text)
        except configparser.Error:
            return None
        return {name: dict(parser[name]) for name in parser.sections() if name != "\0top"}

    before, after = sections(old), sections(new)
    if before is None or after is None:
        return {EVERY_MODEL}
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}


def apply_presets(
    spec: ServiceSpec,
    key: str | None,
    old: str,
    new: str,
    drain_s: float,
    say: Callable[[str], None],
    cancel: Callable[[], bool] = lambda: False,
) -> None:
    """A running router rereads its rewritten preset file (`old` → `new`) without cutting a
    request: the loaded models whose section changed are the ones the reread unloads, so their
    running requests finish first (up to `drain_s`); after the reread, the models that were
    loaded and the startup models are loaded again (with their new flags). Raises RouterError
    when the router does not answer."""
    router = Router(spec, key)
    states = router.models()
    loaded = [name for name, state in states.items() if state.running]
    changed = changed_sections(old, new)
    affected = loaded if EVERY_MODEL in changed else [name for name in loaded if name in changed]
    serving = [name for name in affected if states[name].value == "loaded"]  # the others run no request
    left = drain(
        router, serving, drain_s, say, "their flags changed, and rereading the preset file unloads them", cancel
    )
    if left:
        say(
            f"{spec.name}: still running after {drain_s:g} s, cut by the reread: "
            + ", ".join(f"{n} on {m}" for m, n in left.items())
        )
    after = router.models(reload=True)
    again = [n for n in loaded if n in after and not after[n].running]
    startup = [p.name for p in spec.presets if p.load_on_startup and p.name in after and not after[p.name].running]
    for name in dict.fromkeys([*again, *startup]):
        router.load(name)
    if affected:
        say(f"{spec.name}: reread its preset file; {', '.join(affected)} loading again with the new flags")
    else:
        say(f"{spec.name}: reread its preset file (no loaded model's flags changed)")
    if fresh := [n for n in startup if n not in again]:
        say(f"{spec.name}: loading its startup model{'s' if len(fresh) > 1 else ''} {', '.join(fresh)}")


def before_recreate(
    spec: ServiceSpec,
    key: str | None,
    drain_s: float,
    say: Callable[[str], None],
    why: str,
    cancel: Callable[[], bool] = lambda: False,
) -> list[str]:
    """A running router about to be recreated (`why`): say which models it has loaded and let
    their running requests finish (up to `drain_s`). Returns the loaded models (loaded again
    once the new one is up: `load_again`); [] when it does not answer."""
    try:
        router = Router(spec, key)
        states = router.models()
    except RouterError:
        return []
    loaded = [name for name, state in states.items() if state.running]
    if loaded:
        say(
            f"{spec.name}: {why}: its loaded model{'s' if len(loaded) > 1 else ''} {', '.join(loaded)} "
            "will be loaded again once the new container is up"
        )
    left = drain(router, [n for n in loaded if states[n].value == "loaded"], drain_s, say, why, cancel)
    if left:
        say(
            f"{spec.name}: still running after {drain_s:g} s, cut by the recreation: "
            + ", ".join(f"{n} on {m}" for m, n in left.items())
        )
    return loaded


def load_again(spec: ServiceSpec, key: str | None, models: Collection[str], say: Callable[[str], None]) -> None:
    """After a recreation: load the models the router had loaded (those it still lists and that
    are not loaded or loading already, e.g. its startup models)."""
    router = Router(spec, key)
    states = router.models()
    wanted = [m for m in models if m in states and not states[m].running]
    for model in wanted:
        router.load(model)
    if wanted:
        say(f"{spec.name}: loading again what it had loaded: {', '.join(wanted)}")


def wait_state(router: Router, model: str, done: Callable[[ModelState], bool], timeout_s: float) -> ModelState:
    """Poll GET /models until `model`'s state is `done` (or failed, or gone), at most
    `timeout_s`. Returns the last state seen. Raises RouterError when the model is not listed."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = router.models().get(model)
        if state is None:
            raise RouterError(f"{router.name} no longer lists the model {model}")
        if done(state) or state.failed or time.monotonic() >= deadline:
            return state
        time.sleep(DRAIN_POLL_S)


def reload_model(
    router: Router, model: str, drain_s: float, timeout_s: float, say: Callable[[str], None]
) -> ModelState:
    """`airpods models reload NAME`: unload one model (once its running requests finished, up
    to `drain_s`) and load it again, which reads its preset section anew; the other models are
    not touched. Returns its state once loaded (or failed, or after `timeout_s`)."""
    states = router.models()
    state = states.get(model)
    if state is None:
        raise UnknownModel(model, sorted(states))
    if state.running:
        left = drain(router, [model] if state.value == "loaded" else [], drain_s, say, f"{model} is reloaded")
        if left:
            say(f"{router.name}: still running after {drain_s:g} s, cut: {left[model]} on {model}")
        router.unload(model)
        wait_state(router, model, lambda s: not s.running, timeout_s)
        say(f"{router.name}: unloaded {model}")
    router.load(model)
    say(f"{router.name}: loading {model}")
    return wait_state(router, model, lambda s: s.value == "loaded", timeout_s)
