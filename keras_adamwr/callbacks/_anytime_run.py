"""Which run `AnytimeRecorder`'s folders belong to: results are never deleted.

Each folder (`log_dir`, `snapshot_dir`) holds `anytime-run.json`: a run id
and the checkpoints of that run, `[step, fingerprint]` at every epoch end
and at the end of `fit` (the points where `BackupAndRestore`,
`ModelCheckpoint` and `model.save` usually save). The fingerprint is a
CRC-32 of all model weights (also taken at every cycle end). The file
holds one checkpoint per line and a checkpoint is appended in place (the
closing `]}` overwritten, then synced), so it costs the same at any
length; a last line cut short by a crash is dropped when it is read. A
`fit`
that finds results in a folder continues them only at a step > 0, and
never against the evidence: where the run recorded a checkpoint at that
step, the weights must match it; where it recorded none, the fit is
accepted with a warning only if nothing lies past its step, so that
nothing would be dropped.
"""

import json
import os
import uuid
import warnings
import zlib

import numpy as np

from keras_adamwr.callbacks._anytime_files import write_atomic

RUN_FILE = "anytime-run.json"
_TAIL = b"\n]}\n"


def fingerprint(model):
    """CRC-32 of every weight of `model`, as 8 hex digits."""
    crc = 0
    for variable in model.weights:
        value = np.ascontiguousarray(variable.numpy())
        crc = zlib.crc32(value.tobytes(), crc)
    return f"{crc:08x}"


class RunLedger:
    """The run id and checkpoints, kept in every folder given."""

    def __init__(self, folders):
        self.folders = {name: path for name, path in folders if path is not None}
        self.run_id, self.checkpoints = None, []

    def claim(self, step, model, occupied, later):
        """Adopts the run in the folders or starts one; raises if foreign.

        `occupied`: names of the folders that hold results (rows,
        snapshots); `later`: whether some of them lie past `step` (a
        resume drops those, so it must be proven the same run).
        """
        runs = {name: read_run(os.path.join(self.folders[name], RUN_FILE))
                for name in occupied}
        for name in occupied:
            if step == 0:
                raise ValueError(self._foreign(name, runs[name], (
                    "this fit starts at step 0 (a resumed run continues at "
                    "the step BackupAndRestore or load_model restored)")))
        ids = {run.get("run_id") for run in runs.values() if isinstance(run, dict)}
        if len(ids) > 1:
            raise ValueError("Arguments `log_dir` and `snapshot_dir` hold the "
                             f"results of different runs ({sorted(ids)}). "
                             f"Received: {self.folders}")
        known = [run for run in runs.values() if isinstance(run, dict)]
        if not known:  # no results, or written before run files existed
            self.run_id, self.checkpoints = uuid.uuid4().hex[:12], []
        else:
            run = known[0]
            name = next(name for name in occupied if runs[name] is run)
            checkpoints = [tuple(pair) for pair in run.get("checkpoints", [])]
            here = {mark for at, mark in checkpoints if at == step}
            if here and fingerprint(model) not in here:
                raise ValueError(self._foreign(name, run, (
                    f"the model at step {step} is not the one that run "
                    f"saved at step {step}")))
            if not here and later:
                raise ValueError(self._foreign(name, run, (
                    f"that run recorded no checkpoint at step {step} to "
                    f"prove this fit continues it, while it holds results "
                    f"past step {step} that a resume would drop")))
            if not here:
                warnings.warn(
                    f"AnytimeRecorder: run {run['run_id']} recorded no "
                    f"checkpoint at step {step} (a save mid-epoch?); this "
                    "fit is taken to continue it, and adds its rows.",
                    stacklevel=4)
            self.run_id = run["run_id"]
            self.checkpoints = [(at, m) for at, m in checkpoints if at <= step]
        self._write()

    def checkpoint(self, step, model):
        """Records the weights at `step` (an epoch end or the end of fit)."""
        entry = (step, fingerprint(model))
        if self.run_id is None or (self.checkpoints and self.checkpoints[-1] == entry):
            return
        self.checkpoints.append(entry)
        line = json.dumps(list(entry)).encode()
        for folder in self.folders.values():
            if not _append(os.path.join(folder, RUN_FILE), line,
                           len(self.checkpoints) == 1):
                self._write()  # not the layout written by `_write`
                return

    def _write(self):
        head = json.dumps({"run_id": self.run_id})[:-1].encode()
        lines = b",\n".join(json.dumps(list(entry)).encode()
                             for entry in self.checkpoints)
        data = head + b', "checkpoints": [\n' + lines + _TAIL
        for path in self.folders.values():
            os.makedirs(path, exist_ok=True)
            write_atomic(os.path.join(path, RUN_FILE), data)

    def _foreign(self, name, run, why):
        folder = self.folders[name]
        which = (f"run {run['run_id']}" if isinstance(run, dict) and "run_id" in run
                 else "another run")
        return (f"Argument `{name}` holds the results of {which}, and {why}. "
                "AnytimeRecorder never deletes results: pass a new folder, "
                "or move that one away yourself. If it is the same run "
                f"(resumed from a save it did not record), delete {RUN_FILE} "
                f"there. Received: {name}={folder!r}")


def _append(path, line, first):
    """Appends one checkpoint line in place; False if the file is not in
    the layout `_write` makes."""
    try:
        with open(path, "r+b") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(size - len(_TAIL), 0))
            if size < len(_TAIL) or file.read() != _TAIL:
                return False
            file.seek(size - len(_TAIL))
            file.write((b"\n" if first else b",\n") + line + _TAIL)
            file.flush()
            os.fsync(file.fileno())
    except FileNotFoundError:
        return False
    return True


def read_run(path):
    """The run file's `{"run_id", "checkpoints"}`, or None if absent; a last
    checkpoint line cut short by a crash is dropped; a clear error if bad."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return None
    try:
        return json.loads(data)
    except ValueError as error:
        problem = error
    lines = data.split(b"\n")
    entries = []
    try:
        head = json.loads(lines[0] + b"]}")
        for number, line in enumerate(lines[1:], 1):
            line = line.rstrip(b",")
            if line in (b"]}", b""):
                continue
            try:
                entries.append(json.loads(line))
            except ValueError:
                if any(rest.strip() not in (b"", b"]}") for rest in lines[number + 1:]):
                    raise
                break  # the line being appended when a crash came
    except ValueError:
        raise ValueError(f"{path} is not valid JSON ({problem}). Move it away "
                         "or use another folder.") from None
    if not isinstance(head, dict):
        raise ValueError(f"{path} is not a run file. Move it away or use "
                         "another folder.")
    return {**head, "checkpoints": entries}
