"""The one writer of every file torchstack writes: inside its root, through no symlink, atomic.

A write names a root (the project folder, or a folder the user named with `--out`) and a path
below it. Every folder on the way is opened relative to the one above it with O_NOFOLLOW, so a
symlink at any component below the root (a symlinked `.torchstack`, `images/<id>`, or the file
itself) is refused, not followed, and cannot be swapped in between a check and the write. The
text goes to a temporary file with a name unique to this process and call, and is renamed over
the target, so a reader never sees half a file and concurrent runs do not collide. Every OS
refusal (a file where a folder belongs, a folder where the file belongs, no permission) is a
ConfigError (exit 2) naming the path.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TextIO

from torchstack.errors import ConfigError
from torchstack.workspace.paths import shown

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def ensure_inside(root: Path, path: Path) -> Path:
    """`path`, if no component of it below `root` is a symlink or a non-folder on the way.

    Components that do not exist yet are fine (they will be created as folders or the file).
    """
    current = root
    for part in _parts(root, path):
        current = current / part
        try:
            info = current.lstat()
        except FileNotFoundError:
            return path
        except OSError as exc:
            raise _refusal(root, current, exc) from None
        if stat.S_ISLNK(info.st_mode):
            raise _symlink(root, current)
    return path


def write_text(root: Path, path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` below `root` atomically; see the module docstring."""
    write_bytes(root, path, text.encode("utf-8"))


def write_bytes(root: Path, path: Path, data: bytes) -> None:
    parts = _parts(root, path)
    if not parts:
        raise ConfigError(f"{path}: is the folder itself, not a file below it")
    with _folder(root, parts[:-1]) as folder:
        name = parts[-1]
        _check_target(root, path, folder, name)
        temporary = f".{name}.{os.getpid()}.{os.urandom(4).hex()}.partial"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o644, dir_fd=folder)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
            except BaseException:
                _unlink_quietly(temporary, folder)
                raise
        except OSError as exc:
            raise _refusal(root, path, exc) from None


@contextmanager
def open_log(root: Path, path: Path) -> Iterator[TextIO]:
    """A log file below `root`, truncated, line-buffered; streamed, so not atomic."""
    parts = _parts(root, path)
    with _folder(root, parts[:-1]) as folder:
        _check_target(root, path, folder, parts[-1])
        try:
            fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o644, dir_fd=folder)
        except OSError as exc:
            raise _refusal(root, path, exc) from None
    with os.fdopen(fd, "w", encoding="utf-8", buffering=1) as handle:
        yield handle


def make_folder(root: Path, path: Path) -> Path:
    """Create `path` (and folders above it) below `root`, through no symlink."""
    with _folder(root, _parts(root, path)):
        return path


@contextmanager
def _folder(root: Path, parts: tuple[str, ...]) -> Iterator[int]:
    """A descriptor of root/parts..., each folder created if missing, no symlink followed."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW)  # the root may be the user's symlink
    except FileExistsError:  # mkdir met a file on the way
        raise _refusal(root, root, OSError(errno.ENOTDIR, "Not a directory")) from None
    except OSError as exc:
        raise _refusal(root, root, exc) from None
    current = root
    try:
        for part in parts:
            current = current / part
            try:
                with suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR
                                                and _is_link(part, fd)):
                    raise _symlink(root, current) from None
                raise _refusal(root, current, exc) from None
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _check_target(root: Path, path: Path, folder: int, name: str) -> None:
    try:
        info = os.lstat(name, dir_fd=folder)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _refusal(root, path, exc) from None
    if stat.S_ISLNK(info.st_mode):
        raise _symlink(root, path)
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{shown(root, path)}: is a folder; torchstack writes a file here",
                          tip=f"move the folder {path} out of the way")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{shown(root, path)}: is not a regular file; torchstack writes one"
                          " here", tip=f"remove {path}")


def _is_link(name: str, folder: int) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=folder).st_mode)
    except OSError:
        return False


def _unlink_quietly(name: str, folder: int) -> None:
    with suppress(OSError):
        os.unlink(name, dir_fd=folder)


def _parts(root: Path, path: Path) -> tuple[str, ...]:
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        raise ConfigError(f"{path}: is outside {root}; torchstack writes only below it") from None
    if "\x00" in str(path):
        raise ConfigError(f"{path!r}: a path cannot hold a NUL character")
    if any(part in ("..", ".") for part in parts):
        raise ConfigError(f"{path}: names '..' or '.'; torchstack writes only below {root}")
    return parts


def _symlink(root: Path, link: Path) -> ConfigError:
    try:
        target = str(link.readlink())
    except OSError:
        target = "?"
    real = link.resolve()
    out = "" if real == root.resolve() or root.resolve() in real.parents \
        else " that leads out of the project"
    return ConfigError(
        f"{shown(root, link)}: refusing to write through a symlink{out} (to {target});"
        " torchstack writes no file through a symlink",
        tip=f"remove the symlink {link} (torchstack creates the folder or file itself)")


def _refusal(root: Path, path: Path, exc: OSError) -> ConfigError:
    named = shown(root, path)
    if exc.errno == errno.ENOTDIR:
        return ConfigError(f"{named}: cannot write: a file stands where a folder belongs on"
                           " this path", tip="move that file out of the way")
    if exc.errno == errno.EISDIR:
        return ConfigError(f"{named}: cannot write: it is a folder",
                           tip=f"move the folder {path} out of the way")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ConfigError(f"{named}: cannot write: {exc.strerror}",
                           tip="make the folder writable for this user, or run elsewhere")
    return ConfigError(f"{named}: cannot write: {exc.strerror or exc}")


