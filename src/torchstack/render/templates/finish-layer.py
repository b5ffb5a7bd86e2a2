"""Make one install step's layer reproducible: compile its bytecode, fix every new mtime.

Rendered by torchstack; runs at the end of each install step with PYTHONHASHSEED=0 (set order
in code constants follows string hashes). Bytecode is hash-based and unchecked, written now
because pods often run with a read-only root filesystem and could not write it later; files
are compiled in sorted order in one process, so the same wheels give the same bytes. Only
paths whose mtime is not already the fixed one are touched: touching an unchanged file from a
lower layer would copy it into this one.
"""

import contextlib
import importlib.util
import os
import py_compile
import re
import stat
import sys

VENV = "/opt/venv"
# Directories a step may touch besides the venv; walked one level only.
SHALLOW = ("/", "/opt", "/tmp", "/root", "/run", "/run/torchstack", "/etc")


def normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def site_packages():
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return os.path.join(VENV, "lib", f"python{version}", "site-packages")


def group_names(group_file):
    with open(group_file, encoding="utf-8") as handle:
        return {normalise(line.split("==", 1)[0]) for line in handle if "==" in line}


def sources_of(names):
    """The .py files that the group's distributions installed (from their RECORD files)."""
    root = site_packages()
    found = []
    for entry in sorted(os.listdir(root)):
        if not entry.endswith(".dist-info"):
            continue
        if normalise(entry[: -len(".dist-info")].rsplit("-", 1)[0]) not in names:
            continue
        with open(os.path.join(root, entry, "RECORD"), encoding="utf-8") as handle:
            for line in handle:
                path = line.rsplit(",", 2)[0]
                if path.endswith(".py"):
                    found.append(os.path.normpath(os.path.join(root, path)))
    return sorted(set(found))


def compile_all(sources):
    mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
    for source in sources:
        if not os.path.isfile(source):
            continue
        # A file that does not compile (a template, code for another Python) is skipped, as
        # pip skips it.
        with contextlib.suppress(py_compile.PyCompileError):
            py_compile.compile(source, cfile=importlib.util.cache_from_source(source),
                               dfile=source, doraise=True, invalidation_mode=mode)


def fix(path, epoch):
    if os.lstat(path).st_mtime_ns != epoch * 1_000_000_000:
        os.utime(path, ns=(epoch * 1_000_000_000,) * 2, follow_symlinks=False)


def not_writable_by_others(path):
    """uv creates the venv's .lock world-writable; nothing in the venv may be (hygiene)."""
    mode = os.lstat(path).st_mode
    if stat.S_ISREG(mode) and mode & 0o002:
        os.chmod(path, stat.S_IMODE(mode) & ~0o002)


def fix_times(epoch):
    for top, dirs, files in os.walk(VENV):
        for name in files:
            not_writable_by_others(os.path.join(top, name))
        for name in files + dirs:
            fix(os.path.join(top, name), epoch)
    for path in (VENV, *SHALLOW):  # /tmp keeps its mode: only its time is pinned
        if os.path.isdir(path):
            fix(path, epoch)


def main(epoch, group_file):
    compile_all(sources_of(group_names(group_file)))
    fix_times(int(epoch))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
