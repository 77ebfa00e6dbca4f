"""What the study runners share: the results file, claims for parallel
workers, and the provenance of a run.

`examples/reproduce.py` (the 0.3.0 study), `examples/study_v3.py` and
`examples/reproduce_gpu.py` each keep one CSV row per finished run and skip
the runs already there, so a stopped study continues where it was. Several
processes may work on one results file at once (one per core): reads and
appends hold an exclusive lock (`<results>.lock`), and a run in progress is
claimed by a file in `<claims>/` holding the worker's pid, so no two workers
train the same run; a claim whose process is gone is taken over.

The study scripts' training functions stay in their own files: study v3's
are pinned to its protocol commit (tests/test_study_v3.py).
"""

import contextlib
import csv
import fcntl
import os
import platform
import subprocess
import time

# The columns of study v3's results (examples/study_v3.py), which the GPU
# protocol (examples/reproduce_gpu.py) extends. Lists are ";"-separated.
FIELDS = [
    "key", "phase", "optimizer", "lr", "decay", "decay_kind", "raw_lambda",
    "epochs", "steps", "schedule", "batch_size", "seed", "data",
    "train_examples", "val_examples", "test_examples", "train_eval_examples",
    "model", "parameters", "eval_epochs", "train_errors", "val_errors",
    "test_errors", "final_train_error", "final_val_error", "final_test_error",
    "final_train_loss", "wall_seconds", "cpu_seconds", "images_per_second",
    "code_commit", "keras_adamwr_version", "keras_version", "backend",
    "backend_version", "python", "hardware", "threads", "date"]
FLOATS = ("lr", "decay", "raw_lambda", "final_train_error", "final_val_error",
          "final_test_error", "final_train_loss", "wall_seconds",
          "cpu_seconds", "images_per_second")
INTS = ("epochs", "steps", "batch_size", "seed", "train_examples",
        "val_examples", "test_examples", "train_eval_examples", "parameters")
LISTS = ("eval_epochs", "train_errors", "val_errors", "test_errors")


def cpu_name():
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def code_commit(root):
    """The checkout's commit (12 digits), or "" where git cannot tell."""
    try:
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"],
                              cwd=root, capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


class Results:
    """A study's results CSV, shared by parallel workers.

    Args:
        path: the CSV file (created with its header by the first append).
        fields: the column names, in order.
        floats, ints, lists: the columns read back as float (empty: None),
            int, and ";"-separated lists of floats; the others stay str.
        claims: a folder for the claims of runs in progress, or None for a
            single worker (nothing is claimed).
    """

    def __init__(self, path, fields, floats=(), ints=(), lists=(),
                 claims=None):
        self.path, self.fields, self.claims = path, list(fields), claims
        self.floats, self.ints, self.lists = floats, ints, lists

    @contextlib.contextmanager
    def _locked(self, write=False):
        """Hold `<path>.lock`. Where it cannot be created (a read-only
        copy of the results, which nobody writes either) a read goes on
        without it."""
        if write:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)),
                        exist_ok=True)
        try:
            lock = open(self.path + ".lock", "a")
        except OSError:
            if write:
                raise
            yield
            return
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self):
        if not os.path.exists(self.path):
            return []
        rows = []
        with open(self.path, newline="") as file:
            for row in csv.DictReader(file):
                for name in self.floats:
                    row[name] = float(row[name]) if row[name] else None
                for name in self.ints:
                    row[name] = int(row[name])
                for name in self.lists:
                    row[name] = [float(v) for v in row[name].split(";") if v]
                rows.append(row)
        return rows

    def rows(self):
        """The rows as dicts, numbers and lists parsed."""
        if not os.path.exists(self.path):
            return []
        with self._locked():
            return self._read()

    def append(self, row):
        """Append one row (header first in a new file), flushed to disk,
        and give up the claim on its run (`row["key"]`)."""
        with self._locked(write=True):
            with open(self.path, "a", newline="") as file:
                writer = csv.DictWriter(file, self.fields)
                if file.tell() == 0:
                    writer.writeheader()
                writer.writerow(row)
                file.flush()
                os.fsync(file.fileno())
        if self.claims is not None and "key" in row:
            with contextlib.suppress(OSError):
                os.unlink(self._claim_path(row["key"]))

    def _claim_path(self, key):
        return os.path.join(self.claims, "".join(
            c if c.isalnum() or c in ".-" else "_" for c in key))

    def claim(self, key):
        """Claim run `key` for this process: False if another live process
        holds it (always True without a claims folder)."""
        if self.claims is None:
            return True
        os.makedirs(self.claims, exist_ok=True)
        name = self._claim_path(key)
        for _ in range(2):
            try:
                fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    with open(name) as file:
                        pid = int(file.read() or 0)
                    os.kill(pid, 0)  # raises if the claimant is gone
                    return pid == os.getpid()
                except PermissionError:
                    return False  # alive, another user's
                except (OSError, ValueError):
                    with contextlib.suppress(OSError):
                        os.unlink(name)
                    continue
            with os.fdopen(fd, "w") as file:
                file.write(str(os.getpid()))
            return True
        return False

    def next_run(self, pending, key):
        """(spec, left): the first spec of `pending(rows)` this process
        could claim, and how many runs are left; spec is None when every
        run left is claimed by others (wait: a later phase may depend on
        them) or none is left (left == 0)."""
        with self._locked(write=True):
            todo = pending(self._read())
            for spec in todo:
                if self.claim(key(spec)):
                    return spec, len(todo)
            return None, len(todo)

    def claimed_runs(self, pending, key, max_runs=None, wait=5.0):
        """Yield (spec, left) for each run this process should train, as
        `next_run` claims them, until none is left or `max_runs` were
        yielded; while every run left is claimed by others, wait `wait`
        seconds and look again. The caller appends each run's row."""
        count = 0
        while max_runs is None or count < max_runs:
            spec, left = self.next_run(pending, key)
            if spec is None:
                if not left:
                    return
                time.sleep(wait)
                continue
            yield spec, left
            count += 1
