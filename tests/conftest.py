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


@pytest.fixture()
def fresh_ray(monkeypatch):
    """A new local Ray (2 CPUs) whose workers can import the test helpers (tests/ on PYTHONPATH).

    A Ray left running by an earlier in-process run (the runner keeps it up) is shut down first:
    its workers would lack this test's environment."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()
