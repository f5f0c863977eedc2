"""The files rnnkit writes: checked before work starts, written atomically, sealed by a checksum.

Three guarantees every command relies on (docs/DESIGN-NOTES.md, "A user's files"):

1. `check_output` is called at start-up for every output path (checkpoint, state, PNG, ONNX,
   CSV, MIDI): the folder exists or is created, a file can be created in it, the path is not a
   folder and not one of the run's inputs, and an existing file there is overwritten only if it
   is an rnnkit file of the same kind (or with ``force``). So a typo never costs minutes of
   work, and ``--out text.txt`` never replaces the user's text.
2. `atomic_write` writes to a temporary file in the same folder, syncs it and renames it into
   place: a crash or ``kill -9`` leaves the old file or the new one, never a half-written one.
3. `digest` is a SHA-256 over tensor data and metadata; checkpoints and state files carry it
   and loading verifies it, so flipped bytes are found instead of loaded.

How a kind is recognised lives in `KINDS`: a function from a path to "is this an rnnkit file of
this kind?". Tasks that write a new kind of file add theirs.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OutputError

SIGNATURE = "rnnkit"  # in every file rnnkit writes: safetensors metadata, PNG text, ONNX producer


# -- recognising rnnkit's own files ----------------------------------------------------------------
def safetensors_metadata(path: str | os.PathLike, limit: int = 100 << 20) -> dict[str, str] | None:
    """The ``__metadata__`` of a safetensors file, or None when ``path`` is not one."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return None
            n = int.from_bytes(head, "little")
            if not 2 <= n <= limit:
                return None
            header = json.loads(fh.read(n))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def _is_checkpoint(path: Path) -> bool:
    meta = safetensors_metadata(path)
    return meta is not None and meta.get("format") == SIGNATURE


def _is_state(path: Path) -> bool:
    meta = safetensors_metadata(path)
    return meta is not None and (meta.get("format") == SIGNATURE + "-state" or "model" in meta)


def _head_has_signature(magic: bytes, size: int = 4096) -> Callable[[Path], bool]:
    def sniff(path: Path) -> bool:
        try:
            with open(path, "rb") as fh:
                head = fh.read(size)
        except OSError:
            return False
        return head.startswith(magic) and SIGNATURE.encode() in head

    return sniff


def _is_scores_csv(path: Path) -> bool:
    """A scores file ``rnnkit detect`` wrote: its header line ends with ``,anomaly_score``."""
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline(4096)
    except (OSError, UnicodeDecodeError):
        return False
    return first.rstrip("\r\n").endswith(",anomaly_score")


KINDS: dict[str, Callable[[Path], bool]] = {
    "checkpoint": _is_checkpoint,
    "state": _is_state,
    "png": _head_has_signature(b"\x89PNG\r\n\x1a\n"),  # written with Software: rnnkit
    "onnx": _head_has_signature(b"", 256),  # the producer name comes first in the file
    "scores": _is_scores_csv,  # rnnkit detect's results (NAB's format)
}


def is_rnnkit_file(path: str | os.PathLike, kind: str) -> bool:
    """Whether ``path`` is a file rnnkit wrote as ``kind`` (a key of `KINDS`)."""
    return KINDS[kind](Path(path))


# -- checking an output before the work -----------------------------------------------------------
def check_output(
    path: str | os.PathLike,
    kind: str,
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    force: bool = False,
    what: str = "--out",
) -> Path:
    """Make sure ``path`` can receive a file of ``kind`` before any work is done; return it.

    The folder is created if missing. Raises `OutputError` naming ``what`` (the option the path
    came from) when the path is a folder, one of ``inputs``, in a folder where no file can be
    created, or an existing file that is not an rnnkit ``kind`` file (unless ``force``).
    """
    if kind not in KINDS:
        raise OutputError(f"{what}: unknown kind of output {kind!r}; expected one of {list(KINDS)}")
    path = Path(path)
    if not str(path) or path.is_dir() or str(path).endswith(os.sep):
        raise OutputError(f"{what}: {str(path)!r} is a folder; expected a file path")
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise OutputError(
                f"{what}: {str(path)!r} is also an input of this run; expected another path "
                "(writing there would destroy the input)"
            )
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{what}: cannot create the folder {str(folder)!r} ({exc.strerror})"
        ) from None
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(
            f"{what}: cannot write in {str(folder)!r} ({exc.strerror}); expected a writable folder"
        ) from None
    if path.exists() and not force and not is_rnnkit_file(path, kind):
        raise OutputError(
            f"{what}: {str(path)!r} exists and is not an rnnkit {kind} file; refusing to "
            "overwrite it (choose another path, or pass --force to replace it)"
        )
    return path


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` is ``b``, or a file inside the folder ``b``."""
    try:
        if a.exists() and b.exists() and os.path.samefile(a, b):
            return True
        ra, rb = a.resolve(), b.resolve()
    except OSError:
        return False
    return ra == rb or (b.is_dir() and rb in ra.parents)


# -- writing ------------------------------------------------------------------------------------
def atomic_write(path: str | os.PathLike, write: Callable[[str], None], what: str = "") -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, sync it, and rename it to
    ``path``. Any failure leaves ``path`` as it was and raises `OutputError` naming it."""
    path = Path(path)
    label = f"{what}: " if what else ""
    if path.is_dir():
        raise OutputError(f"{label}{str(path)!r} is a folder; expected a file path")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(
            f"{label}cannot write {str(path)!r}: its folder {str(folder)!r} does not exist; "
            "expected an existing one"
        )
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"{label}cannot write in {str(folder)!r} ({exc.strerror})") from None
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode_for(path))  # mkstemp makes 0600; give what a plain open would
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"{label}cannot write {str(path)!r} ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _mode_for(path: Path) -> int:
    """The permissions of the file being replaced, or those a new file gets (0666 less the
    umask)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_bytes_atomic(path: str | os.PathLike, data: bytes, what: str = "") -> Path:
    """`atomic_write` of a bytes object."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    return atomic_write(path, write, what)


def save_figure(fig: Any, path: str | os.PathLike, what: str = "", dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG, atomically, signed ``Software: rnnkit <version>`` so
    that `check_output` knows it as rnnkit's own and a later run may replace it."""
    from ._version import __version__

    meta = {"Software": f"{SIGNATURE} {__version__} (matplotlib)"}
    return atomic_write(
        path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, metadata=meta), what
    )


# -- integrity ----------------------------------------------------------------------------------
def digest(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> str:
    """``sha256:<hex>`` over every tensor (name, dtype, shape, bytes) and metadata entry, in
    sorted order; the ``checksum`` entry itself is left out."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        a = np.ascontiguousarray(tensors[key])
        h.update(f"{key}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.view(np.uint8).ravel().data)  # the bytes as stored, no copy
    for key in sorted(metadata):
        if key != "checksum":
            h.update(f"{key}\0{metadata[key]}\0".encode())
    return "sha256:" + h.hexdigest()


def text_fingerprint(text: str) -> dict[str, object]:
    """What identifies a run's text: its length in characters and the SHA-256 of its UTF-8."""
    data = text.encode("utf-8", "surrogatepass")
    return {"chars": len(text), "sha256": hashlib.sha256(data).hexdigest()}
