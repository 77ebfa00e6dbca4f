"""One running `fit` per folder: `AnytimeRecorder` locks its folders.

Two processes writing rows into one `log_dir` (or snapshots into one
`snapshot_dir`) would interleave them, or remove each other's temporary
files. From `on_train_begin` to `on_train_end` each folder holds
`.anytime.lock`, locked with `flock` (POSIX; `msvcrt.locking` on Windows)
and holding the owner's pid, host, start time and command line. A second
process gets a `ValueError` naming the owner, before it reads or writes
anything there.

The operating system releases the lock when its process ends, however it
ends (SIGKILL, OOM kill, power loss of a client of an NFS server that
recovers its locks): there is no stale lock to detect or remove. A killed
run leaves the file, unlocked; the next run locks and rewrites it. A `fit`
that raised (Keras then skips `on_train_end`) keeps the lock while its
process lives; the next `fit` of that process on the folder takes it
over. A competitor that finds the lock taken but its owner not yet
written (the owner writes right after locking) looks again for up to a
second, so its message names the owner. A file system without locks (`flock` fails with `ENOLCK`/`EOPNOTSUPP`,
some FUSE or network mounts) gets a warning and no lock.

Release removes the file while still holding the lock; acquiring checks
that the locked file is still the one at the path (else it retries), so a
lock is never held on a removed file.
"""

import errno
import json
import os
import socket
import sys
import threading
import time
import warnings

LOCK_FILE = ".anytime.lock"
_held = {}  # real path of a lock file -> descriptor, in this process
_guard = threading.Lock()


class FolderLock:
    """The locks of one recorder's folders (`[(argument, path), ...]`)."""

    def __init__(self, folders):
        self.folders = [(name, path) for name, path in folders if path is not None]
        self.paths = []

    def acquire(self):
        """Locks every folder (created if missing), or raises ValueError."""
        self.release()
        try:
            for name, folder in self.folders:
                os.makedirs(folder, exist_ok=True)
                path = os.path.realpath(os.path.join(folder, LOCK_FILE))
                if path not in self.paths and _lock(name, folder, path):
                    self.paths.append(path)
        except BaseException:
            self.release()
            raise

    def release(self):
        for path in self.paths:
            _unlock(path)
        self.paths = []


def _lock(name, folder, path):
    with _guard:
        if path in _held:  # this process: a fit that raised, or a recorder on two names
            _write_owner(_held[path])
            return True
        while True:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                locked = _try_lock(descriptor)
            except OSError as error:
                os.close(descriptor)
                if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    warnings.warn(
                        f"Cannot lock {path} ({error.strerror}): this file system "
                        f"has no locks, so nothing stops another process from "
                        f"writing into {folder} at the same time.", stacklevel=4)
                    return False
                raise
            if not locked:
                owner = _read_owner(descriptor)
                os.close(descriptor)
                raise ValueError(
                    f"Argument `{name}` is in use: {folder} is locked by a running "
                    f"fit ({owner}). One fit at a time writes into a folder; wait "
                    f"for it to end, or pass another `{name}`. The lock ends with "
                    f"its process. Received: {name}={folder!r}")
            try:
                same = os.path.samestat(os.fstat(descriptor), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(descriptor)  # removed by its owner's release: retry
        _held[path] = descriptor
        _write_owner(descriptor)
        return True


def _unlock(path):
    with _guard:
        descriptor = _held.pop(path, None)
        if descriptor is None:
            return
        try:
            os.remove(path)  # while locked: see the module docstring
        except OSError:
            pass
        os.close(descriptor)  # releases the lock


def _try_lock(descriptor):
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _write_owner(descriptor):
    owner = {"pid": os.getpid(), "host": socket.gethostname(),
             "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
             "command": " ".join(sys.argv)[:200]}
    data = json.dumps(owner).encode() + b"\n"
    os.ftruncate(descriptor, 0)
    if hasattr(os, "pwrite"):
        os.pwrite(descriptor, data, 0)
    else:  # Windows: the position is 0 after the truncation
        os.lseek(descriptor, 0, os.SEEK_SET)
        os.write(descriptor, data)


def _read_owner(descriptor, wait=1.0):
    """The owner of a lock held by another process. Its owner writes the
    file right after locking it, so a competitor that comes between the two
    looks again for up to `wait` seconds before it gives up."""
    deadline = time.monotonic() + wait
    while True:
        try:
            data = os.pread(descriptor, 4096, 0) if hasattr(os, "pread") else b""
            owner = json.loads(data)
            return (f"pid {owner['pid']} on host {owner['host']} since "
                    f"{owner['since']}: {owner['command']}")
        except (OSError, ValueError, KeyError, TypeError):
            if not hasattr(os, "pread") or time.monotonic() > deadline:
                return "its owner is not written yet"
            time.sleep(0.01)
