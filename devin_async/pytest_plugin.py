"""pytest fixtures for code that uses devin_async: `devin_fake` and `devin_client`.

Installing devin-async registers this module (entry point `pytest11`), so a test needs no conftest:

    async def test_flow(devin_client):
        session = await devin_client.sessions.create("Say hi")
        assert (await devin_client.sessions.wait(session.session_id)).is_settled

`devin_fake` options (any `FakeDevinServer` keyword), lowest to highest precedence: the defaults
below, the closest `@pytest.mark.devin_fake(...)`, then an indirect parameter
(`@pytest.mark.parametrize("devin_fake", [{"rate_limit": 5.0}], indirect=True)`).

Why it looks like this: the module loads in every pytest run of every project that has the package
installed, so it adds two fixtures and a marker and nothing else (no autouse fixture, no collection
hook), and the fake server and the client are imported inside the fixtures. Async fixtures run in
both pytest-asyncio modes only when declared with `pytest_asyncio.fixture` (strict mode ignores a
plain `pytest.fixture` on an async function); without pytest-asyncio the fixtures fail with a
message saying what to install, and the rest of the run is untouched.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

import pytest

if TYPE_CHECKING:
    from devin_async import DevinClient
    from devin_async.testing import FakeDevinServer

__all__ = ["DEFAULT_FAKE_OPTIONS", "devin_client", "devin_fake"]

#: What `devin_fake` passes to `FakeDevinServer` unless a marker or parameter says otherwise.
DEFAULT_FAKE_OPTIONS: Mapping[str, Any] = types.MappingProxyType({"time_scale": 60.0})

_MARKER = "devin_fake"
_MARKER_HELP = (
    "devin_fake(**options): FakeDevinServer keyword arguments for the devin_fake fixture "
    "(time_scale, rate_limit, error_style, seed, ...)"
)
_NEEDS_PYTEST_ASYNCIO = (
    "the {name} fixture is async and needs pytest-asyncio: pip install pytest-asyncio "
    "(or devin-async[test])"
)

_F = TypeVar("_F", bound=Callable[..., Any])


def pytest_configure(config: pytest.Config) -> None:
    """Register the `devin_fake` marker, so `--strict-markers` projects accept it."""
    config.addinivalue_line("markers", _MARKER_HELP)


def _async_fixture(func: _F) -> _F:
    """Declare `func` with `pytest_asyncio.fixture`, or as a fixture that says to install it."""
    try:
        import pytest_asyncio
    except ImportError:
        return cast(_F, _missing_pytest_asyncio(func.__name__))
    return cast(_F, pytest_asyncio.fixture(func))


def _missing_pytest_asyncio(name: str) -> Any:
    def fixture() -> NoReturn:
        pytest.fail(_NEEDS_PYTEST_ASYNCIO.format(name=name), pytrace=False)

    fixture.__doc__ = f"Fail: {name} needs pytest-asyncio."
    return pytest.fixture(name=name)(fixture)


def _fake_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Return the `FakeDevinServer` keywords for this test: defaults, marker, indirect param.

    Raises:
        ValueError: the marker has positional arguments, the parameter is not a mapping, or an
            option is not a `FakeDevinServer` keyword.
    """
    from devin_async.testing import FakeDevinServer

    options = dict(DEFAULT_FAKE_OPTIONS)
    marker = request.node.get_closest_marker(_MARKER)
    if marker is not None:
        if marker.args:
            raise ValueError(
                f"@pytest.mark.devin_fake takes keyword arguments only, got {marker.args!r}"
            )
        options.update(marker.kwargs)
    param = getattr(request, "param", None)
    if param is not None:
        if not isinstance(param, Mapping):
            raise ValueError(
                "an indirect devin_fake parameter must be a mapping of FakeDevinServer "
                f"keywords, got {type(param).__name__}"
            )
        options.update(param)
    known = inspect.signature(FakeDevinServer).parameters
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"devin_fake: unknown FakeDevinServer option(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    return options


@_async_fixture
async def devin_fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeDevinServer]:
    """Yield a running `FakeDevinServer` on 127.0.0.1, closed after the test."""
    from devin_async.testing import FakeDevinServer

    async with FakeDevinServer(**_fake_options(request)) as server:
        yield server


@_async_fixture
async def devin_client(devin_fake: FakeDevinServer) -> AsyncIterator[DevinClient]:
    """Yield a `DevinClient` bound to `devin_fake`, polling fast, closed after the test."""
    from devin_async import DevinClient, PollPolicy

    client = DevinClient(
        base_url=devin_fake.url,
        api_key=devin_fake.api_key,
        org_id=devin_fake.org_id,
        poll=PollPolicy(initial=0.01, max=0.05, jitter=0.0),
    )
    async with client:
        yield client
