"""Hash-checked, atomic downloads (pooch) and the cache directory.

``fetch_file`` is the one way files enter the cache: pooch streams to a temporary name in the target folder, checks the
hash and only then renames it to its final name; a wrong hash raises and leaves nothing under the final name.
Nothing here touches the network at import time.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import platformdirs

#: seconds a connection attempt may take before a download is declared offline
CONNECT_TIMEOUT = 5.0


class MissingFileError(FileNotFoundError):
    """One or more required files are neither present nor downloadable; the message says where to put each."""

    def __init__(self, missing: list[tuple[str, str, Path]], reason: str = ""):
        self.missing = missing
        lines = [f"{len(missing)} required file(s) missing{': ' + reason if reason else ''}"]
        for name, url, path in missing:
            lines.append(f"  - {name}: download {url}\n      and save it as {path}")
        lines.append("Or point saa at files you already have (see README, 'Weights and datasets you already have').")
        super().__init__("\n".join(lines))


class HashMismatchError(OSError):
    """A file's content does not match its published hash."""


def saa_home() -> Path:
    """Root of the workbook's cache: ``$SAA_HOME``, else the platform cache dir (e.g. ``~/.cache/saa-workbook``)."""
    env = os.environ.get("SAA_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("saa-workbook"))


def file_hash(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_hash(path: str | os.PathLike, known_hash: str | None) -> None:
    """Raise :class:`HashMismatchError` unless ``path`` matches ``known_hash``.

    ``known_hash`` is ``"<alg>:<hex>"`` (``sha256`` if no prefix) or ``"<alg>-prefix:<hex>"``, which checks only the
    leading digits (torchvision and SAM publish hash prefixes in their file names). ``None`` checks nothing.
    """
    if not known_hash:
        return
    alg, _, expected = known_hash.rpartition(":")
    alg = alg or "sha256"
    prefix = alg.endswith("-prefix")
    alg = alg.removesuffix("-prefix")
    actual = file_hash(path, alg)
    ok = actual.startswith(expected.lower()) if prefix else actual == expected.lower()
    if not ok:
        raise HashMismatchError(
            f"{path}: {alg} is {actual}, expected {expected}{' (prefix)' if prefix else ''}. "
            "The file is corrupt or not the published one: delete it and download it again."
        )


def _check_record(path: Path) -> Path:
    """Where the result of a successful hash check of ``path`` is remembered (under ``$SAA_HOME/hash-checks``)."""
    digest = hashlib.sha1(str(path.expanduser().absolute()).encode()).hexdigest()
    return saa_home() / "hash-checks" / f"{digest}.json"


def check_hash_once(path: str | os.PathLike, known_hash: str | None) -> None:
    """:func:`check_hash`, skipped when this very file (same path, size and modification time) already passed the
    same check; a multi-GB checkpoint is then not re-read on every load. A changed file is checked again."""
    if not known_hash:
        return
    path = Path(path)
    st = path.stat()
    stamp = {"path": str(path.expanduser().absolute()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
             "known_hash": known_hash}
    record = _check_record(path)
    try:
        if json.loads(record.read_text()) == stamp:
            return
    except (OSError, ValueError):
        pass
    check_hash(path, known_hash)
    try:  # remembering is an optimisation: a read-only cache only costs the next check
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(record.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(stamp))
        os.replace(tmp, record)
    except OSError:
        pass


def _reachable(url: str, timeout: float = CONNECT_TIMEOUT) -> bool:
    """Whether a TCP connection to the URL's host can be opened within ``timeout`` seconds."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def fetch_file(url: str, path: str | os.PathLike, known_hash: str | None, name: str | None = None,
               progress: bool = True, download: bool = True) -> Path:
    """Return ``path``, downloading ``url`` there first if it is missing.

    An existing file is trusted only if its hash matches. Downloads are atomic (temporary name, hash check, rename).
    Offline, raises :class:`MissingFileError` within about ``CONNECT_TIMEOUT`` seconds naming the URL and ``path``.
    """
    import pooch  # imported lazily: nothing network-related at import time

    path = Path(path)
    name = name or path.name
    if path.exists():
        check_hash_once(path, known_hash)
        return path
    if not download:
        raise MissingFileError([(name, url, path)], "downloads are switched off")
    if not _reachable(url):
        raise MissingFileError([(name, url, path)], f"cannot reach {urlparse(url).hostname} (offline?)")
    path.parent.mkdir(parents=True, exist_ok=True)
    # pooch understands "sha256:" / "md5:" hashes; for prefix hashes it downloads unchecked to a temporary name and the
    # prefix is checked here before the rename.
    exact = known_hash if known_hash and "-prefix:" not in known_hash else None
    tmp = path.with_name(path.name + ".part") if exact is None else path
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=(CONNECT_TIMEOUT, 60))
    try:
        pooch.retrieve(url, known_hash=exact, fname=tmp.name, path=tmp.parent, downloader=downloader)
    except ValueError as err:  # pooch's hash mismatch
        raise HashMismatchError(f"{url}: {err}") from err
    if tmp != path:
        try:
            check_hash(tmp, known_hash)
        except HashMismatchError:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
    return path
