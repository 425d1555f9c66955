"""Hash-checked, atomic downloads (pooch).

``fetch_file`` is the one way files enter the cache: pooch streams to a temporary name in the target folder, checks the
hash and only then renames it to its final name; a wrong hash raises and leaves nothing under the final name. With
``force`` a file already there (a corrupt one, say) is replaced the same way, only once the new one is verified.
Downloaded files get the mode the umask allows (as any file you create), and temporary files a killed download left
behind are removed by the next download into the same folder. Nothing here touches the network at import time.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

from ..paths import saa_home

#: seconds a connection attempt may take before a download is declared offline
CONNECT_TIMEOUT = 5.0
#: a download's temporary file not written to for this many seconds belongs to a download that was killed
STALE_TEMP_SECONDS = 600
#: names of download temporary files: pooch's ``tmpXXXXXXXX`` and the ``<name>.part`` of prefix-hash files
_TEMP_NAME = re.compile(r"^(tmp[a-z0-9_]{8}|.+\.part)$")


class MissingFileError(FileNotFoundError):
    """One or more required files are neither present nor downloadable; the message says where to put each."""

    def __init__(self, missing: list[tuple[str, str, Path]], reason: str = ""):
        self.missing = missing
        lines = [f"{len(missing)} required file(s) missing{': ' + reason if reason else ''}"]
        for name, url, path in missing:
            lines.append(f"  - {name}: download {url}\n      and save it as {path}")
        lines.append("Or point saa at files you already have: --models sam=PATH,gdino=PATH (in Python "
                     "load_models('paths', checkpoints={'sam': PATH, 'gdino': PATH})).")
        super().__init__("\n".join(lines))


class HashMismatchError(OSError):
    """A file's content does not match its published hash."""


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
            "The file is corrupt or not the published one: delete it and download it again (saa download weights "
            "--force NAME replaces a zoo file)."
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


def reachable(url: str, timeout: float = CONNECT_TIMEOUT) -> bool:
    """Whether a TCP connection to the URL's host can be opened within ``timeout`` seconds."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def clean_stale_temp_files(folder: str | os.PathLike, max_idle: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Remove the download temporary files in ``folder`` not written to for ``max_idle`` seconds (left by a download
    that was killed); return them. A download in progress keeps writing its file, so it is left alone."""
    folder, now, removed = Path(folder), time.time(), []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        try:
            if _TEMP_NAME.match(p.name) and p.is_file() and now - p.stat().st_mtime > max_idle:
                p.unlink()
                removed.append(p)
        except OSError:
            pass
    return removed


def fetch_file(url: str, path: str | os.PathLike, known_hash: str | None, name: str | None = None,
               progress: bool = True, download: bool = True, force: bool = False) -> Path:
    """Return ``path``, downloading ``url`` there first if it is missing (or always, with ``force``).

    An existing file is trusted only if its hash matches. Downloads are atomic (temporary name, hash check, rename):
    with ``force`` the file already there is replaced only by a verified new one. Offline, raises
    :class:`MissingFileError` within about ``CONNECT_TIMEOUT`` seconds naming the URL and ``path``.
    """
    import pooch  # imported lazily: nothing network-related at import time

    from ..safeio import file_mode

    path = Path(path)
    name = name or path.name
    if path.exists() and not force:
        check_hash_once(path, known_hash)
        return path
    if not download:
        raise MissingFileError([(name, url, path)], "downloads are switched off")
    if not reachable(url):
        raise MissingFileError([(name, url, path)], f"cannot reach {urlparse(url).hostname} (offline?)")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temp_files(path.parent)
    # pooch checks "sha256:" / "md5:" hashes itself, prefix hashes are checked here; either way the file arrives under
    # a temporary name and is renamed over ``path`` only when verified.
    exact = known_hash if known_hash and "-prefix:" not in known_hash else None
    tmp = path.with_name(path.name + ".part")
    tmp.unlink(missing_ok=True)
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=(CONNECT_TIMEOUT, 60))
    try:
        try:
            pooch.retrieve(url, known_hash=exact, fname=tmp.name, path=tmp.parent, downloader=downloader)
        except ValueError as err:  # pooch's hash mismatch
            raise HashMismatchError(f"{url}: {err}") from err
        if exact is None:
            check_hash(tmp, known_hash)
        os.chmod(tmp, file_mode())  # pooch's temporary files are private (0600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
