"""``orchestrator serve --workers N`` as real processes: N listening sockets on one port, a dead worker
restarted, a graceful stop of all of them, the refusal without shared state, and startup failures
reported once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from model_orchestrator.testing import FakeUpstream, Reply
from tests.cli_helpers import command, run_cli
from tests.gateway_helpers import MASTER, USER, config_text

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]


@dataclass
class Workers:
    """A running ``orchestrator serve``: its process, base URL and everything it wrote to stderr so far
    (read by a thread all along, so a chatty process never blocks on a full pipe)."""

    process: subprocess.Popen[str]
    url: str
    lines: list[str]
    reader: threading.Thread

    def stopped(self) -> tuple[int, str]:
        """Wait for the process to exit: its exit code and all it wrote to stderr."""
        code = self.process.wait(30)
        self.reader.join(10)
        return code, "".join(self.lines)


def start_workers(config: Path, *args: str, env: dict[str, str] | None = None) -> Workers:
    """``orchestrator serve --port 0 ARGS`` in the background, once it announced its URL."""
    full_env = {k: v for k, v in os.environ.items() if "API_KEY" not in k}
    full_env.update({"ORCHESTRATOR_MASTER_KEY": MASTER, "UP_KEY": "upstream-secret", **(env or {})})
    process = subprocess.Popen(
        [*command(), "--config", str(config), "serve", "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )
    lines: list[str] = []
    announced = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if "orchestrator gateway:" in line:
                announced.set()
        announced.set()  # it exited without announcing

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    announced.wait()
    url = next((line for line in lines if "orchestrator gateway:" in line), None)
    assert url is not None, "".join(lines)
    return Workers(process, url.split("gateway: ", 1)[1].split("/v1", 1)[0], lines, reader)


def listeners(port: int) -> int:
    """How many sockets listen on ``port`` (from /proc/net/tcp: state 0A is LISTEN)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1].endswith(f":{port:04X}") and row.split()[3] == "0A")


def workers_of(supervisor: int) -> set[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return {int(pid) for pid in children}


async def eventually(check: object, what: str, tries: int = 200) -> None:
    for _ in range(tries):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(what)


async def ask(url: str) -> str | None:
    """One request on a fresh connection (so the kernel picks a worker each time)."""
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=MASTER, max_retries=0, timeout=20) as client:
        answer = await client.chat.completions.create(model="a", messages=USER)
    return answer.choices[0].message.content


async def test_workers_share_the_port_restart_the_dead_and_stop_together(tmp_path: Path) -> None:
    async with FakeUpstream() as up:
        config = tmp_path / "orchestrator.yaml"
        config.write_text(config_text(up))
        workers = start_workers(config, "--workers", "3", "--allow-per-process-state")
        process, url = workers.process, workers.url
        port = int(url.rsplit(":", 1)[1])
        try:
            assert listeners(port) == 3
            first = workers_of(process.pid)
            assert len(first) == 3

            victim = min(first)  # killed before it served anything: a SIGKILL loses its unflushed rows
            os.kill(victim, signal.SIGKILL)
            await eventually(lambda: len(workers_of(process.pid) - first) == 1, "no worker was restarted")
            await eventually(lambda: listeners(port) == 3, "the restarted worker does not listen")
            assert victim not in workers_of(process.pid)
            assert await asyncio.gather(*(ask(url) for _ in range(18))) == ["ok"] * 18

            up.script(Reply("slow answer", latency=1.0))
            pending = asyncio.create_task(ask(url))
            await eventually(lambda: chats(up) == 19, "the slow request did not reach the upstream")
            running = workers_of(process.pid)
            process.send_signal(signal.SIGTERM)
            assert await pending == "slow answer"
            code, logged = await asyncio.to_thread(workers.stopped)
            assert code == 0
            assert f"gateway worker {victim} exited (killed by SIGKILL); starting another" in logged
            assert not any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in running)
        finally:
            if process.poll() is None:
                process.kill()
            print("".join(workers.lines))  # shown when the test failed
    database = Path(os.environ["ORCHESTRATOR_HOME"]) / "ledger.sqlite3"
    with sqlite3.connect(database) as db:  # every worker wrote to the one SQLite file
        assert db.execute("select count(*) from requests where ok").fetchone() == (19,)


