"""Atomic file output: nothing half-written ever sits at an output path.

Every organsim writer writes to a temporary file in the destination folder
and renames it over the output path with :func:`os.replace` only once the
write has finished. If the write fails, the temporary file is removed and the
output path is left as it was (absent, or holding its previous content).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputFileError, OrganSimError

__all__ = ["atomic_output", "full_suffix"]


def full_suffix(path: str | os.PathLike) -> str:
    """The lower-case extension of ``path``, keeping ``.gz`` and ``.seg`` pairs.

    Examples
    --------
    >>> full_suffix("case/seg.nii.gz"), full_suffix("Heart.seg.nrrd"), full_suffix("a.STL")
    ('.nii.gz', '.seg.nrrd', '.stl')
    """
    name = Path(path).name.lower()
    suffixes = Path(name).suffixes
    if len(suffixes) >= 2 and (suffixes[-1] == ".gz" or suffixes[-2:] == [".seg", ".nrrd"]):
        return "".join(suffixes[-2:])
    return suffixes[-1] if suffixes else ""


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write to; move it to ``path`` on success.

    The temporary file lives in the destination folder (so the final rename
    is atomic on the same file system) and ends with the same extension as
    ``path``, so libraries that pick the format from the extension still do.

    Parameters
    ----------
    path : str or os.PathLike
        The final output path. Its folder must exist.

    Yields
    ------
    pathlib.Path
        Where the caller writes the file.

    Raises
    ------
    InputFileError
        If the destination folder does not exist or the file cannot be
        written (permissions, disk full); the output path is untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_output(out) as tmp:
    ...     _ = tmp.write_text("done")
    >>> out.read_text()
    'done'
    """
    final = Path(path)
    folder = final.parent if str(final.parent) else Path(".")
    if not folder.is_dir():
        raise InputFileError(f"{final}: cannot write, the folder {folder} does not exist;"
                             " create it first or choose another output path")
    suffix = full_suffix(final)
    stem = final.name[: len(final.name) - len(suffix)] if suffix else final.name
    tmp = folder / f".{stem}.{uuid.uuid4().hex[:8]}.partial{suffix}"
    try:
        yield tmp
        if not tmp.exists():
            raise InputFileError(f"{final}: the writer produced no file; nothing was written")
        os.replace(tmp, final)
    except OrganSimError:
        _remove_quietly(tmp)
        raise
    except OSError as exc:
        _remove_quietly(tmp)
        raise InputFileError(f"{final}: cannot write the file ({exc.strerror or exc});"
                             " check the folder is writable and the disk has space") from exc
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
