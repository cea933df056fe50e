"""Shared test setup: offline HF, quiet Ray, and the path to the real fixtures in ../shared/data."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# Never read or pollute the user's HF cache: a cached build of another folder with the same name
# would be returned silently (the stale-cache trap, ecosystem.md a.6).
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="dexdata-test-hf-cache-")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DEXDATA_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real fixtures (read-only). Tests never copy them into the repo."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real fixtures not found at {SHARED_DATA}")
    return SHARED_DATA


def pytest_sessionfinish(session, exitstatus):
    """Stop a local Ray started by any test (the runner leaves it up for reuse within a process)."""
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
