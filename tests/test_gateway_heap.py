"""The served gateway tunes the cycle collector once started: what startup built is frozen and young
objects are collected every 10,000 net allocations (``server.settle_heap``; figures in docs/decisions.md).
Checked in a child process, since freezing the test process's heap would outlive the test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CHILD = """
import gc, os, signal
from model_orchestrator.config.loader import parse_config
from model_orchestrator.gateway import Gateway, GatewaySettings
from model_orchestrator.gateway.server import run
from model_orchestrator.orchestrator import Orchestrator

config = parse_config(
    "models:\\n"
    "  - {name: a, provider: openai, model: m, api_base: 'http://127.0.0.1:9/v1', api_key_env: K}\\n"
)
print("before", gc.get_freeze_count(), gc.get_threshold()[0], flush=True)


def announce(_url):
    print("serving", gc.get_freeze_count(), gc.get_threshold()[0], flush=True)
    os.kill(os.getpid(), signal.SIGTERM)


settings = GatewaySettings(port=0, auth=False)
run(lambda: Gateway(Orchestrator(config, env={"K": "k"}), settings), announce=announce)
"""


def test_serving_freezes_the_startup_heap_and_collects_young_objects_less_often(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "ORCHESTRATOR_HOME": str(tmp_path)},
        check=True,
    )
    before, serving = (line.split() for line in done.stdout.splitlines())
    assert before == ["before", "0", "700"]
    assert serving[0] == "serving" and int(serving[1]) > 10_000
    assert serving[2] == "10000"
