"""A stand-in for the Hugging Face hub (and for the MAE file server) on 127.0.0.1, a thread of the test
process, for the tests of models/hub.py and of `scratchvit predict` / `mae-visualize`.

`serve(server, path, content)` publishes bytes at a URL path. For `/<repo>/resolve/<rev>/<file>` it
answers as the hub does: HEAD with X-Repo-Commit and the file's SHA-256 as ETag (with `lfs`, a 302 to
`/blobs/<sha256>` whose X-Linked-Etag holds the hash, as the hub redirects large files to its storage);
GET with the bytes, honouring `Range`. Steer it with the attributes: `status` (answer every request
with this code), `delay` (seconds to wait before answering: a server that hangs), `cut_after` (send only
this many bytes of a body), `corrupt` (send other bytes than those whose hash is announced), `plain`
(no hub headers, as a static file server), `lfs`; `requests` records (method, path, Range) of each.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Handler(BaseHTTPRequestHandler):
    def do_HEAD(self):  # noqa: N802 (the names http.server calls)
        self._answer(body=False)

    def do_GET(self):  # noqa: N802
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        server = self.server
        server.requests.append((self.command, self.path, self.headers.get("Range")))
        if server.delay:
            time.sleep(server.delay)
        if server.status:
            self.send_error(server.status)
            return
        content = server.files.get(self.path)
        if content is None:
            self.send_error(404)
            return
        sha256 = hashlib.sha256(content).hexdigest()
        if server.lfs and "/resolve/" in self.path:
            self.send_response(302)
            self.send_header("Location", f"/blobs/{sha256}")
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("X-Linked-Etag", f'"{sha256}"')
            self.send_header("X-Linked-Size", str(len(content)))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if server.corrupt:
            content = bytes(reversed(content))
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and int(match.group(1)) < len(content):
            start = int(match.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        else:
            self.send_response(200)
        if not server.plain:
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{sha256}"')
        self.send_header("Content-Length", str(len(content) - start))
        self.end_headers()
        if body:
            data = content[start:]
            self.wfile.write(data if server.cut_after is None else data[: server.cut_after])

    def log_message(self, *args):
        pass


def start() -> ThreadingHTTPServer:
    """A running server; its base URL is server.url. Stop it with stop(server)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.files, server.requests = {}, []
    server.status, server.delay, server.cut_after, server.corrupt, server.plain, server.lfs = (
        0,
        0,
        None,
        False,
        False,
        False,
    )
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    server.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    server.thread.start()
    return server


def stop(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()
    server.thread.join(timeout=5)


def serve(server: ThreadingHTTPServer, path: str, content: bytes) -> None:
    """Publish `content` at `path`, and under /blobs/<sha256> for the redirects of `lfs`."""
    server.files[path] = content
    server.files[f"/blobs/{hashlib.sha256(content).hexdigest()}"] = content


def hub_environment(monkeypatch, server, cache) -> None:
    """Point the hub, the MAE files and both caches at `server` and the folder `cache`; short timeouts."""
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("SCRATCHVIT_MAE_ENDPOINT", f"{server.url}/mae")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(cache / "torch"))
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "2")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "2")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
