"""Where the project's shared datasets are: $FLOWJAX_SHARED_DATA, else `../shared/data` beside
the checkout. Tests that need them skip (saying why) if neither exists."""

import os
from pathlib import Path

import pytest

CANDIDATES = [
    os.environ.get("FLOWJAX_SHARED_DATA"),
    Path(__file__).parents[2] / "shared" / "data",
]


def shared_data() -> Path:
    for candidate in CANDIDATES:
        if candidate and (Path(candidate) / "mnist").is_dir():
            return Path(candidate)
    pytest.skip(f"shared datasets not found (looked in {[str(c) for c in CANDIDATES if c]})")
