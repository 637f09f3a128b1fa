"""Files: where data files live, how they are fetched safely, and how any file (a decoded
data cache, a checkpoint) is written so that a reader never sees half of it.

Every dataset in metabook looks for its files in the same places, in this order:

1. the ``root`` argument, when one is given;
2. ``$METABOOK_DATA/<dataset>``, when the environment variable is set;
3. the user cache, ``$METABOOK_CACHE/<dataset>`` or else ``~/.cache/metabook/<dataset>``.

When a file is in none of them it is downloaded (where there is a network) into the first
writable place of ``root`` and the user cache. A download is written to a temporary file
beside its destination, checked (HTTP status, announced size, expected size and MD5) and
only then renamed into place, so an interrupted or wrong download never leaves a file that
could later pass for data.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DataNotFoundError",
    "RemoteFile",
    "cache_dir",
    "candidate_roots",
    "download",
    "find_or_download",
    "md5sum",
    "atomic_write",
    "check_md5",
    "remove_orphans",
]


class DataNotFoundError(FileNotFoundError):
    """A data file is in none of the places looked and could not be downloaded."""


@dataclass(frozen=True)
class RemoteFile:
    """A public file with what is known about it: its name, URL, MD5 and size in bytes, and
    its SHA-256 where that is what its publisher gives.

    ``md5``, ``size`` or ``sha256`` may be ``None`` where no published value exists; the
    download then checks what it can (status, announced length) and the caller checks the
    content.
    """

    name: str
    url: str
    md5: str | None = None
    size: int | None = None
    sha256: str | None = None


def cache_dir(dataset: str | None = None) -> Path:
    """The user cache folder of metabook (``$METABOOK_CACHE`` or ``~/.cache/metabook``)."""
    base = os.environ.get("METABOOK_CACHE")
    if base:
        path = Path(base).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        path = (Path(xdg) if xdg else Path.home() / ".cache") / "metabook"
    return path / dataset if dataset else path


def candidate_roots(dataset: str, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The folders searched for ``dataset``'s files, in order (see the module docstring)."""
    roots: list[Path] = []
    if root is not None:
        roots.append(Path(root).expanduser().resolve())
    env = os.environ.get("METABOOK_DATA")
    if env:
        roots.append((Path(env).expanduser() / dataset).resolve())
    roots.append(cache_dir(dataset).resolve())
    unique: list[Path] = []
    for path in roots:
        if path not in unique:
            unique.append(path)
    return unique


