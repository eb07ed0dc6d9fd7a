"""download() against a local HTTP server on 127.0.0.1 (a thread of this test process).

The server serves files from a tmp folder, honours Range requests unless told not to, and can be
told to cut a response short to play an interrupted download.
"""

import hashlib
import re
import sys
import threading
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scratchvit.data import ChecksumError, download, sha256_of

CONTENT = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes: more than one read chunk
SHA256 = hashlib.sha256(CONTENT).hexdigest()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the name http.server calls)
        server = self.server
        server.requests.append(self.headers.get("Range"))
        path = server.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and server.ranges:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if server.cut_after is None else body[: server.cut_after])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """(base URL, server) for a server of tmp_path/served; server.ranges, .cut_after, .requests to steer and watch."""
    root = tmp_path / "served"
    root.mkdir()
    (root / "weights.bin").write_bytes(CONTENT)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.root, httpd.ranges, httpd.cut_after, httpd.requests = root, True, None, []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.mark.parametrize("progress", [False, True])
def test_download_verifies_and_renames(tmp_path, server, progress):
    url, httpd = server
    path = download(f"{url}/weights.bin", SHA256, tmp_path / "cache", progress=progress)
    assert path == tmp_path / "cache" / "weights.bin" and path.read_bytes() == CONTENT
    assert sorted(p.name for p in path.parent.iterdir()) == ["weights.bin"]  # no .part left
    assert httpd.requests == [None]


def test_progress_without_tqdm_is_silent(tmp_path, server, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    url, _ = server
    assert download(f"{url}/weights.bin", SHA256, tmp_path, progress=True).read_bytes() == CONTENT
    assert capsys.readouterr() == ("", "")


def test_a_present_file_with_the_right_hash_is_not_downloaded_again(tmp_path, server):
    url, httpd = server
    cache = tmp_path / "cache"
    download(f"{url}/weights.bin", SHA256, cache, filename="w.bin", progress=False)
    again = download(f"{url}/weights.bin", SHA256.upper(), cache, filename="w.bin", progress=False)
    assert again.read_bytes() == CONTENT and len(httpd.requests) == 1


def test_a_stale_file_under_the_name_is_replaced(tmp_path, server):
    url, _ = server
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "weights.bin").write_bytes(b"an older version")
    assert download(f"{url}/weights.bin", SHA256, cache, progress=False).read_bytes() == CONTENT


def test_a_hash_mismatch_deletes_the_download_and_names_both_hashes(tmp_path, server):
    url, _ = server
    wrong = "0" * 64
    with pytest.raises(ChecksumError, match=f"weights.bin from .*: SHA-256 is {SHA256}, expected {wrong}"):
        download(f"{url}/weights.bin", wrong, tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_interrupted_download_leaves_only_the_part_file_and_resumes(tmp_path, server):
    url, httpd = server
    cache = tmp_path / "cache"
    httpd.cut_after = 300_000
    with pytest.raises(OSError, match=r"stopped after 300000 .*calling download\(\) again resumes it"):
        download(f"{url}/weights.bin", SHA256, cache, progress=False)
    assert not (cache / "weights.bin").exists()
    assert (cache / "weights.bin.part").stat().st_size == 300_000
    httpd.cut_after = None
    path = download(f"{url}/weights.bin", SHA256, cache, progress=False)
    assert path.read_bytes() == CONTENT and not (cache / "weights.bin.part").exists()
    assert httpd.requests == [None, "bytes=300000-"]


def test_resume_starts_over_when_the_server_ignores_ranges(tmp_path, server):
    url, httpd = server
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "weights.bin.part").write_bytes(b"garbage that would corrupt an append")
    httpd.ranges = False
    assert download(f"{url}/weights.bin", SHA256, cache, progress=False).read_bytes() == CONTENT
    assert httpd.requests == ["bytes=36-"]  # asked, got a 200 with the whole file, wrote it from the start


def test_a_part_file_longer_than_the_file_starts_over(tmp_path, server):
    url, httpd = server
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "weights.bin.part").write_bytes(CONTENT + b"extra")
    assert download(f"{url}/weights.bin", SHA256, cache, progress=False).read_bytes() == CONTENT
    assert httpd.requests == [f"bytes={len(CONTENT) + 5}-", None]  # 416, then the whole file


def test_a_complete_part_file_is_renamed_without_a_request(tmp_path, server):
    url, httpd = server
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "weights.bin.part").write_bytes(CONTENT)  # finished, then the process died before the rename
    assert download(f"{url}/weights.bin", SHA256, cache, progress=False).read_bytes() == CONTENT
    assert httpd.requests == []


def test_http_errors_propagate_and_leave_nothing_under_the_name(tmp_path, server):
    url, _ = server
    with pytest.raises(urllib.error.HTTPError, match="404"):
        download(f"{url}/missing.bin", SHA256, tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache" / "missing.bin").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"url": "http://127.0.0.1:9/a.bin", "sha256": "abc"}, "sha256 must be 64 hex digits"),
        ({"url": "ftp://127.0.0.1/a.bin", "sha256": SHA256}, "url must start with http:// or https://"),
        ({"url": "file:///etc/passwd", "sha256": SHA256}, "url must start with http:// or https://"),
        ({"url": "http://127.0.0.1:9/", "sha256": SHA256}, "does not end in a file name; pass filename="),
        ({"url": "http://127.0.0.1:9/a.bin", "sha256": SHA256, "filename": "../a.bin"}, "plain file name"),
    ],
)
def test_bad_arguments_are_named(tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        download(cache_dir=tmp_path, progress=False, **arguments)


def test_sha256_of(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(CONTENT)
    assert sha256_of(path) == SHA256
