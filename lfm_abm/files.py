"""Files the tool writes: whole or not at all, and their targets checked before the work.

Every output goes through `atomic_file`: it is written under a temporary name beside
its target, flushed to disk and renamed over the target in one step, so a reader (or a
resumed study) sees either the old file or the complete new one, never half of one; on
any failure (a kill, a full disk) the temporary file is removed. `check_output_file` and
`check_output_dir` fail in the first second, naming the flag, instead of after the work.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lfm_abm.errors import InputError

#: Prefix of every temporary file; a folder's leftovers from a killed process match it.
TMP_PREFIX = ".lfm-tmp-"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()
#: Modes of new files and folders as open() and mkdir() give them (tempfile's are private).
FILE_MODE = 0o666 & ~_UMASK
DIR_MODE = 0o777 & ~_UMASK


def _fsync(path: Path) -> None:
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())


class WriteError(OSError):
    """A file could not be written (full disk, no permission), naming the file meant.

    The error of the write itself often names no file, or the temporary one.
    """

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path`, renamed over it only if the block succeeds.

    An OSError on the way (in the block too) is raised as WriteError naming `path`.
    """
    path = Path(path)
    try:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.")
    except OSError as exc:
        raise WriteError(exc.errno, exc.strerror, str(path)) from exc
    os.close(handle)
    tmp = Path(name)
    try:
        tmp.chmod(FILE_MODE)
        yield tmp
        _fsync(tmp)  # on disk before it replaces the old file
        os.replace(tmp, path)
    except WriteError:
        raise
    except OSError as exc:
        raise WriteError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, data: object) -> None:
    """Write JSON atomically (values JSON does not know are written as text)."""
    write_text_atomic(path, json.dumps(data, indent=2, default=str))


def remove_leftovers(folder: Path) -> int:
    """Delete temporary files a killed process left in `folder`; returns how many."""
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.iterdir() if p.is_file() and p.name.startswith(TMP_PREFIX)]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def _writable(folder: Path) -> bool:
    """True if a file can be created in `folder` (tried, not guessed from mode bits)."""
    try:
        handle, name = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX)
    except OSError:
        return False
    os.close(handle)
    os.unlink(name)
    return True


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()


def check_output_dir(path: str | Path, field: str) -> Path:
    """The folder, if it exists or can be created here and is writable; else InputError.

    Nothing is created: a command that then fails on other input leaves no folder behind.
    """
    path = Path(path)
    base = _existing_ancestor(path.absolute())
    if not base.is_dir():
        raise InputError(f"cannot create folder {str(path)!r}: {str(base)!r} is not a folder",
                         field=field)
    if not _writable(base):
        what = "folder is not writable" if base == path.absolute() else \
            f"cannot create it: {str(base)!r} is not writable"
        raise InputError(f"{str(path)!r}: {what}", field=field)
    return path


def check_output_file(path: str | Path, field: str,
                      suffixes: Iterable[str] | None = None) -> Path:
    """A file path whose folder exists and is writable (and whose suffix is allowed)."""
    path = Path(path)
    if suffixes is not None:
        allowed = list(suffixes)
        if path.suffix.lower() not in allowed:
            raise InputError(f"unknown file type {path.suffix or '(none)'!r} of {str(path)!r}",
                             field=field, allowed=allowed)
    folder = path.absolute().parent
    if not folder.is_dir():
        raise InputError(f"folder {str(path.parent)!r} does not exist", field=field)
    if path.is_dir():
        raise InputError(f"{str(path)!r} is a folder, not a file", field=field)
    if not _writable(folder) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"{str(path)!r} is not writable", field=field)
    return path


def source_hash(folder: Path, pattern: str = "*.py") -> str:
    """Hash of the source files under `folder` matching `pattern`: other code, other hash."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(folder.glob(pattern)):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
