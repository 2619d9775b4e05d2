"""Test-wide isolation: no real home, no real provider keys, no config file from the working directory."""

from __future__ import annotations

import os

import pytest

# The private redis-server fixtures (redis_server, redis_url, own_redis) for the shared-state tests.
pytest_plugins = ["tests.redis_server"]

_KEY_MARKERS = ("API_KEY", "_TOKEN", "ORCHESTRATOR_")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for name in list(os.environ):
        if any(marker in name for marker in _KEY_MARKERS):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("orchestrator-home")
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(home))
    monkeypatch.chdir(home)
