"""Test layers: tests/unit is pure (no podman, isolated HOME/XDG); tests/integration runs the real
engine on the offline rig that scripts/test builds. AIRPODS_REQUIRE_E2E=1 turns every skip into
a failure, so CI cannot pass by skipping."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    for var, sub in (
        ("HOME", ""),
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_DATA_HOME", ".local/share"),
    ):
        path = home / sub
        path.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(path))
    monkeypatch.delenv("AIRPODS_CONFIG", raising=False)
    return home


def pytest_collection_modifyitems(config, items):
    # The real Open WebUI tier runs only when asked (AIRPODS_E2E_REAL_WEBUI=1): deselected, not
    # skipped, so a CI run without its cache is honest about it (.ci/run says so) and still green.
    if os.environ.get("AIRPODS_E2E_REAL_WEBUI") != "1":
        real = [item for item in items if item.get_closest_marker("real_webui")]
        if real:
            config.hook.pytest_deselected(items=real)
            items[:] = [item for item in items if not item.get_closest_marker("real_webui")]
    for item in items:
        if "tests/unit/" in str(item.fspath).replace(os.sep, "/"):
            if "rig" in getattr(item, "fixturenames", ()):
                raise pytest.UsageError(f"{item.nodeid}: unit tests may not use the podman rig")


REAL_TIER: list[tuple[str, str, float]] = []  # (test, outcome, seconds) of the real Open WebUI tier


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("AIRPODS_REQUIRE_E2E") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped with AIRPODS_REQUIRE_E2E=1 (a skip is a failure in CI): {report.longrepr}"
    if item.get_closest_marker("real_webui") and (report.when == "call" or report.outcome != "passed"):
        REAL_TIER.append((f"{item.name} ({report.when})", report.outcome, report.duration))


def pytest_terminal_summary(terminalreporter):
    """The real Open WebUI tier's own lines, so a log shows it ran and how long each test took."""
    if os.environ.get("AIRPODS_E2E_REAL_WEBUI") != "1":
        return
    write = terminalreporter.write_line
    write(f"real Open WebUI tier: {len(REAL_TIER)} results")
    for name, outcome, seconds in REAL_TIER:
        write(f"real Open WebUI tier: {name}: {outcome} in {seconds:.1f} s")
