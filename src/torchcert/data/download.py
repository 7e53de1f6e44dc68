"""Checksummed, resumable, atomic downloads over HTTP(S) with mirror fall-back.

A file is fetched into ``<dest>.part`` (resumed with an HTTP ``Range`` request when a previous attempt from the
same URL left one), verified, and only then renamed to ``dest`` (``os.replace``, atomic on one file system).
A file whose checksum does not match is deleted and the next mirror is tried; if every mirror fails the
verification, :class:`ChecksumError` says so: a corrupted file is never left under its final name.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A downloaded or existing file does not have the expected checksum."""


class DownloadError(RuntimeError):
    """No mirror could deliver the file."""


@dataclass(frozen=True)
class Checksum:
    """Expected digest of a file; with ``gunzip`` the digest is of the gzip-decompressed bytes.

    (MNIST mirrors serve different gzip streams of the same bytes, so MNIST is checked after decompression.)
    """

    algorithm: str
    hexdigest: str
    gunzip: bool = False


def file_digest(path: Path, algorithm: str, gunzip: bool = False) -> str:
    """Hex digest of the file (decompressed first when ``gunzip``), read in chunks."""
    hasher = hashlib.new(algorithm)
    opener = gzip.open if gunzip else open
    with opener(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def verify_file(path: Path, checksum: Checksum) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the expected digest (an unreadable gzip also fails)."""
    try:
        got = file_digest(path, checksum.algorithm, checksum.gunzip)
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise ChecksumError(f"{path} is corrupted: it could not be decompressed ({err})") from err
    if got != checksum.hexdigest.lower():
        what = "uncompressed bytes of " if checksum.gunzip else ""
        raise ChecksumError(f"{checksum.algorithm} of the {what}{path} is {got}, expected {checksum.hexdigest}")


def _fetch(url: str, part: Path, timeout: float) -> None:
    """Download ``url`` into ``part``, resuming it when a marker says the partial file came from ``url``."""
    marker = part.with_name(part.name + ".url")
    offset = part.stat().st_size if part.exists() and marker.exists() and marker.read_text() == url else 0
    headers = {"User-Agent": "torchcert"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    marker.write_text(url)
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as err:
        if err.code == 416 and offset:  # nothing left to fetch: the partial file is complete
            return
        raise
    with response:
        resumed = offset and response.status == 206
        if offset and not resumed:
            logger.info("%s does not support resuming; downloading it again", url)
        with open(part, "ab" if resumed else "wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)


def _discard(part: Path) -> None:
    for path in (part, part.with_name(part.name + ".url")):
        path.unlink(missing_ok=True)


def download_file(urls: Sequence[str], dest: Path, checksum: Checksum, timeout: float = 60.0) -> Path:
    """Make ``dest`` a verified copy of the file at one of ``urls`` (tried in order); return ``dest``.

    An existing ``dest`` that verifies is kept; one that does not is replaced.
    """
    dest = Path(dest)
    if dest.exists():
        try:
            verify_file(dest, checksum)
            return dest
        except ChecksumError as err:
            logger.warning("%s; downloading it again", err)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures: List[str] = []
    corrupted = False
    for url in urls:
        logger.info("downloading %s", url)
        try:
            _fetch(url, part, timeout)
            verify_file(part, checksum)
        except ChecksumError as err:
            corrupted = True
            failures.append(f"{url}: {err}")
            _discard(part)
            continue
        except (URLError, OSError, http.client.HTTPException) as err:  # a partial file stays for a resume
            failures.append(f"{url}: {err}")
            if not part.exists() or part.stat().st_size == 0:  # nothing arrived (offline): leave no debris
                _discard(part)
            continue
        os.replace(part, dest)
        _discard(part)
        return dest
    detail = "\n  ".join(failures)
    if corrupted:
        raise ChecksumError(f"refusing {dest.name}: no mirror delivered a file with the expected checksum:\n  {detail}")
    raise DownloadError(f"could not download {dest.name}; tried:\n  {detail}")
