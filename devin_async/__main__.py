"""`python -m devin_async` and the `devin-async` console script."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit code."""
    from ._cli import main as cli_main  # imported here: `import devin_async` stays CLI-free

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
