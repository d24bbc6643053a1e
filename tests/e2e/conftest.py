"""Fixtures for the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from sahay.config import Settings
from sahay.models.registry import import_path


@pytest.fixture
def demo_installed(settings: Settings, demo_bundle_dir: Path) -> Settings:
    """The demonstration bundle installed in this test's SAHAY_HOME."""
    import_path(demo_bundle_dir, settings)
    return settings
