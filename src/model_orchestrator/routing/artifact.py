"""The learned router's file: a JSON header and a few little-endian arrays, read with the standard library.

Layout: the magic ``MOROUTER``, a 4-byte header length, the UTF-8 JSON header, then the arrays the header
lists under ``arrays`` (name -> [offset, count, typecode]) with offsets counted from the end of the
header. Weights are int16 with a scale (a quarter of float32's size, far below the model's noise), so
the shipped file stays a few hundred kilobytes and loads in about a millisecond without numpy.
It does not know what the numbers mean: ``learned.py`` reads them, ``training.py`` writes them.
"""

from __future__ import annotations

import json
import struct
import sys
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_orchestrator.core.errors import ConfigError

MAGIC = b"MOROUTER"
FORMAT_VERSION = 1
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class Artifact:
    """A decoded file: its header and its arrays by name."""

    header: Mapping[str, Any]
    arrays: Mapping[str, array[Any]]


def encode(header: Mapping[str, Any], arrays: Mapping[str, array[Any]]) -> bytes:
    """The bytes of a file holding ``header`` and ``arrays`` (``header['arrays']`` is filled in here)."""
    layout: dict[str, list[object]] = {}
    blobs: list[bytes] = []
    offset = 0
    for name, values in arrays.items():
        blob = _little_endian(values).tobytes()
        layout[name] = [offset, len(values), values.typecode]
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps({**header, "format": FORMAT_VERSION, "arrays": layout}, separators=(",", ":"))
    encoded = text.encode("utf-8")
    return MAGIC + _LENGTH.pack(len(encoded)) + encoded + b"".join(blobs)


def decode(data: bytes, source: str) -> Artifact:
    """Decode a file's bytes; ``source`` names it in errors."""
    if not data.startswith(MAGIC):
        raise ConfigError(f"{source} is not a router file (made by `orchestrator train-router`)")
    start = len(MAGIC) + _LENGTH.size
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    header = json.loads(data[start : start + length].decode("utf-8"))
    if header.get("format") != FORMAT_VERSION:
        raise ConfigError(f"{source}: router file format {header.get('format')!r} is not supported")
    body = memoryview(data)[start + length :]
    arrays: dict[str, array[Any]] = {}
    for name, (offset, count, typecode) in header["arrays"].items():
        values = array(typecode)
        values.frombytes(body[offset : offset + count * values.itemsize])
        arrays[name] = _little_endian(values)
    return Artifact(header, arrays)


def read(path: str | Path) -> Artifact:
    """Read and decode a router file."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read router file {file}: {exc.strerror or exc}") from exc
    return decode(data, str(file))


def _little_endian(values: array[Any]) -> array[Any]:
    """``values`` in little-endian byte order (a no-op on little-endian machines)."""
    if sys.byteorder == "big":
        values = array(values.typecode, values)
        values.byteswap()
    return values
