"""Fixtures for the fuzz tests: a web service of their own, with the demonstration model.

The app is the one tests/api/conftest.py builds (``make_settings``, ``open_world``), on its own
SAHAY_HOME, so that the fuzz uploads never show up in the shared ``world`` the API tests count.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sahay.models.registry import import_path
from tests.api.conftest import Account, World, make_settings, open_world

# Hypothesis keeps a cache (constants from the source) under .hypothesis/ in the working folder;
# keep it out of the checkout unless the developer chose a place.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "sahay-hypothesis"))

FUZZ_MAX_FILE_MB = 8
FUZZ_MAX_PIXELS = 4_000_000
"""The limits the fuzz targets run under: bombs meet them quickly, and an image that passes them
is analysed within the deadline even on a busy CI machine."""


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory: pytest.TempPathFactory, demo_bundle_dir: Path) -> Iterator[World]:
    settings = make_settings(
        tmp_path_factory.mktemp("fuzz-world"), max_file_mb=FUZZ_MAX_FILE_MB, max_pixels=FUZZ_MAX_PIXELS
    )
    import_path(demo_bundle_dir, settings)
    with open_world(settings) as world:
        yield world


@pytest.fixture(scope="module")
def fuzz_account(fuzz_world: World) -> Account:
    return fuzz_world.account("fuzzer")
