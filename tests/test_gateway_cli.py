"""``orchestrator keys create|list|revoke`` and ``orchestrator serve`` as a real process: a key made by the
CLI works against the served gateway, and SIGTERM finishes the request in flight and flushes the ledger."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import openai
import pytest

from model_orchestrator.testing import FakeUpstream, Reply
from tests.cli_helpers import command, run_cli
from tests.gateway_helpers import MASTER, USER, config_text


@pytest.mark.subprocess
def test_keys_create_list_revoke(tmp_path: Path) -> None:
    created = run_cli(
        "keys",
        "create",
        "--name",
        "ci",
        "--models",
        "a,b",
        "--budget",
        "5",
        "--rpm",
        "60",
        "--expires",
        "30d",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["key"].startswith("sk-orch-") and key["models"] == ["a", "b"] and key["rpm"] == 60
    assert key["expires_at"] == pytest.approx(time.time() + 30 * 86400, abs=60)

    listed = run_cli("keys", "list", "--json")
    assert json.loads(listed.stdout)[0]["id"] == key["id"]
    assert key["key"] not in listed.stdout

    assert run_cli("keys", "revoke", key["id"]).returncode == 0
    table = run_cli("keys", "list").stdout
    assert key["id"] in table and "revoked" in table
    missing = run_cli("keys", "revoke", "000000000000")
    assert missing.returncode == 2 and "no virtual key" in missing.stderr

    plain = run_cli("keys", "create")
    assert plain.stdout.strip().startswith("sk-orch-") and "shown once" in plain.stderr
    assert run_cli("keys", "create", "--expires", "someday").returncode == 2


@pytest.mark.subprocess
def test_serve_refuses_public_address_without_a_master_key() -> None:
    refused = run_cli("serve", "--host", "0.0.0.0")
    assert refused.returncode == 2 and "ORCHESTRATOR_MASTER_KEY" in refused.stderr
    no_auth = run_cli("serve", "--host", "0.0.0.0", "--no-auth", env={"ORCHESTRATOR_MASTER_KEY": "m"})
    assert no_auth.returncode == 2 and "loopback" in no_auth.stderr


def _start_server(config: Path) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k}
    env.update({"ORCHESTRATOR_MASTER_KEY": MASTER, "UP_KEY": "upstream-secret"})
    process = subprocess.Popen(
        [*command(), "--config", str(config), "serve", "--port", "0", "--shutdown-timeout", "20"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    assert "orchestrator gateway:" in line, line
    return process, line.split("gateway: ", 1)[1].split("/v1", 1)[0]


@pytest.mark.subprocess
async def test_served_gateway_takes_cli_keys_and_stops_gracefully(tmp_path: Path) -> None:
    async with FakeUpstream() as up:
        config = tmp_path / "orchestrator.yaml"
        config.write_text(config_text(up))
        made = run_cli("--config", str(config), "keys", "create", "--models", "a", "--json")
        secret = json.loads(made.stdout)["key"]
        process, url = _start_server(config)
        try:
            client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0)
            quick = await client.chat.completions.create(model="a", messages=USER)
            assert quick.choices[0].message.content == "ok"
            with pytest.raises(openai.PermissionDeniedError):
                await client.chat.completions.create(model="b", messages=USER)
            up.script(Reply("slow answer", latency=1.0))
            pending = asyncio.create_task(client.chat.completions.create(model="a", messages=USER))
            await up.await_started(2)
            process.send_signal(signal.SIGTERM)
            answer = await pending
            assert answer.choices[0].message.content == "slow answer"
            assert await asyncio.to_thread(process.wait, 30) == 0
            await client.close()
        finally:
            if process.poll() is None:
                process.kill()
    database = Path(os.environ["ORCHESTRATOR_HOME"]) / "ledger.sqlite3"
    with sqlite3.connect(database) as db:
        rows = db.execute("select api_key_id, ok from requests where model_used = 'a'").fetchall()
    assert len(rows) == 2 and all(r[0] and r[1] for r in rows)
