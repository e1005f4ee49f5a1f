"""Class 7: configuration that cannot work is a ValueError naming the field, at construction.

Pure unit tests: nothing here opens a socket. Every numeric field of `Timeouts`, `RetryPolicy`
and `PollPolicy` refuses infinity, NaN, negatives, zero, booleans and strings; `base_url`
refuses whitespace, control characters and a path (the SDK adds the version path itself).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from devin_async import DevinClient, PollPolicy, RetryPolicy, Timeouts

from .servers import KEY, ORG

BAD_VALUES: dict[str, Any] = {
    "inf": math.inf,
    "-inf": -math.inf,
    "nan": math.nan,
    "-1": -1,
    "0": 0,
    "True": True,
    "str-3": "3",
}
FIELDS: list[tuple[type[Any], str]] = [
    (Timeouts, "connect"),
    (Timeouts, "read"),
    (Timeouts, "total"),
    (RetryPolicy, "max_attempts"),
    (RetryPolicy, "initial_backoff"),
    (RetryPolicy, "max_backoff"),
    (RetryPolicy, "multiplier"),
    (RetryPolicy, "max_retry_after"),
    (RetryPolicy, "deadline"),
    (PollPolicy, "initial"),
    (PollPolicy, "max"),
    (PollPolicy, "multiplier"),
    (PollPolicy, "jitter"),
]
#: PollPolicy.jitter is a fraction of the interval: 0 (no jitter) is valid, above 1 is not.
ALLOWED = {(PollPolicy, "jitter", "0")}
CASES = [
    pytest.param(cls, name, value, id=f"{cls.__name__}.{name}={label}")
    for cls, name in FIELDS
    for label, value in BAD_VALUES.items()
    if (cls, name, label) not in ALLOWED
] + [pytest.param(PollPolicy, "jitter", 1.5, id="PollPolicy.jitter=1.5")]


@pytest.mark.parametrize(("cls", "name", "value"), CASES)
def test_a_bad_number_is_a_value_error_naming_the_field(
    cls: type[Any], name: str, value: Any
) -> None:
    with pytest.raises(ValueError, match=name):
        cls(**{name: value})


@pytest.mark.parametrize(
    ("cls", "fields"),
    [
        (Timeouts, {"connect": 0.5, "read": 2, "total": 3.0}),
        (RetryPolicy, {"max_attempts": 3, "initial_backoff": 0.1, "max_backoff": 2,
                       "multiplier": 1.5, "max_retry_after": 30, "deadline": 60}),
        (PollPolicy, {"initial": 0.5, "max": 10, "multiplier": 2, "jitter": 0}),
    ],
)
def test_sensible_values_are_kept(cls: type[Any], fields: dict[str, Any]) -> None:
    made = cls(**fields)
    for name, value in fields.items():
        assert getattr(made, name) == value


@pytest.mark.parametrize(
    "url",
    [
        "https://api.devin.ai /x",
        "https://api.devin.ai\n",
        "https://api.devin.ai/\n",
        "https://api.devin\n.ai",
        "https://api.devin.ai\t",
        "https://api.devin.ai\x00",
        "https://api\x7f.devin.ai",
        "https://api.devin.ai\x1b[31m",
        " https://api.devin.ai",
        "https://api.devin.ai/v3beta1",
        "https://api.devin.ai/v3",
        "https://api.devin.ai/v3beta1/organizations/org-test",
    ],
)
def test_a_bad_base_url_is_a_value_error(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        DevinClient(api_key=KEY, org_id=ORG, base_url=url)


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://api.devin.ai", "https://api.devin.ai"),
        ("https://api.devin.ai/", "https://api.devin.ai"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ],
)
def test_a_good_base_url_is_kept(url: str, kept: str) -> None:
    assert DevinClient(api_key=KEY, org_id=ORG, base_url=url).base_url == kept
