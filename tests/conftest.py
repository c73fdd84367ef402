"""Test layers: tests/unit is pure (no podman, isolated HOME/XDG); tests/integration runs the real
engine on the offline rig that scripts/test builds. AIRPODS_REQUIRE_E2E=1 turns every skip into
a failure, so CI cannot pass by skipping."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    for var, sub in (("HOME", ""), ("XDG_CONFIG_HOME", ".config"), ("XDG_STATE_HOME", ".local/state"),
                     ("XDG_CACHE_HOME", ".cache"), ("XDG_DATA_HOME", ".local/share")):
        path = home / sub
        path.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(path))
    monkeypatch.delenv("AIRPODS_CONFIG", raising=False)
    return home


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/unit/" in str(item.fspath).replace(os.sep, "/"):
            if "rig" in getattr(item, "fixturenames", ()):
                raise pytest.UsageError(f"{item.nodeid}: unit tests may not use the podman rig")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("AIRPODS_REQUIRE_E2E") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped with AIRPODS_REQUIRE_E2E=1 (a skip is a failure in CI): {report.longrepr}"
