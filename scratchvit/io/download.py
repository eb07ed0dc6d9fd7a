"""Download a file once, check its SHA-256, and never leave a half file under the final name.

The bytes go to `<name>.part` in the cache folder; only a file whose SHA-256 matches is renamed
to `<name>` (atomically), so an interrupted or corrupted download can never be mistaken for a
good one. An interrupted download resumes from its `.part` file with an HTTP Range request when
the server supports ranges, and starts over when it does not.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

_CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A downloaded file's SHA-256 is not the expected one."""


def sha256_of(path) -> str:
    """The SHA-256 of a file's contents, as 64 lowercase hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _NoProgress:
    def update(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(enabled: bool, total: int | None, initial: int, name: str):
    """A tqdm bar when tqdm is installed and `enabled`, else an object that shows nothing."""
    if not enabled:
        return _NoProgress()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoProgress()
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _fetch(url: str, partial: Path, progress: bool, timeout: float, label: str) -> None:
    """Bring `partial` up to the whole file: resume with a Range request, or start over; the bar says `label`."""
    offset = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "scratchvit"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code != 416 or not offset:  # 416: the .part is not shorter than the file; start over
            raise
        partial.unlink()
        return _fetch(url, partial, progress, timeout, label)
    with response:
        content_range = response.headers.get("Content-Range", "")
        resumed = offset > 0 and response.status == 206 and content_range.startswith(f"bytes {offset}-")
        if not resumed:  # the server sent the whole file (no range support): start over
            offset = 0
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        received = 0
        bar = _progress_bar(progress, None if expected is None else offset + expected, offset, label)
        try:
            with open(partial, "ab" if resumed else "wb") as file:
                while chunk := response.read(_CHUNK):
                    file.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                file.flush()
                os.fsync(file.fileno())
        except (OSError, http.client.HTTPException) as error:
            raise OSError(
                f"download of {url} stopped after {offset + received} bytes ({error}); "
                f"{partial} is kept, and calling download() again resumes it"
            ) from error
        finally:
            bar.close()
    if expected is not None and received != expected:
        raise OSError(
            f"download of {url} stopped after {offset + received} of {offset + expected} bytes; "
            f"{partial} is kept, and calling download() again resumes it"
        )


def download(
    url: str,
    sha256: str | None,
    cache_dir,
    filename: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
    label: str | None = None,
) -> Path:
    """Download `url` into `cache_dir` unless a file with this SHA-256 is there; return its path.

    sha256: the expected SHA-256, 64 hex digits; None where no hash is published, and then a file
    already at `<filename>` is taken as it is and only a short download (fewer bytes than the
    server's Content-Length) is caught. filename: the name in cache_dir (default: the last part of
    the URL's path). progress: show a tqdm bar when tqdm is installed, named `label` (default: the
    file name; the hub's cache names files by their hash, so it passes the file's own name).
    A file whose hash differs is deleted and ChecksumError (a ValueError) names both hashes; a
    broken connection raises OSError and keeps `<filename>.part`, from which the next call resumes.
    """
    if sha256 is not None and (not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha256)):
        raise ValueError(f"sha256 must be 64 hex digits or None, got {sha256!r}")
    sha256 = None if sha256 is None else sha256.lower()
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise ValueError(f"url must start with http:// or https://, got {url!r}")
    if filename is None:
        filename = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
        if not filename:
            raise ValueError(f"url {url!r} does not end in a file name; pass filename=")
    if Path(filename).name != filename or filename in (".", ".."):
        raise ValueError(f"filename must be a plain file name without folders, got {filename!r}")
    cache_dir = Path(cache_dir).expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / filename
    if final.is_file() and (sha256 is None or sha256_of(final) == sha256):
        return final
    partial = cache_dir / f"{filename}.part"
    if sha256 is None or not (partial.is_file() and sha256_of(partial) == sha256):  # else: complete, not renamed
        _fetch(url, partial, progress, timeout, label or filename)
    actual = sha256_of(partial) if sha256 is not None else None
    if actual != sha256:
        partial.unlink()
        raise ChecksumError(f"{filename} from {url}: SHA-256 is {actual}, expected {sha256}; the download was deleted")
    os.replace(partial, final)
    _fsync_folder(cache_dir)
    return final
