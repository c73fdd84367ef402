"""How engine commands are started: every spawn path runs with the same environment, real
processes (sh stands in for the engine's CLI)."""

from __future__ import annotations

from airpods.engine.process import run_cli, run_streaming

SHOW = ["sh", "-c", 'echo "warning=$PODMAN_IGNORE_CGROUPSV1_WARNING home=$HOME"']


def test_podman_5s_cgroup_v1_warning_is_off_for_every_command(monkeypatch):
    """Podman 5 on a cgroup v1 host prints a deprecation warning on every command unless this
    variable is set; it landed in `airpods logs` and in error tails (seen on Debian 13)."""
    monkeypatch.setenv("HOME", "/home/ada")
    assert run_cli(SHOW, 10).stdout.strip() == "warning=1 home=/home/ada"  # and the rest is kept
    lines: list[str] = []
    run_streaming(SHOW, lines.append, 10)
    assert lines == ["warning=1 home=/home/ada"]


def test_logs_run_with_it_too(monkeypatch, capsys):
    from airpods.engine.logs import stream_logs

    class Shell:  # the one Engine method stream_logs uses: which command shows a container's log
        def logs_argv(self, container: str, *, follow: bool, lines: int | None, since: str | None) -> list[str]:
            return SHOW

    monkeypatch.setenv("HOME", "/home/ada")
    assert stream_logs(Shell(), {"ollama": "ollama-0"}, follow=False, lines=None, since=None) == 0  # type: ignore[arg-type]
    assert capsys.readouterr().out.strip() == "warning=1 home=/home/ada"


def test_a_listing_started_early_is_taken_once_by_the_engine(tmp_path, monkeypatch):
    """`status` starts its container listing before the engine loads: the engine's own
    `containers()` takes that process's output instead of running the client again, once."""
    from airpods.engine.early import start_listing
    from airpods.engine.podman import Podman

    runs = tmp_path / "runs"
    fake = tmp_path / "bin" / "podman"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$*" >> {runs}\necho \'[{{"Names": ["ollama-0"], "State": "running"}}]\'\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    start_listing("podman")
    engine = Podman()
    first = engine.containers()
    assert [c.name for c in first] == ["ollama-0"]
    assert runs.read_text().splitlines() == ["ps --all --pod --format json --filter label=io.airpods.managed=true"]
    engine.containers()  # a second listing runs the client again (what was started early is used once)
    assert len(runs.read_text().splitlines()) == 2
