"""One running fit per `AnytimeRecorder` folder (issue 18, item 8).

Two processes started at the same moment on one `log_dir`: one trains, the
other is refused at once with the owner's pid and host; the lock ends with
its process (a killed run leaves no stale lock). The processes are
`tests/_lock_worker.py`.
"""

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import keras_adamwr
from keras_adamwr.callbacks import _anytime_lock
from tests import _fault_worker as base

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _start(shared, name):
    return subprocess.Popen(
        [sys.executable, "-m", "tests._lock_worker", str(shared), name],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")))


def test_two_processes_on_one_log_dir_one_is_refused_at_once(tmp_path):
    workers = {name: _start(tmp_path, name) for name in ("a", "b")}
    try:
        deadline = time.monotonic() + 300
        while not all((tmp_path / f"ready-{name}").exists() for name in workers):
            assert time.monotonic() < deadline, "workers not ready"
            assert all(w.poll() is None for w in workers.values()), [
                w.communicate()[0][-2000:] for w in workers.values() if w.poll() is not None]
            time.sleep(0.05)
        (tmp_path / "go").touch()
        outputs = {name: w.communicate(timeout=300)[0] for name, w in workers.items()}
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.kill()
    codes = sorted(w.returncode for w in workers.values())
    assert codes == [0, 3], outputs
    winner = next(name for name, w in workers.items() if w.returncode == 0)
    loser = next(name for name in workers if name != winner)
    message = (tmp_path / f"refused-{loser}").read_text()
    assert "Argument `log_dir` is in use" in message and "pid" in message, message
    steps = json.loads((tmp_path / f"done-{winner}").read_text())
    rows = json.loads((tmp_path / "log" / "anytime.json").read_text())
    assert [row["step"] for row in rows] == steps == [6, 18]  # only the winner's rows
    # Released at the end of fit: the file is gone.
    assert sorted(os.listdir(tmp_path / "log")) == [
        "anytime-run.json", "anytime.csv", "anytime.json"]


def test_a_lock_file_left_by_a_killed_run_is_not_a_lock(tmp_path):
    # What SIGKILL leaves: the file, without its (kernel-held) lock.
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    (log_dir / _anytime_lock.LOCK_FILE).write_text('{"pid": 1, "host": "h"}\n')
    model = base.build_model()
    recorder = keras_adamwr.AnytimeRecorder(base.data(32, seed=1), log_dir=str(log_dir),
                                            verbose=0)
    x, y = base.data()
    model.fit(x, y, batch_size=base.BATCH_SIZE, epochs=1, verbose=0, callbacks=[recorder])
    assert not (log_dir / _anytime_lock.LOCK_FILE).exists()


def test_a_fit_that_raised_keeps_the_lock_until_the_next_fit_of_its_process(tmp_path):
    class Crash(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise RuntimeError("crash")

    model = base.build_model()
    x, y = base.data()
    recorder = keras_adamwr.AnytimeRecorder(base.data(32, seed=1), log_dir=str(tmp_path),
                                            verbose=0)
    with pytest.raises(RuntimeError, match="crash"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[recorder, Crash()])
    owner = json.loads((tmp_path / _anytime_lock.LOCK_FILE).read_text())
    assert owner["pid"] == os.getpid()
    again = keras_adamwr.AnytimeRecorder(base.data(32, seed=1), log_dir=str(tmp_path),
                                         verbose=0)
    with pytest.warns(UserWarning, match="recorded no checkpoint at step 1"):
        model.fit(x, y, batch_size=base.BATCH_SIZE, epochs=1, verbose=0, callbacks=[again])
    assert not (tmp_path / _anytime_lock.LOCK_FILE).exists()
    np.testing.assert_equal(len(again.records), 1)


def test_a_competitor_between_lock_and_owner_write_still_names_the_owner(tmp_path):
    """The race CI met: the loser tried the lock after the winner locked
    the file but before it wrote its owner; the message must still name
    the owner (it is written a moment later)."""
    import fcntl
    import threading

    folder = tmp_path / "log"
    folder.mkdir()
    path = str(folder / _anytime_lock.LOCK_FILE)
    winner = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(winner, fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked, not written
        writer = threading.Timer(0.2, _anytime_lock._write_owner, (winner,))
        writer.start()
        with pytest.raises(ValueError, match=r"Argument `log_dir` is in use: .*\(pid "):
            _anytime_lock._lock("log_dir", str(folder), os.path.realpath(path))
        writer.join()
    finally:
        os.close(winner)
