"""Programs from the system (Debian packages) that some tests need.

Locally a missing program skips its tests with a message; in CI (``SAHAY_TESTS_REQUIRE_SYSTEM=1``,
set by ``.ci/run`` after ``scripts/setup-system``) it fails them, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE = os.environ.get("SAHAY_TESTS_REQUIRE_SYSTEM") == "1"


def missing(what: str) -> None:
    """Skip (or, in CI, fail) because ``what`` is not installed."""
    message = f"{what} is not installed; scripts/setup-system installs it"
    if REQUIRE:
        pytest.fail(message)
    pytest.skip(message)


def require_program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(name)
    assert path is not None
    return path
