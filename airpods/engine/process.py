"""Running an engine's CLI: one command with a timeout and its stderr in a typed error, or one
whose output is shown as it comes (one-off tool containers); and EngineCli, what the Podman and
Docker engines share."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airpods.engine.early import cli_env, take
from airpods.engine.errors import EngineError, EngineMissing, EngineTimeout
from airpods.engine.run_options import TOOL_CAPS
from airpods.errors import RuntimeFailure
from airpods.labels import TOOL
from airpods.plan import DEFAULT_TIMEOUT_S

LONG_TIMEOUT_S = 24 * 3600.0  # volume export/import and model conversion of large models

if TYPE_CHECKING:
    from airpods.engine.base import OneOff
    from airpods.engine.env_handover import ImageConfig
    from airpods.plan import Step
    from airpods.stack.model import ServiceSpec


def run_cli(
    argv: Sequence[str],
    timeout: float,
    check: bool = True,
    input_text: str | None = None,
    hint: Callable[[str], str | None] = lambda _stderr: None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`argv` run with its output captured (stdin: `input_text`, else nothing; `env`: variables
    added to its environment, e.g. secrets `docker run --env NAME` hands over). Raises
    EngineTimeout after `timeout` seconds, and with `check` EngineError (exit code, stderr's
    tail, `hint(stderr)` as the next step) when it fails. A listing started early
    (engine/early.py) is taken instead of running it again."""
    try:
        early = take(argv) if input_text is None and not env else None
        if early is not None:
            try:
                out, err = early.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                early.kill()
                early.communicate()
                raise
            done = subprocess.CompletedProcess(list(argv), early.returncode, out, err)
        else:
            done = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                timeout=timeout,
                input=input_text,
                stdin=None if input_text is not None else subprocess.DEVNULL,
                env={**cli_env(), **(env or {})},
            )
    except subprocess.TimeoutExpired:
        raise EngineTimeout(argv, timeout) from None
    if check and done.returncode != 0:
        raise EngineError(argv, done.returncode, done.stderr, hint=hint(done.stderr))
    return done


def run_streaming(
    argv: Sequence[str], on_line: Callable[[str], None], timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """`argv` run to completion, stdout and stderr together, each line handed to `on_line` as
    it comes (without its newline) and all of it returned as stdout. Raises EngineTimeout after
    `timeout_s` seconds (the client process is killed)."""
    process = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
        env=cli_env(),
    )
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        process.kill()

    timer = threading.Timer(timeout_s, expire)
    timer.start()
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            on_line(line.rstrip("\n"))
        process.wait()
    finally:
        timer.cancel()
    if expired.is_set():
        raise EngineTimeout(argv, timeout_s)
    return subprocess.CompletedProcess(list(argv), process.returncode, "".join(lines), "")


def parse_json(out: str, command: str, empty: Any) -> Any:
    """The JSON document an engine printed for `command` (`empty` when it printed nothing).
    Lines before the document that are not JSON (a warning some setups print on stdout) are
    skipped. Raises RuntimeFailure when no JSON document is there."""
    text = out.strip()
    if not text:
        return empty
    lines = text.splitlines()
    for start, line in enumerate(lines):
        if line.lstrip().startswith(("[", "{")):
            try:
                return json.loads("\n".join(lines[start:]))
            except ValueError:
                break
    raise RuntimeFailure(
        f"`{command}` printed something that is not JSON: {lines[0][:200]!r}",
        hint=f"run `{command}` yourself: a warning on its standard output (containers.conf, storage) says why",
    )


def parse_json_lines(out: str, command: str) -> list[Any]:
    """One JSON object a line (`--format '{{json .}}'`); other lines (warnings) are skipped.
    Raises RuntimeFailure for a line that starts as JSON and is not."""
    rows = []
    for line in out.splitlines():
        if line.lstrip().startswith("{"):
            rows.append(parse_json(line, command, {}))
    return rows


def option_pairs(options: dict[str, str]) -> list[str]:
    """Driver options as `volume create --opt K=V` arguments."""
    return [arg for key, value in options.items() for arg in ("--opt", f"{key}={value}")]


def make_device(options: dict[str, str]) -> None:
    """The folder a bind volume's `device` names, made (0755: servers read it as other users)
    if missing: the engine mounts it and fails at the first container when it is not there."""
    if options.get("o") == "bind" and options.get("device"):
        Path(options["device"]).mkdir(mode=0o755, parents=True, exist_ok=True)


