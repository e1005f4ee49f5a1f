"""How many examples a property test tries (hypothesis `max_examples`).

Each property test names its thorough count. An ordinary run (a developer's, every CI job) tries
half of it, at least 25: the suite stays within its time budget, and since the draws are random
(unless a test derandomizes), runs on different machines and Pythons still cover new ground.
`DEVIN_ASYNC_HYPOTHESIS=thorough` runs the thorough counts (before a release, or in a nightly).
"""

from __future__ import annotations

import os

THOROUGH = os.environ.get("DEVIN_ASYNC_HYPOTHESIS", "").strip().lower() == "thorough"


def examples(thorough: int) -> int:
    """Return `max_examples` for a test whose thorough count is `thorough`."""
    return thorough if THOROUGH else max(25, thorough // 2)
