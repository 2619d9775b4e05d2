"""One run of an external command: prompt on stdin, stdout read as it comes, stderr kept as a tail.

Owns starting the process in its own session, feeding stdin, and killing and reaping the whole process
group. Does not interpret output or build ``Completion`` objects (see ``adapter``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence

# How long a process group gets between SIGTERM and SIGKILL.
_KILL_GRACE_SECONDS = 2.0
# stderr kept for error messages; older bytes are dropped so a chatty tool cannot grow memory.
_STDERR_KEEP_BYTES = 64 * 1024
_READ_CHUNK = 64 * 1024
# Longest stdout line ``read_line`` accepts (asyncio's default of 64 KiB is short for one-line answers).
_LINE_LIMIT_BYTES = 4 * 1024 * 1024


class RunningCommand:
    """A started command. Use ``start``; always ``await kill()`` (idempotent) when done with it."""

    def __init__(self, process: asyncio.subprocess.Process, stdin_text: str) -> None:
        self._process = process
        self._stderr = bytearray()
        self._feeder = asyncio.create_task(self._feed(stdin_text.encode()))
        self._stderr_reader = asyncio.create_task(self._read_stderr())

    @classmethod
    async def start(
        cls, argv: Sequence[str], *, stdin_text: str, env: Mapping[str, str] | None, cwd: str | None
    ) -> RunningCommand:
        """Start ``argv`` (no shell) in a new session so the whole group can be killed later.

        Raises ``OSError`` (``FileNotFoundError`` when the executable is missing) as the OS reports it.
        """
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            limit=_LINE_LIMIT_BYTES,
        )
        return cls(process, stdin_text)

    @property
    def pid(self) -> int:
        """The process id, which is also the process-group id."""
        return self._process.pid

    async def read_stdout(self) -> str:
        """All of stdout, until the command closes it."""
        stdout = self._stdout()
        chunks: list[bytes] = []
        while chunk := await stdout.read(_READ_CHUNK):
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    async def read_line(self) -> str:
        """The next stdout line (newline kept) as the command prints it; "" once stdout is closed."""
        line = await self._stdout().readline()
        return line.decode(errors="replace")

    async def wait(self) -> int:
        """The exit code, once the command has exited and its stderr is fully read."""
        code = await self._process.wait()
        await self._stderr_reader
        return code

    def stderr_text(self) -> str:
        """What the command wrote to stderr so far (at most the last 64 KiB)."""
        return self._stderr.decode(errors="replace")

    async def kill(self) -> None:
        """SIGTERM the whole group, SIGKILL it after a short grace, and reap the leader. Safe to repeat."""
        if self._process.returncode is None:
            _signal_group(self.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._process.wait(), _KILL_GRACE_SECONDS)
        # Children may outlive a leader that obeyed SIGTERM; the group id stays valid while any member lives.
        _signal_group(self.pid, signal.SIGKILL)
        await self._process.wait()
        for task in (self._feeder, self._stderr_reader):
            task.cancel()
        await asyncio.gather(self._feeder, self._stderr_reader, return_exceptions=True)

    def _stdout(self) -> asyncio.StreamReader:
        assert self._process.stdout is not None  # created with stdout=PIPE
        return self._process.stdout

    async def _feed(self, data: bytes) -> None:
        stdin = self._process.stdin
        assert stdin is not None  # created with stdin=PIPE
        # A tool that exits without reading its input closes the pipe; that is its business, not an error.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.write(data)
            await stdin.drain()
            stdin.close()
            await stdin.wait_closed()

    async def _read_stderr(self) -> None:
        stderr = self._process.stderr
        assert stderr is not None  # created with stderr=PIPE
        while chunk := await stderr.read(_READ_CHUNK):
            self._stderr += chunk
            del self._stderr[:-_STDERR_KEEP_BYTES]


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