class EngineCli:
    """An engine's command-line client (`name` on PATH, or `binary`): commands run with a
    timeout, their failures as EngineError with `hint(stderr)` as the next step. Raises
    EngineMissing when the client is not installed."""

    name = ""
    install_hint = ""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or shutil.which(self.name)
        if not found:
            raise EngineMissing(f"{self.name} is not installed", hint=self.install_hint)
        self.binary = found
        # Volume name → its `volume inspect` row, remembered for this command: a volume's
        # mountpoint and driver options are fixed while it exists (create and remove forget it;
        # an absent volume is not remembered, so one made meanwhile is seen).
        self._volumes: dict[str, dict[str, Any]] = {}

    def one_off_argv(self, job: OneOff, *, interactive: bool = False) -> list[str]:
        raise NotImplementedError  # each engine renders its own

    def run_one_off(
        self, job: OneOff, *, on_line: Callable[[str], None] | None = None, timeout_s: float = LONG_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """`job` run to completion with its output captured; `on_line` sees each line of it as
        it comes (stdout and stderr together). Raises EngineTimeout after `timeout_s`, once the
        container is removed too (killing the client alone leaves it running and writing)."""
        argv = self.one_off_argv(job)
        try:
            if on_line is None:
                return run_cli(argv, timeout_s, check=False)
            return run_streaming(argv, on_line, timeout_s)
        except EngineTimeout:
            self.run(["rm", "--force", job.name], check=False)
            raise

    def run_interactive(self, job: OneOff) -> int:
        """`job` with this terminal attached (llama-cli's chat); its exit status."""
        return subprocess.call(self.one_off_argv(job, interactive=True), env=cli_env())

    def argv(self, args: Sequence[str]) -> list[str]:
        """`args` as a command line of this client (a leading "podman"/"docker" is replaced)."""
        args = list(args)
        return [self.binary, *args[1:]] if args and args[0] in (self.name, self.binary) else [self.binary, *args]

    def hint(self, stderr: str) -> str | None:
        return None

    def run(
        self,
        args: Sequence[str],
        timeout: float = DEFAULT_TIMEOUT_S,
        check: bool = True,
        input_text: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(self.argv(args), timeout, check, input_text, hint=self.hint, env=env)

    def handover(self, step: Step) -> tuple[ServiceSpec, ImageConfig] | None:
        """A container step's service and what its image runs and as whom (`image inspect`'s
        Config; both engines spell it the same), when it has env secrets for env_handover's
        wrapper to hand over; None for any other step. Raises EngineError when the image is
        absent."""
        from airpods.engine.env_handover import ImageConfig, env_uses

        spec = step.spec
        if step.kind != "container" or spec is None or not env_uses(spec):
            return None
        image = spec.run_image or spec.image
        done = self.run(["image", "inspect", "--format", "{{json .Config}}", image])
        return spec, ImageConfig.from_inspect(parse_json(done.stdout, f"{self.binary} image inspect {image}", {}))

    def inspect_volume(self, name: str) -> list[dict[str, Any]]:
        """`volume inspect NAME` rows: [] when the volume does not exist."""
        done = self.run(["volume", "inspect", name], check=False)
        return parse_json(done.stdout, f"{self.binary} volume inspect {name}", []) if done.returncode == 0 else []

    def remember_volumes(self, rows: Iterable[dict[str, Any]]) -> None:
        """Volume rows of a listing that carries what `volume inspect` does (podman's `volume
        ls --format json`): later looks at those volumes need no engine call."""
        self._volumes.update({str(row["Name"]): row for row in rows if row.get("Name")})

    def forget_volume(self, name: str) -> None:
        self._volumes.pop(name, None)

    def volume_row(self, name: str) -> dict[str, Any] | None:
        """The volume's inspect row (see `_volumes`), None when it does not exist."""
        if name not in self._volumes:
            rows = self.inspect_volume(name)
            if not rows:
                return None
            self._volumes[name] = rows[0]
        return self._volumes[name]

    def volume_exists(self, name: str) -> bool:
        return self.volume_row(name) is not None

    def volume_mountpoint(self, name: str) -> Path | None:
        """Where a volume's files are on this host, None when the engine does not say (or it is absent)."""
        row = self.volume_row(name)
        return Path(row["Mountpoint"]) if row and row.get("Mountpoint") else None

    def volume_options(self, name: str) -> dict[str, str] | None:
        """A volume's driver options (`--opt`: type, o, device), {} for a plain one, None when
        the volume does not exist."""
        row = self.volume_row(name)
        return None if row is None else {str(k): str(v) for k, v in (row.get("Options") or {}).items()}

    # -- a volume's data, through a short-lived helper container ------------------------------
    # The one way airpods reaches what a volume holds when its host folder is not plainly
    # readable here (a bind device, NFS options, Docker's root-only /var/lib/docker as a user):
    # the engine mounts the volume exactly as for a service. No network, every capability
    # dropped but the four tar needs to read files of any owner and keep owners and modes.

    def volume_tool(
        self,
        image: str,
        volumes: Sequence[tuple[str, str, str]],
        command: Sequence[str],
        *,
        folder: tuple[Path, str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> subprocess.CompletedProcess[str]:
        """`command` (entrypoint first) in a throwaway container of `image` that mounts each
        (volume, path, "ro"|"rw") and optionally one host `folder` (path, target, mode).
        Raises EngineError when it fails."""
        argv = ["run", "--rm", "--network", "none", "--cap-drop", "ALL"]
        argv += [arg for cap in TOOL_CAPS for arg in ("--cap-add", cap)]
        argv += ["--security-opt", "no-new-privileges", "--label", f"{TOOL}=volume"]
        argv += [arg for name, path, mode in volumes for arg in ("-v", f"{name}:{path}:{mode}")]
        if folder is not None:
            argv += ["-v", f"{folder[0]}:{folder[1]}:{folder[2]}"]
        argv += ["--entrypoint", command[0], image, *command[1:]]
        return self.run(argv, timeout)

    def tool_export(self, name: str, tar: Path, image: str) -> None:
        """The volume's files as a tar archive written to `tar` (its folder is mounted)."""
        self.volume_tool(
            image,
            [(name, "/v", "ro")],
            ["tar", "-C", "/v", "-cf", f"/out/{tar.name}", "."],
            folder=(tar.parent, "/out", "rw"),
            timeout=LONG_TIMEOUT_S,
        )

    def tool_import(self, name: str, tar: Path, image: str) -> None:
        """The files of the archive `tar` unpacked into the volume, owners and modes kept."""
        self.volume_tool(
            image,
            [(name, "/v", "rw")],
            ["tar", "-C", "/v", "-xpf", f"/in/{tar.name}"],
            folder=(tar.parent, "/in", "ro"),
            timeout=LONG_TIMEOUT_S,
        )

    def readable_folder(self, name: str) -> Path | None:
        """The host folder that *is* the volume's data when this process can read it: a plain
        volume's mountpoint, a bind device's folder; None for other driver options, an absent
        volume, or a folder this user cannot read (Docker's volumes as a non-root user)."""
        options = self.volume_options(name)
        if options is None:
            return None
        if not options:
            path = self.volume_mountpoint(name)
        elif "bind" in options.get("o", "").split(",") and options.get("device"):
            path = Path(options["device"])
        else:
            return None
        return path if path is not None and path.is_dir() and os.access(path, os.R_OK | os.X_OK) else None

    def volume_has_data(self, name: str, image: str) -> bool:
        """Whether the volume holds any file, asked of the volume itself (mounted as a service
        gets it): a bind device or a root-only folder is never taken for empty."""
        return bool(self.volume_tool(image, [(name, "/v", "ro")], ["ls", "-A", "/v"]).stdout.strip())

    def copy_volume(self, source: str, target: str, image: str, *, replace: bool = False) -> None:
        """Every file of `source` into `target` (owners, modes, links and special files kept, by
        `cp -a`: one process whose exit status says whether every file was read, which a
        `tar | tar` pipe without pipefail, unknown to dash, would not); with `replace`, what
        `target` held is removed first, in the same container."""
        clear = "rm -rf /to/* /to/.[!.]* /to/..?* && " if replace else ""  # every name, dotfiles too (POSIX sh)
        self.volume_tool(
            image,
            [(source, "/from", "ro"), (target, "/to", "rw")],
            ["sh", "-c", f"{clear}cp -a /from/. /to/"],
            timeout=LONG_TIMEOUT_S,
        )

    def logs_tail(self, container: str, lines: int = 20) -> list[str]:
        done = self.run(["logs", "--tail", str(lines), container], check=False, timeout=30)
        return (done.stdout + done.stderr).splitlines()[-lines:]

    def last_event_code(self, events: Sequence[str], code_of: Callable[[Any], Any]) -> int | None:
        """The exit code in the newest of the JSON event lines `events` prints (`code_of` picks
        it out of one event), None when there is none."""
        done = self.run(events, check=False, timeout=30)
        for line in reversed(done.stdout.splitlines()):
            try:
                return int(code_of(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                continue
        return None
