"""Result files that are never half written: atomic files, umask-respecting modes, result folders swapped in whole.

* :func:`atomic_path` yields a temporary name beside the target; only when the block ends without error is the file
  given the mode the umask allows (``0o666 & ~umask``, as ``open()`` would) and renamed over the target. A full disk,
  a crash or Ctrl-C leaves the previous file (or none), never a truncated one under the final name.
* :class:`ResultFolder` stages a whole results folder in a hidden sibling (``.<name>.partial-XXXX``) and renames it
  to its final name when the run is complete; an earlier run's folder is replaced as a unit, so files of two runs
  are never mixed. A folder that holds anything but an earlier run's results is refused before any work starts.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

import numpy as np

#: the file every results folder holds; its presence marks a folder that a re-run may replace
RUN_RECORD = "run.json"
_OWNER = ".saa-owner"  # pid@host of the run that writes a staging folder
#: the files a run wrote (a JSON list of relative paths); a re-run replaces the folder only if it holds no others
MANIFEST = ".saa-files"


class OutputError(ValueError):
    """An output location that cannot be used; the message names it and says what to do."""


def current_umask() -> int:
    """The process umask (read without changing it for longer than the call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode of a new file under the current umask (``0o666 & ~umask``)."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """Mode of a new folder under the current umask (``0o777 & ~umask``)."""
    return 0o777 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path in ``path``'s folder; on success chmod it to :func:`file_mode` and rename it to
    ``path``; on any exception (``KeyboardInterrupt`` included) remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.filename is None and err.errno:  # a failed write names no file: name the one being written
            raise OSError(err.errno, err.strerror or str(err), str(path)) from err
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8; undecodable file-name bytes kept as they were) to ``path`` atomically."""
    with atomic_path(path) as tmp:  # file names that are not UTF-8 are written back as their original bytes
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """``np.save`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)
    return Path(path)


def save_image(path: str | os.PathLike, image) -> Path:
    """Save a Pillow image to ``path`` atomically; the format follows the file ending."""
    from PIL import Image

    fmt = Image.registered_extensions()[Path(path).suffix.lower()]
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        image.save(fh, format=fmt)
    return Path(path)


def _owner_alive(staging: Path) -> bool:
    """Whether the run that created ``staging`` may still be running (same host and its pid exists)."""
    try:
        pid, host = (staging / _OWNER).read_text().strip().split("@", 1)
        if host != socket.gethostname():
            return True  # another machine's run on a shared file system: leave it
        os.kill(int(pid), 0)
        return True
    except ProcessLookupError:
        return False
    except (OSError, ValueError):
        return False


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()}


def _check_only_results(out: Path) -> None:
    """An earlier run's folder may be replaced only if it holds nothing but what that run wrote (its manifest)."""
    try:
        written = set(json.loads((out / MANIFEST).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return  # written before manifests existed: its run.json marks it as results
    except (OSError, ValueError) as err:
        raise OutputError(f"{out / MANIFEST}: cannot read this list of an earlier run's files ({err}); delete the "
                          "folder or choose another --out.") from err
    extra = sorted(_files(out) - written - {MANIFEST})
    if extra:
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        raise OutputError(f"{out}: holds files the earlier saa run did not write ({shown}); the folder would be "
                          "replaced as a whole: move them out, or choose another --out.")


class ResultFolder:
    """A results folder written as a unit. Use as a context manager::

        with ResultFolder(out) as folder:   # checks ``out`` now: before any model is loaded
            write files under folder.path
        # complete: folder.path renamed to ``out`` (an earlier run's folder replaced); on error: nothing of this run

    ``out`` may be absent, an empty folder, or a folder holding :data:`RUN_RECORD` (an earlier run) and nothing but the
    files that run wrote (listed in :data:`MANIFEST`); anything else raises :class:`OutputError`, as does a place where
    nothing can be created. Staging folders left by a killed run
    are removed by the next run for the same ``out``.
    """

    def __init__(self, out: str | os.PathLike):
        out = Path(os.path.abspath(Path(out).expanduser()))
        # a symlink to a folder: the folder it points to is the one replaced (the link stays)
        self.out = Path(os.path.realpath(out)) if out.is_symlink() else out
        self.replaced = False
        out = self.out
        if out.exists() or out.is_symlink():
            if not out.is_dir():
                raise OutputError(f"{out}: exists and is not a folder; pass a folder for --out (new, empty, or "
                                  "the results of an earlier run, which are then replaced).")
            try:
                entries = [p.name for p in out.iterdir()]
            except OSError as err:
                raise OutputError(f"{out}: cannot read the output folder ({err.strerror or err}).") from err
            if entries and RUN_RECORD not in entries:
                raise OutputError(f"{out}: the folder holds files that are not the results of an earlier saa run "
                                  f"(no {RUN_RECORD}); a results folder is replaced as a whole, so choose a new or "
                                  "empty folder for --out.")
            if entries:
                _check_only_results(out)
        parent = out.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self._clean_stale(parent)
            self.path = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
        except OSError as err:
            raise OutputError(f"{out}: cannot write results there ({err.strerror or err}"
                              f"{': ' + str(err.filename) if err.filename else ''}); choose a writable --out.") \
                from err
        os.chmod(self.path, dir_mode())
        (self.path / _OWNER).write_text(f"{os.getpid()}@{socket.gethostname()}\n")

    def _clean_stale(self, parent: Path) -> None:
        for pattern in (f".{self.out.name}.partial-*", f".{self.out.name}.old-*"):
            for d in parent.glob(pattern):
                if d.is_dir() and not _owner_alive(d):
                    shutil.rmtree(d, ignore_errors=True)

    def commit(self) -> Path:
        """Rename the staging folder to ``out``, replacing an earlier run's folder; return ``out``."""
        (self.path / _OWNER).unlink(missing_ok=True)
        write_text(self.path / MANIFEST, json.dumps(sorted(_files(self.path)), indent=0))
        out, old = self.out, None
        if out.exists():
            self.replaced = any(out.iterdir())
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            try:
                os.replace(out, old)  # onto the empty folder just made
            except BaseException:
                old.rmdir()
                raise
        try:
            os.replace(self.path, out)
        except BaseException:
            if old is not None:
                os.replace(old, out)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return out

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "ResultFolder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.commit()
            except BaseException:
                self.discard()
                raise
        else:
            self.discard()
