"""Issue 33 §1, the pure parts: which sections of a preset file a rewrite changes (the models a
router's reread unloads), what needs a new container and what only a reread, and where the
plan lets a router's requests finish."""

from __future__ import annotations

from airpods.models.router import EVERY_MODEL, changed_sections
from airpods.plan import Observed, build_start_plan
from airpods.stack.presets import preset_ini
from tests.unit.helpers import stack_of
from tests.unit.test_day_two import running

BEFORE = "version = 1\n\n[*]\nctx-size = 4096\n\n; declared in the config\n[tiny1]\nload-on-startup = true\n"


def test_only_the_sections_that_differ_are_changed():
    added = BEFORE + "\n[tiny2]\nctx-size = 512\n"
    assert changed_sections(BEFORE, added) == {"tiny2"}
    assert changed_sections(added, BEFORE) == {"tiny2"}  # gone
    assert changed_sections(BEFORE, BEFORE.replace("; declared in the config\n", "")) == set()  # comments aside
    flag = BEFORE.replace("load-on-startup = true", "load-on-startup = true\nthreads = 2")
    assert changed_sections(BEFORE, flag) == {"tiny1"}
    assert changed_sections(BEFORE, BEFORE.replace("4096", "8192")) == {EVERY_MODEL}
    assert changed_sections("", BEFORE) == {EVERY_MODEL, "tiny1"}  # a first file
    assert changed_sections(BEFORE, "[unclosed\n") == {EVERY_MODEL}  # not an INI file: everything


def test_the_rendered_file_of_one_more_model_changes_that_model_alone(tmp_path):
    one = stack_of(tmp_path, "[services.llamacpp.models.tiny1]\nload_on_startup = true\n").service("llamacpp")
    two = stack_of(
        tmp_path, "[services.llamacpp.models.tiny1]\nload_on_startup = true\n[services.llamacpp.models.tiny2]\n"
    ).service("llamacpp")
    assert changed_sections(preset_ini(one.presets), preset_ini(two.presets)) == {"tiny2"}
    assert one.config_hash == two.config_hash  # the same container


def test_a_model_change_rereads_the_running_router_before_its_wait_and_a_recreation_drains_it(tmp_path):
    before = stack_of(tmp_path, "[services.llamacpp.models.tiny1]\nload_on_startup = true\n")
    observed = running(before)
    after = stack_of(tmp_path, "[services.llamacpp.models.tiny1]\nctx_size = 512\n[services.llamacpp.models.big]\n")
    kept = [(s.kind, s.target) for s in build_start_plan(after, observed).steps if s.service == "llamacpp"]
    assert kept == [("reload", "llamacpp"), ("wait", "llamacpp")]
    recreated = stack_of(tmp_path, "[services.llamacpp.command_args]\nthreads_http = 3\n")
    steps = [s for s in build_start_plan(recreated, observed).steps if s.service == "llamacpp"]
    assert [s.kind for s in steps] == ["drain", "remove", "pod", "container", "wait"]
    assert steps[0].names == ("config changed",)
    stopped = Observed(**{**observed.__dict__, "pods": {}})
    assert "drain" not in [s.kind for s in build_start_plan(recreated, stopped).steps]  # nothing runs: no wait
