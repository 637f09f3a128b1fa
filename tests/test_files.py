"""Downloads are checked (status, size, MD5) and never leave a partial file behind."""

from __future__ import annotations

import hashlib
import http.server
import os
import stat
import threading
import time

import pytest

from metabook.files import (
    DataNotFoundError,
    RemoteFile,
    atomic_write,
    candidate_roots,
    download,
    find_or_download,
)

GOOD = b"PK\x03\x04 pretend this is a zip" * 100
HTML = b"<html><body>404: Not Found</body></html>"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the name http.server expects)
        if self.path == "/good.zip":
            body, status, length = GOOD, 200, len(GOOD)
        elif self.path == "/html.zip":
            body, status, length = HTML, 200, len(HTML)
        elif self.path == "/short.zip":
            body, status, length = GOOD[:50], 200, len(GOOD)
        elif self.path == "/drip.zip":  # one byte every 50 ms: each read is quick
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            try:
                for byte in GOOD:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        else:
            body, status, length = HTML, 404, len(HTML)
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


GOOD_MD5 = hashlib.md5(GOOD).hexdigest()


def remote(server, path, md5=GOOD_MD5, size=len(GOOD)):  # noqa: B008
    return RemoteFile("data.zip", f"{server}/{path}", md5=md5, size=size)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_download_is_checked_and_complete(server, tmp_path):
    path = download(remote(server, "good.zip"), tmp_path / "data.zip")
    assert path.read_bytes() == GOOD
    assert leftovers(tmp_path) == ["data.zip"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("missing.zip", "HTTP 404"),
        ("html.zip", "bytes but data.zip has"),  # an error page served with status 200
        ("short.zip", "cut short|failed"),
    ],
)
def test_bad_download_raises_and_leaves_nothing(server, tmp_path, path, message):
    with pytest.raises(OSError, match=message):
        download(remote(server, path), tmp_path / "data.zip")
    assert leftovers(tmp_path) == []


def test_md5_is_checked_when_size_is_unknown(server, tmp_path):
    with pytest.raises(OSError, match="MD5"):
        download(remote(server, "html.zip", size=None), tmp_path / "data.zip")
    assert leftovers(tmp_path) == []


def test_root_then_environment_then_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("METABOOK_DATA", str(tmp_path / "shared"))
    monkeypatch.setenv("METABOOK_CACHE", str(tmp_path / "cache"))
    assert candidate_roots("omniglot", tmp_path / "mine") == [
        tmp_path / "mine",
        tmp_path / "shared" / "omniglot",
        tmp_path / "cache" / "omniglot",
    ]
    for folder in ("mine", "shared/omniglot", "cache/omniglot"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "data.zip").write_bytes(b"x")
    spec = RemoteFile("data.zip", "http://127.0.0.1:9/none")
    assert (
        find_or_download("omniglot", spec, tmp_path / "mine", False) == tmp_path / "mine/data.zip"
    )
    assert find_or_download("omniglot", spec, None, False) == tmp_path / "shared/omniglot/data.zip"
    monkeypatch.delenv("METABOOK_DATA")
    assert find_or_download("omniglot", spec, None, False) == tmp_path / "cache/omniglot/data.zip"


def test_offline_without_the_file_names_file_places_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("METABOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("METABOOK_DATA", raising=False)
    spec = RemoteFile("data.zip", "http://127.0.0.1:9/data.zip", md5="0" * 32)
    with pytest.raises(DataNotFoundError) as info:
        find_or_download("omniglot", spec, tmp_path / "mine", True)
    text = str(info.value)
    assert "data.zip" in text and str(tmp_path / "mine") in text
    assert str(tmp_path / "cache" / "omniglot") in text and spec.url in text
    assert leftovers(tmp_path / "mine") == []
    with pytest.raises(DataNotFoundError, match="download=False"):
        find_or_download("omniglot", spec, None, False)


def test_a_server_that_drips_is_stopped_by_the_deadline(server, tmp_path):
    """Each read gets a byte within the per-read timeout, so only a total deadline ends it."""
    started = time.monotonic()
    with pytest.raises(OSError, match="took longer than 1 s"):
        download(remote(server, "drip.zip"), tmp_path / "data.zip", timeout=5, deadline=1.0)
    assert time.monotonic() - started < 5
    assert leftovers(tmp_path) == []


def test_written_files_get_default_permissions_and_orphans_go(tmp_path):
    old = os.umask(0o022)
    try:
        dead = tmp_path / ".x.pt.999999999.abcd.part"  # a write whose process is gone
        live = tmp_path / f".x.pt.{os.getppid()}.efgh.part"  # another process, still writing
        dead.write_bytes(b"half")
        live.write_bytes(b"in progress")
        atomic_write(tmp_path / "x.pt", lambda tmp: tmp.write_bytes(b"done"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.pt").stat().st_mode) == 0o644
    assert not dead.exists() and live.exists()
    assert (tmp_path / "x.pt").read_bytes() == b"done"
