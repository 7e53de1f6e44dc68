"""Fixtures for the data tests: a loopback HTTP server over a folder (with Range support and a request log)."""
from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, List

import pytest


class _RangeHandler(SimpleHTTPRequestHandler):
    """Serves files; answers ``Range: bytes=N-`` with 206 and logs (path, range header) of every request."""

    log: List[tuple] = []

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self.log.append((self.path, self.headers.get("Range")))
        header = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not header or not path.is_file():
            return super().do_GET()
        start = int(header.split("=")[1].rstrip("-"))
        data = path.read_bytes()
        if start >= len(data):
            self.send_error(416)
            return
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


class LoopbackServer:
    def __init__(self, root: Path) -> None:
        handler = type("Handler", (_RangeHandler,), {"log": []})
        self.requests = handler.log
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator:
    """``serve(folder) -> LoopbackServer`` with ``.url`` and ``.requests``; servers stop after the test."""
    servers: List[LoopbackServer] = []

    def start(root: Path) -> LoopbackServer:
        servers.append(LoopbackServer(root))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
