"""Atomic file writes: a reader (or a crash) never sees half a file.

Everything stressvae writes for a user (models, scenarios, reports, shards,
manifests) goes through here: the bytes go to a temporary file in the same
folder, which is then renamed over the target. On any error or interruption
the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; when the block ends without
    an error the temporary file is renamed to ``path``, otherwise removed.
    The parent folder is created if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def check_free_space(path: str | Path, nbytes: int, what: str) -> None:
    """Raises OSError (ENOSPC) before writing ``nbytes`` bytes of ``what``
    under ``path`` (a file or a folder, possibly not created yet) when the
    file system holding it has less free space. The message names the
    folder, the bytes needed and the bytes free."""
    folder = Path(path).absolute()
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if nbytes > free:
        raise OSError(
            errno.ENOSPC,
            f"{what} needs {nbytes / 2**30:.2f} GiB ({nbytes} bytes) but {folder} "
            f"has only {free / 2**30:.2f} GiB ({free} bytes) free",
        )
