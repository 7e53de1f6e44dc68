"""Reading benchmark files that may be gzipped: ``net.onnx``, ``net.onnx.gz`` or a ``.gz`` named without its suffix
(VNN-COMP's ``instances.csv`` names the files without ``.gz``)."""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Union

GZIP_MAGIC = b"\x1f\x8b"


def resolve(path: Union[str, Path]) -> Path:
    """The file behind ``path``: itself, or ``path + ".gz"``; FileNotFoundError naming both otherwise."""
    path = Path(path)
    if path.is_file():
        return path
    zipped = path.with_name(path.name + ".gz")
    if zipped.is_file():
        return zipped
    raise FileNotFoundError(f"{path}: no such file (nor {zipped.name})")


def read_bytes(path: Union[str, Path]) -> bytes:
    """The contents of ``path`` (see :func:`resolve`), decompressed when the file is gzipped (by its magic bytes,
    whatever its name)."""
    data = resolve(path).read_bytes()
    return gzip.decompress(data) if data[:2] == GZIP_MAGIC else data


def read_text(path: Union[str, Path]) -> str:
    return read_bytes(path).decode("utf-8")
