"""What pyproject.toml promises a user who installs the package (`.ci/run` builds and checks it).

Building here would need hatchling and the network; these read the declarations instead.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        data: dict[str, Any] = tomllib.load(f)["project"]
    return data


def _floors(requirements: list[str]) -> dict[str, str]:
    floors = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", requirement)
        assert match, f"not a plain floor: {requirement!r}"
        floors[match[1].lower()] = match[2]
    return floors


def test_the_pytest_plugin_is_declared(project: dict[str, Any]) -> None:
    assert project["entry-points"]["pytest11"] == {"devin_async": "devin_async.pytest_plugin"}
    assert (ROOT / "devin_async" / "pytest_plugin.py").is_file()


def test_the_command_line_is_declared(project: dict[str, Any]) -> None:
    assert project["scripts"] == {"devin-async": "devin_async.__main__:main"}


@pytest.mark.parametrize(("extra", "needs"), [
    ("speedups", {"orjson>=3.9"}),
    ("cli", {"rich>=13"}),
    ("otel", {"opentelemetry-api>=1.20"}),
    ("test", {"pytest>=8", "pytest-asyncio>=1.0", "jsonschema>=4", "rich>=13", "pydantic>=2",
              "opentelemetry-api>=1.20", "opentelemetry-sdk>=1.20", "hypothesis>=6"}),
])
def test_extras(project: dict[str, Any], extra: str, needs: set[str]) -> None:
    assert needs <= set(project["optional-dependencies"][extra])


def test_runtime_floors(project: dict[str, Any]) -> None:
    assert _floors(project["dependencies"]) == {
        "aiohttp": "3.10.6", "attrs": "23.1", "cattrs": "24.1"}


def test_the_lowest_constraints_pin_the_floors(project: dict[str, Any]) -> None:
    lines = (ROOT / "ci" / "lowest-constraints.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    floors = _floors(project["dependencies"])
    assert set(pins) == set(floors)
    for name, floor in floors.items():
        # The pin is the floor itself, or its first release (cattrs>=24.1: 24.1.0).
        assert pins[name] in (floor, floor + ".0"), (name, pins[name], floor)


@pytest.mark.parametrize("classifier", [
    "Programming Language :: Python :: 3 :: Only",
    "Programming Language :: Python :: 3.11",
    "Programming Language :: Python :: 3.12",
    "Programming Language :: Python :: 3.13",
    "Typing :: Typed",
    "Framework :: AsyncIO",
    "Framework :: Pytest",
])
def test_classifiers(project: dict[str, Any], classifier: str) -> None:
    assert classifier in project["classifiers"]


def test_license_and_python(project: dict[str, Any]) -> None:
    # An SPDX expression; PyPI refuses a `License ::` classifier next to one (PEP 639).
    assert project["license"] == "MIT"
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]
    assert project["license-files"] == ["LICENSE"]
    assert "Copyright (c) 2026 the devin_async authors" in (ROOT / "LICENSE").read_text()
    assert project["requires-python"] == ">=3.11"
    assert set(project["urls"]) == {"Homepage", "Source", "Changelog", "Issues"}


def test_the_package_is_marked_typed() -> None:
    assert (ROOT / "devin_async" / "py.typed").is_file()