def md5sum(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """The hexadecimal MD5 digest of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to someone else
        return True
    return True


def remove_orphans(dest: Path) -> list[Path]:
    """Remove the temporary files that writes of ``dest`` left behind when their process
    died (killed, or the machine stopped): their names carry the writer's process id, so a
    write still in progress in another process is never touched."""
    removed = []
    for tmp in dest.parent.glob(f".{dest.name}.*.part"):
        pid = tmp.name[len(dest.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def atomic_write(dest: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``dest``, then rename it to ``dest``.

    If ``write`` raises, the temporary file is removed and ``dest`` is left as it was, so a
    reader never sees half a file. The file gets the user's default permissions (``0644``
    under the usual umask), and temporary files that an earlier, killed write left behind
    are removed once this one succeeds.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.name}.{os.getpid()}.", suffix=".part", dir=dest.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    remove_orphans(dest)
    return dest


def _fetch(remote: RemoteFile, tmp: Path, timeout: float, deadline: float) -> None:
    """Read ``remote`` into ``tmp``: ``timeout`` seconds at most for each read, and
    ``deadline`` seconds at most in all (a server that sends a byte now and then would
    otherwise keep a download alive forever)."""
    started = time.monotonic()
    request = urllib.request.Request(remote.url, headers={"User-Agent": "metabook"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        status = getattr(response, "status", 200)
        if status != 200:
            raise OSError(f"the server answered HTTP {status} for {remote.url}")
        announced = response.headers.get("Content-Length")
        digest, sha256 = hashlib.md5(), hashlib.sha256()
        received = 0
        with open(tmp, "wb") as out:
            while block := response.read1(1 << 16):
                out.write(block)
                digest.update(block)
                sha256.update(block)
                received += len(block)
                if time.monotonic() - started > deadline:
                    raise OSError(
                        f"the download of {remote.url} took longer than {deadline:.0f} s "
                        f"({received} bytes so far): the server is too slow; try again later"
                    )
    if announced is not None and received != int(announced):
        raise OSError(
            f"the download of {remote.url} was cut short: {received} of {announced} bytes"
        )
    if remote.size is not None and received != remote.size:
        raise OSError(
            f"{remote.url} gave {received} bytes but {remote.name} has {remote.size}: "
            "this is not the expected file (an error page or a changed upstream file)"
        )
    for name, expected, got in (
        ("MD5", remote.md5, digest.hexdigest()),
        ("SHA-256", remote.sha256, sha256.hexdigest()),
    ):
        if expected is not None and got != expected:
            raise OSError(
                f"{remote.url} gave a file whose {name} is {got}, expected {expected}: "
                "this is not the expected file (an error page or a changed upstream file)"
            )


def download(
    remote: RemoteFile, dest: Path, timeout: float = 60.0, deadline: float = 900.0
) -> Path:
    """Download ``remote`` to ``dest``, checked and atomically renamed into place.

    ``timeout`` bounds each wait for data and ``deadline`` the whole download, in seconds.
    Raises :class:`OSError` naming the problem when the server does not answer 200, the
    download is short or too slow, or the size or MD5 differ from the expected ones; nothing
    is left at ``dest`` in that case.
    """
    try:
        return atomic_write(dest, lambda tmp: _fetch(remote, tmp, timeout, deadline))
    except urllib.error.HTTPError as err:
        raise OSError(f"the server answered HTTP {err.code} for {remote.url}") from err
    except urllib.error.URLError as err:
        raise OSError(f"could not reach {remote.url}: {err.reason}") from err
    except (http.client.HTTPException, TimeoutError) as err:  # cut off, or no data in time
        raise OSError(f"the download of {remote.url} failed: {err!r}") from err


def check_md5(path: Path, remote: RemoteFile) -> None:
    """Refuse a local copy of ``remote`` whose MD5 is not the published one (a download cut
    short, a file edited or cut, another version): a :class:`ValueError` says what to do."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder, but {remote.name} is a file")
    got = md5sum(path)
    if got != remote.md5:
        raise ValueError(
            f"{path} has MD5 {got} but the official {remote.name} has {remote.md5}: the file "
            f"is incomplete, corrupt or not the official one. Delete it and download it again "
            f"from {remote.url}"
        )


def find_or_download(
    dataset: str,
    remote: RemoteFile,
    root: str | os.PathLike[str] | None,
    download_if_missing: bool,
    also_accept: tuple[str, ...] = (),
) -> Path:
    """Return the path of ``remote.name`` (or of one of ``also_accept``) for ``dataset``.

    The candidate roots are searched in order (a copy found there must have the published
    MD5, see :func:`check_md5`); when nothing is found and
    ``download_if_missing`` is true the file is downloaded into the first writable root.
    Otherwise, or when the download fails, :class:`DataNotFoundError` says which file is
    missing, where it was looked for and how to get it.
    """
    roots = candidate_roots(dataset, root)
    names = (remote.name, *also_accept)
    for folder in roots:
        for name in names:
            if (folder / name).exists():
                if name == remote.name and remote.md5 is not None:
                    check_md5(folder / name, remote)
                return folder / name
    looked = "\n".join(f"  - {folder}" for folder in roots)
    how = (
        f"Download {remote.url} and put it in one of these folders, or set METABOOK_DATA to a "
        f"folder that holds {dataset}/{remote.name}."
    )
    if not download_if_missing:
        raise DataNotFoundError(
            f"{remote.name} was not found (download=False). Looked in:\n{looked}\n{how}"
        )
    target = roots[0] if root is not None else cache_dir(dataset).resolve()
    try:
        return download(remote, target / remote.name)
    except OSError as err:
        raise DataNotFoundError(
            f"{remote.name} was not found and could not be downloaded into {target}: {err}\n"
            f"Looked in:\n{looked}\n{how}"
        ) from err
