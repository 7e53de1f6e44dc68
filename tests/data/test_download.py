"""The real download path against a loopback HTTP server serving the shared MNIST files."""
from __future__ import annotations

import gzip
import hashlib

import pytest

from torchcert.data import Checksum, ChecksumError, DownloadError, download_file, load_dataset
from torchcert.data.mnist import SHA256, download_mnist


def test_download_mnist_from_loopback(mnist_dir, tmp_path, serve):
    server = serve(mnist_dir)
    target = tmp_path / "mnist"
    download_mnist(target, mirrors=[server.url])
    for stem in SHA256:
        assert (target / (stem + ".gz")).read_bytes() == (mnist_dir / (stem + ".gz")).read_bytes()
    assert not list(target.glob("*.part*"))
    split = load_dataset("mnist", "test", data_dir=target)
    assert split.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    served = len(server.requests)
    download_mnist(target, mirrors=[server.url])  # already there: nothing fetched again
    assert len(server.requests) == served


def _corrupt_copy(mnist_dir, folder, stem):
    folder.mkdir()
    with gzip.open(mnist_dir / (stem + ".gz"), "rb") as stream:
        data = bytearray(stream.read())
    data[5000] ^= 0xFF
    with gzip.open(folder / (stem + ".gz"), "wb") as stream:
        stream.write(bytes(data))


def test_corrupted_file_is_refused(mnist_dir, tmp_path, serve):
    stem = "t10k-labels-idx1-ubyte"
    _corrupt_copy(mnist_dir, tmp_path / "bad", stem)
    server = serve(tmp_path / "bad")
    dest = tmp_path / "out" / (stem + ".gz")
    with pytest.raises(ChecksumError, match="refusing"):
        download_file([server.url + stem + ".gz"], dest, Checksum("sha256", SHA256[stem], gunzip=True))
    assert not dest.exists() and not list(dest.parent.glob("*.part*"))


def test_falls_back_to_next_mirror(mnist_dir, tmp_path, serve):
    stem = "t10k-labels-idx1-ubyte"
    _corrupt_copy(mnist_dir, tmp_path / "bad", stem)
    bad, good = serve(tmp_path / "bad"), serve(mnist_dir)
    dest = tmp_path / "out" / (stem + ".gz")
    urls = [bad.url + stem + ".gz", good.url + "missing.gz", good.url + stem + ".gz"]
    download_file(urls, dest, Checksum("sha256", SHA256[stem], gunzip=True))
    assert dest.read_bytes() == (mnist_dir / (stem + ".gz")).read_bytes()


def test_resume_uses_range_request(mnist_dir, tmp_path, serve):
    stem = "t10k-labels-idx1-ubyte"
    server = serve(mnist_dir)
    url = server.url + stem + ".gz"
    full = (mnist_dir / (stem + ".gz")).read_bytes()
    dest = tmp_path / (stem + ".gz")
    part = tmp_path / (stem + ".gz.part")
    part.write_bytes(full[:1000])
    (tmp_path / (stem + ".gz.part.url")).write_text(url)
    download_file([url], dest, Checksum("sha256", hashlib.sha256(full).hexdigest()))
    assert dest.read_bytes() == full
    assert server.requests == [("/" + stem + ".gz", "bytes=1000-")]


def test_unreachable_mirror_reports_download_error(tmp_path, serve):
    server = serve(tmp_path)
    with pytest.raises(DownloadError, match="404"):
        download_file([server.url + "absent.gz"], tmp_path / "x.gz", Checksum("sha256", "0" * 64))


def test_offline_download_leaves_no_debris(tmp_path):
    """No server answers (a closed loopback port stands in for no network): a one-line error, no .part files."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dest = tmp_path / "data" / "x.gz"
    with pytest.raises(DownloadError, match="could not download x.gz"):
        download_file([f"http://127.0.0.1:{port}/x.gz"], dest, Checksum("sha256", "0" * 64), timeout=5)
    assert not list(dest.parent.glob("*.part*")) and not dest.exists()
