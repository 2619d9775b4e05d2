"""``CliAgentModel``: a coding-agent CLI (claude -p, gemini, codex exec, any command) used as a chat model.

Owns rendering the conversation as one prompt on stdin, reading the tool's text or JSON answer, the
timeout/deadline, and translating failures (missing command, non-zero exit, reported error) into the
core error hierarchy with a redacted stderr tail. Does not run processes itself (``_process``) or parse
the vendors' JSON forms (``_output``). Sampling options (max_tokens, temperature, stop) have no CLI
equivalent and are not forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncGenerator, Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from model_orchestrator.core.clock import Clock, SystemClock
from model_orchestrator.core.errors import (
    ConfigError,
    ProviderError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
)
from model_orchestrator.core.messages import Message, Role
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, FinishReason, StreamDelta
from model_orchestrator.core.tokens import (
    estimate_message_tokens,
    estimate_text_tokens,
    estimate_tokens_for_chars,
)
from model_orchestrator.core.usage import Usage
from model_orchestrator.providers.cli_agent._output import ParsedOutput, parse_json_output
from model_orchestrator.providers.cli_agent._process import RunningCommand
from model_orchestrator.providers.cli_agent._redact import redact, secret_values, tail
from model_orchestrator.providers.refusals import refuse_unsupported

_RATE_LIMIT_TEXT = re.compile(r"rate.?limit|too many requests|\b429\b|quota", re.IGNORECASE)
_TURN_LABELS = {Role.USER: "User", Role.ASSISTANT: "Assistant"}
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Outcome:
    stdout: str
    exit_code: int
    stderr: str
    latency: float


class CliAgentModel:
    """Runs ``command`` once per request, the prompt on stdin, and returns what it prints.

    ``env`` is added to (and overrides) the inherited environment. ``timeout`` (seconds) caps every call;
    a request's ``deadline`` shortens it. On timeout or cancellation the whole process group is killed.
    """

    def __init__(
        self,
        *,
        name: str,
        command: Sequence[str],
        output_format: Literal["text", "json"] = "text",
        timeout: float = 600.0,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        deployment: str | None = None,
        provider: str = "cli",
        clock: Clock | None = None,
    ) -> None:
        if not command:
            raise ConfigError(f"model {name!r}: command must name an executable")
        self._name = name
        self._command = tuple(command)
        self._output_format = output_format
        self._timeout = timeout
        self._env = dict(env or {})
        self._cwd = cwd
        self._provider = provider
        self._deployment = deployment or f"{provider}:{name}"
        self._clock = clock or SystemClock()

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        # The environment may hold keys; show only the command.
        return f"CliAgentModel(name={self._name!r}, command={list(self._command)!r})"

    async def complete(self, request: ChatRequest) -> Completion:
        started = self._clock.monotonic()
        command = await self._start(request)
        try:
            async with asyncio.timeout(self._remaining(request)):
                stdout = await command.read_stdout()
                code = await command.wait()
        except TimeoutError as exc:
            raise self._timeout_error() from exc
        finally:
            # Shielded so a second cancellation cannot leave the group running.
            await asyncio.shield(command.kill())
        outcome = _Outcome(stdout, code, command.stderr_text(), self._clock.monotonic() - started)
        return self._completion(request, outcome)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamDelta, None]:
        if self._output_format == "json":
            # The JSON forms arrive whole at exit; there is nothing to stream before that.
            completion = await self.complete(request)
            yield StreamDelta(
                text=completion.text,
                finish_reason=completion.finish_reason,
                usage=completion.usage,
                model=self._name,
                cost=completion.cost,
            )
            return
        # Closed explicitly so a consumer that stops early kills the process now, not at garbage collection.
        async with contextlib.aclosing(self._stream_text(request)) as deltas:
            async for delta in deltas:
                yield delta

    async def probe(self) -> None:
        """The executable is found on PATH (with this model's ``env``); nothing is run, so nothing is spent.

        Raises ``ConfigError`` when it is missing or not executable.
        """
        env = {**os.environ, **self._env} if self._env else None
        executable = self._command[0]
        if shutil.which(executable, path=(env or os.environ).get("PATH")) is None:
            raise ConfigError(
                f"command {executable!r} was not found on PATH (or is not executable); install it or "
                "fix the model's command",
                provider=self._provider,
                deployment=self._deployment,
            )

    async def aclose(self) -> None:
        """Nothing to release: every call's process is reaped before the call returns."""

    async def _stream_text(self, request: ChatRequest) -> AsyncGenerator[StreamDelta, None]:
        deadline = self._clock.monotonic() + self._remaining(request)
        command = await self._start(request)
        chars = 0
        pending = ""  # trailing whitespace held back so the stream equals complete()'s rstripped text
        try:
            while line := await self._within(deadline, command.read_line()):
                content = line.rstrip()
                if not content:
                    pending += line
                    continue
                yield StreamDelta(text=pending + content, model=self._name)
                chars += len(pending) + len(content)
                pending = line[len(content) :]
            code = await self._within(deadline, command.wait())
        except TimeoutError as exc:
            raise self._timeout_error() from exc
        finally:
            await asyncio.shield(command.kill())
        if code != 0:
            raise self._exit_error(code, "", command.stderr_text())
        usage = Usage(
            input_tokens=estimate_message_tokens(request.messages),
            output_tokens=estimate_tokens_for_chars(chars),
            estimated=True,
        )
        yield StreamDelta(finish_reason=FinishReason.STOP, usage=usage, model=self._name)

    async def _start(self, request: ChatRequest) -> RunningCommand:
        # A prompt on stdin carries text only: tools, images and a schema would be lost, so they are refused.
        refuse_unsupported(
            request,
            supported=(),
            model=self._name,
            provider=self._provider,
            deployment=self._deployment,
            reason="a CLI agent takes one text prompt on stdin and answers text",
        )
        if self._remaining(request) <= 0:
            raise self._timeout_error()
        env = {**os.environ, **self._env} if self._env else None
        try:
            return await RunningCommand.start(
                self._command, stdin_text=render_prompt(request.messages), env=env, cwd=self._cwd
            )
        except OSError as exc:
            raise self._start_error(exc, env) from exc

    def _completion(self, request: ChatRequest, outcome: _Outcome) -> Completion:
        if outcome.exit_code != 0:
            raise self._exit_error(outcome.exit_code, outcome.stdout, outcome.stderr)
        parsed = parse_json_output(outcome.stdout) if self._output_format == "json" else None
        if parsed is None:
            parsed = ParsedOutput(text=outcome.stdout.rstrip())
        if parsed.is_error:
            raise self._reported_error(parsed.text)
        usage = parsed.usage or Usage(
            input_tokens=estimate_message_tokens(request.messages),
            output_tokens=estimate_text_tokens(parsed.text),
            estimated=True,
        )
        details: list[tuple[str, object]] = [("command", self._command[0])]
        if parsed.reported_cost is not None:
            details.append(("reported_cost_usd", parsed.reported_cost))
        return Completion(
            text=parsed.text,
            model=self._name,
            provider=self._provider,
            deployment=self._deployment,
            usage=usage,
            cost=parsed.reported_cost,
            latency=outcome.latency,
            finish_reason=FinishReason.STOP,
            response_id=parsed.session_id,
            details=tuple(details),
        )

    def _remaining(self, request: ChatRequest) -> float:
        if request.deadline is None:
            return self._timeout
        return min(self._timeout, request.deadline - self._clock.monotonic())

    async def _within(self, deadline: float, awaitable: Awaitable[_T]) -> _T:
        return await asyncio.wait_for(awaitable, max(0.0, deadline - self._clock.monotonic()))

    def _start_error(self, exc: OSError, env: Mapping[str, str] | None) -> ConfigError:
        executable = self._command[0]
        path = (env or os.environ).get("PATH")
        if isinstance(exc, FileNotFoundError) and shutil.which(executable, path=path) is None:
            message = f"command {executable!r} was not found on PATH"
        else:
            message = f"command {executable!r} could not be started: {exc.strerror or type(exc).__name__}"
        return ConfigError(message, provider=self._provider, deployment=self._deployment)

    def _exit_error(self, code: int, stdout: str, stderr: str) -> ProviderError:
        detail = self._redacted_tail(stderr if stderr.strip() else stdout)
        message = f"command {self._command[0]!r} exited with code {code}"
        return self._classified(f"{message}: {detail}" if detail else message, detail)

    def _reported_error(self, text: str) -> ProviderError:
        detail = self._redacted_tail(text)
        return self._classified(f"command {self._command[0]!r} reported an error: {detail}", detail)

    def _classified(self, message: str, detail: str) -> ProviderError:
        if _RATE_LIMIT_TEXT.search(detail):
            return RateLimitedError(message, provider=self._provider, deployment=self._deployment)
        return ServerError(message, retryable=False, provider=self._provider, deployment=self._deployment)

    def _timeout_error(self) -> RequestTimeoutError:
        return RequestTimeoutError(
            f"command {self._command[0]!r} did not finish within its timeout or deadline",
            provider=self._provider,
            deployment=self._deployment,
        )

    def _redacted_tail(self, text: str) -> str:
        # Redact before cutting, so a key split by the cut cannot leak half of itself.
        return tail(redact(text, secret_values((os.environ, self._env))))


def render_prompt(messages: Sequence[Message]) -> str:
    """The conversation as one text: system text first, then the turns (labelled when there are several)."""
    parts = [m.text for m in messages if m.role is Role.SYSTEM]
    turns = [m for m in messages if m.role is not Role.SYSTEM]
    if len(turns) == 1 and turns[0].role is Role.USER:
        parts.append(turns[0].text)
    else:
        parts.extend(f"{_TURN_LABELS[m.role]}: {m.text}" for m in turns)
    return "\n\n".join(parts)
