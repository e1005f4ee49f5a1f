"""The pytest plugin, seen from a user's project: no conftest, only a test file.

Each case writes a small project with `pytester` and runs pytest on it. The two end-to-end cases
(a user's auto-mode project, and one without pytest-asyncio, which must hide an imported module)
run it in a subprocess, which imports this tree's `devin_async` (PYTHONPATH); the others run it
in this process (`runpytest_inprocess`: a fresh config and plugin manager, the same entry points,
~3 s less each). An installed package brings the plugin through its `pytest11` entry point; where
the installed metadata predates the entry point (a worktree run against another checkout's
install), the plugin is named with `-p` instead, which loads the same module.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINT = ("devin_async", "devin_async.pytest_plugin")


def _entry_point_installed() -> bool:
    found = importlib.metadata.entry_points(group="pytest11")
    return any((ep.name, ep.value) == ENTRY_POINT for ep in found)


PLUGIN_ARGS: tuple[str, ...] = () if _entry_point_installed() else ("-p", ENTRY_POINT[1])

INI = """\
[pytest]
asyncio_mode = {mode}
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""

USER_TESTS = f"""\
from pathlib import Path

import aiohttp
import pytest

import devin_async.pytest_plugin
from devin_async import NotFoundError
from devin_async.testing import FakeDevinServer

clients = []


def test_the_plugin_comes_from_the_tree_under_test():
    assert Path(devin_async.pytest_plugin.__file__).is_relative_to({str(ROOT)!r})


async def test_create_and_wait(devin_client, devin_fake):
    session = await devin_client.sessions.create("Say hi")
    done = await devin_client.sessions.wait(session.session_id, timeout=30)
    assert done.is_settled and done.session_id == session.session_id
    assert devin_fake.session_count == 1
    assert devin_fake.session(session.session_id)["status"] == done.status.value


async def test_defaults(devin_fake):
    assert devin_fake.time_scale == 60.0
    assert devin_fake.listening and devin_fake.url.startswith("http://127.0.0.1:")


@pytest.mark.devin_fake(time_scale=5.0, seed=7, error_style="problem")
async def test_marker_options(devin_fake, devin_client):
    assert devin_fake.time_scale == 5.0
    assert devin_fake.org_id == FakeDevinServer(seed=7).org_id != FakeDevinServer(seed=0).org_id
    with pytest.raises(NotFoundError) as info:
        await devin_client.sessions.get("devin-nope")
    assert info.value.body["title"] == "Not Found"


@pytest.mark.devin_fake(rate_limit=1.0, rate_limit_burst=1)
async def test_marker_rate_limit(devin_fake):
    url = f"{{devin_fake.url}}/v3beta1/organizations/{{devin_fake.org_id}}/sessions"
    headers = {{"Authorization": f"Bearer {{devin_fake.api_key}}"}}
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(2):
            async with http.get(url, headers=headers) as response:
                statuses.append(response.status)
    assert statuses == [200, 429]


@pytest.mark.devin_fake(time_scale=5.0)
@pytest.mark.parametrize("devin_fake", [{{"time_scale": 120.0}}, {{"seed": 3}}], indirect=True)
async def test_indirect_param_beats_the_marker(devin_fake, request):
    param = request.node.callspec.params["devin_fake"]
    assert devin_fake.time_scale == param.get("time_scale", 5.0)


async def test_client_one(devin_client):
    clients.append(devin_client)
    assert not devin_client.closed


async def test_client_two_gets_a_fresh_one(devin_client):
    assert clients[0].closed and devin_client is not clients[0]


@pytest.mark.devin_fake(tim_scale=1.0)
async def test_unknown_option(devin_fake):
    raise AssertionError("not reached")


@pytest.mark.parametrize("devin_fake", [5], indirect=True)
async def test_param_not_a_mapping(devin_fake):
    raise AssertionError("not reached")
"""

STRICT_TESTS = """\
import pytest


@pytest.mark.asyncio
@pytest.mark.devin_fake(time_scale=120.0)
async def test_strict_create_and_wait(devin_client, devin_fake):
    session = await devin_client.sessions.create("Say hi")
    done = await devin_client.sessions.wait(session.session_id, timeout=30)
    assert done.is_settled and devin_fake.time_scale == 120.0
"""