async def test_ctrl_c_stops_every_worker(tmp_path: Path) -> None:
    async with FakeUpstream() as up:
        config = tmp_path / "orchestrator.yaml"
        config.write_text(config_text(up))
        workers = start_workers(config, "--workers", "2", "--allow-per-process-state")
        process, url = workers.process, workers.url
        try:
            running = workers_of(process.pid)
            assert await ask(url) == "ok"
            process.send_signal(signal.SIGINT)
            assert (await asyncio.to_thread(workers.stopped))[0] == 0
            assert not any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in running)
        finally:
            if process.poll() is None:
                process.kill()
            print("".join(workers.lines))  # shown when the test failed


async def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    """A supervisor killed with SIGKILL cannot forward a signal: the kernel stops its workers, so none
    keeps serving the port unsupervised."""
    async with FakeUpstream() as up:
        config = tmp_path / "orchestrator.yaml"
        config.write_text(config_text(up))
        workers = start_workers(config, "--workers", "2", "--allow-per-process-state")
        running = workers_of(workers.process.pid)
        try:
            assert len(running) == 2
            workers.process.kill()
            workers.process.wait(30)
            await eventually(
                lambda: not any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in running),
                "a worker outlived its supervisor",
            )
        finally:
            for pid in running:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


async def test_the_cause_of_a_failure_is_on_stderr_without_verbose(tmp_path: Path) -> None:
    """A ledger that cannot be opened answers 503 with retry-after and says nothing of it to the client;
    its operator reads the cause, with the request id, on stderr although logging was not turned on (-v)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    config = tmp_path / "orchestrator.yaml"
    config.write_text(  # auth off: nothing opens the ledger before a request reserves from the budget
        "default_model: a\nbudgets: {daily_usd: 10}\n"
        f"ledger: {{url: 'sqlite:///{blocker}/ledger.sqlite3'}}\n"
        "models: [{name: a, provider: openai, model: m, api_base: 'http://127.0.0.1:9/v1', "
        "price: {input: 1, output: 1}}]\n"
    )
    workers = start_workers(config, "--no-auth", "--workers", "2", "--allow-per-process-state")
    try:
        async with httpx.AsyncClient(base_url=workers.url) as client:
            failed = await client.post("/v1/chat/completions", json={"model": "a", "messages": USER})
        assert failed.status_code == 503 and failed.headers["retry-after"] == "1"
        assert failed.json()["error"]["code"] == "service_unavailable"
        assert "ledger open failed" not in failed.text and str(blocker) not in failed.text
        workers.process.send_signal(signal.SIGTERM)
        code, logged = await asyncio.to_thread(workers.stopped)
        assert code == 0
        request_id = failed.headers["x-orchestrator-request-id"]
        assert f"gateway request {request_id} failed" in logged
        assert "LedgerError: ledger open failed" in logged
    finally:
        if workers.process.poll() is None:
            workers.process.kill()


def chats(up: FakeUpstream) -> int:
    """Chat requests the upstream saw (the workers' health probes list models; they do not count)."""
    return sum(1 for r in up.requests if r.path.endswith("/chat/completions"))


def _alive(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1].split()[0]
    return state != "Z"


def test_several_workers_over_in_memory_state_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "orchestrator.yaml"
    config.write_text(
        "default_model: a\nmodels: [{name: a, provider: openai, model: m, api_base: http://x/v1}]\n"
    )
    refused = run_cli("--config", str(config), "serve", "--workers", "2")
    assert refused.returncode == 2
    assert "state.url" in refused.stderr and "--allow-per-process-state" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_port_in_use_is_refused_before_any_worker_starts(tmp_path: Path) -> None:
    config = tmp_path / "orchestrator.yaml"
    config.write_text(
        "default_model: a\nmodels: [{name: a, provider: openai, model: m, api_base: http://x/v1}]\n"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        refused = run_cli(
            "--config", str(config), "serve", "--port", port, "--workers", "2", "--allow-per-process-state"
        )
    assert refused.returncode == 2 and f"port {port}" in refused.stderr


def test_a_worker_that_cannot_start_stops_the_pool_with_one_message(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    config = tmp_path / "orchestrator.yaml"
    config.write_text(
        "default_model: a\nmodels: [{name: a, provider: openai, model: m, api_base: http://x/v1}]\n"
        f"ledger: {{url: 'sqlite:///{blocker}/ledger.sqlite3'}}\n"
    )
    failed = run_cli(
        "--config",
        str(config),
        "serve",
        "--workers",
        "3",
        "--allow-per-process-state",
        env={"ORCHESTRATOR_MASTER_KEY": MASTER},
    )
    assert failed.returncode == 1, failed.stderr
    assert failed.stderr.count("error:") == 1 and "ledger" in failed.stderr
    assert "Traceback" not in failed.stderr and "orchestrator gateway:" not in failed.stderr