PLAIN_TESTS = """\
import pytest


def test_plain():
    assert sum([1, 2]) == 3


{marker}async def test_async_without_the_fixtures():
    assert True
"""

NO_ASYNCIO_TESTS = """\
def test_plain():
    assert sum([1, 2]) == 3


def test_wants_the_fake(devin_fake):
    raise AssertionError("not reached")
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(name, raising=False)
    return pytester


def _run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess(*PLUGIN_ARGS, "-p", "no:cacheprovider", *args)


def _run_inprocess(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_inprocess(*PLUGIN_ARGS, "-p", "no:cacheprovider", *args)


def test_auto_mode_fixtures_marker_and_params(project: pytest.Pytester) -> None:
    project.makeini(INI.format(mode="auto"))
    project.makepyfile(test_user=USER_TESTS)
    result = _run(project, "--strict-markers", "-rE")
    result.assert_outcomes(passed=9, errors=2)
    result.stdout.fnmatch_lines([
        "E * ValueError: devin_fake: unknown FakeDevinServer option(s) tim_scale; known: *",
        "E * ValueError: an indirect devin_fake parameter must be a mapping *, got int",
    ])


def test_strict_mode(project: pytest.Pytester) -> None:
    project.makeini(INI.format(mode="strict"))
    project.makepyfile(test_strict=STRICT_TESTS)
    result = _run_inprocess(project, "--strict-markers")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("mode", ["auto", "strict"])
def test_a_project_without_the_fixtures_is_untouched(project: pytest.Pytester, mode: str) -> None:
    project.makeini(INI.format(mode=mode))
    marker = "@pytest.mark.asyncio\n" if mode == "strict" else ""
    project.makepyfile(test_plain=PLAIN_TESTS.format(marker=marker))
    result = _run_inprocess(project, "--strict-markers", "--setup-show")
    result.assert_outcomes(passed=2)
    assert "devin_" not in result.stdout.str()  # nothing of the plugin was set up


def test_the_fixtures_and_the_marker_are_listed(project: pytest.Pytester) -> None:
    project.makeini(INI.format(mode="auto"))
    fixtures = _run_inprocess(project, "--fixtures")
    fixtures.stdout.fnmatch_lines(["*fixtures defined from devin_async.pytest_plugin*"])
    assert {"devin_fake", "devin_client"} <= {
        line.split(" -- ")[0] for line in fixtures.outlines if "pytest_plugin.py:" in line}
    markers = _run_inprocess(project, "--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.devin_fake(**options): FakeDevinServer keyword*"])
    assert fixtures.ret == markers.ret == 0


def test_without_pytest_asyncio_the_fixtures_say_what_to_install(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nfilterwarnings = error\n")
    project.makepyfile(test_no_asyncio=NO_ASYNCIO_TESTS)
    # As if pytest-asyncio were not installed: its plugin is blocked, and a stand-in package
    # found first on sys.path makes `import pytest_asyncio` fail.
    project.mkpydir("pytest_asyncio").joinpath("__init__.py").write_text(
        "raise ModuleNotFoundError('pytest_asyncio is hidden', name='pytest_asyncio')\n")
    result = _run(project, "-p", "no:asyncio", "-rE")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*the devin_fake fixture is async and needs pytest-asyncio: "
                                 "pip install pytest-asyncio*"])


def test_the_entry_point_is_installed_with_this_tree() -> None:
    # pyproject's declaration is checked in test_packaging; here the installed metadata, when it
    # was built from this tree (an editable install of this checkout, as in CI).
    try:
        direct_url = importlib.metadata.distribution("devin-async").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        direct_url = None
    installed_from = json.loads(direct_url)["url"] if direct_url else None
    if installed_from == ROOT.as_uri():
        assert _entry_point_installed()
        assert not PLUGIN_ARGS  # the runs above loaded the plugin through the entry point
    else:  # another checkout's install (a worktree): its metadata may predate the entry point
        named = () if _entry_point_installed() else ("-p", ENTRY_POINT[1])
        assert named == PLUGIN_ARGS
