"""Saving under faults: a process SIGKILLed in the middle of a save.

Keras writes `.keras` and `.weights.h5` files in place, so a kill during
`model.save` leaves a file that cannot be loaded, and the previous one is
gone. `keras_adamwr.atomic_save` writes beside the file and renames, and
`BackupAndRestore(double_checkpoint=True)` (the crash recipe of
docs/saving.md) falls back to its previous backup. The processes are
`tests/_save_fault_worker.py`.
"""

import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_adamwr
from tests import _fault_worker as base

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = {"keras": "run.keras", "weights": "run.weights.h5"}


def _worker(*arguments):
    return subprocess.run(
        [sys.executable, "-m", "tests._save_fault_worker", *map(str, arguments)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
        env=dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")))


def _killed(*arguments):
    result = _worker(*arguments)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]


def _load(kind, path):
    if kind == "keras":
        return keras.models.load_model(path)
    model = base.build_model()
    keras_adamwr.build_optimizer(model)
    model.load_weights(path)
    return model


def _trained(epochs=1):
    model = base.build_model()
    x, y = base.data()
    model.fit(x, y, batch_size=base.BATCH_SIZE, epochs=epochs, shuffle=False, verbose=0)
    return model


@pytest.mark.parametrize("kind", sorted(FILES))
def test_atomic_save_killed_mid_save_keeps_the_previous_file(kind, tmp_path):
    path = tmp_path / FILES[kind]
    previous = base.state(_trained())
    assert keras_adamwr.atomic_save(_trained(), path) == str(path)
    _killed("atomic", path, 1)
    restored = base.state(_load(kind, path))
    assert len(restored) == len(previous)
    for a, b in zip(restored, previous):
        np.testing.assert_array_equal(a, b)
    # Only the temporary file of the killed save is left beside it, named
    # with its host and process id; the next save removes it (its writer
    # is dead), and a file of another name is never touched.
    leftovers = sorted(set(os.listdir(tmp_path)) - {FILES[kind]})
    assert len(leftovers) == 1 and leftovers[0].startswith(".run.keras_adamwr-"), leftovers
    (tmp_path / ".run-user.tmp.keras").write_bytes(b"not ours")
    keras_adamwr.atomic_save(_trained(), path)
    assert sorted(os.listdir(tmp_path)) == sorted([FILES[kind], ".run-user.tmp.keras"])


def test_keras_save_killed_mid_save_leaves_an_unloadable_file(tmp_path):
    # Why atomic_save exists: Keras 3.15 writes in place.
    path = tmp_path / "run.keras"
    _trained().save(path)
    _killed("keras", path, 1)
    with pytest.raises(Exception):  # noqa: B017 (Keras' error here varies)
        keras.models.load_model(path)


def test_atomic_save_keeps_the_file_mode_and_checks_the_suffix(tmp_path):
    model = _trained()
    path = tmp_path / "run.keras"
    keras_adamwr.atomic_save(model, path)
    os.chmod(path, 0o600)
    keras_adamwr.atomic_save(model, path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["run.keras"]
    with pytest.raises(ValueError, match=r"`path` must end in `.keras` or `.weights.h5`"):
        keras_adamwr.atomic_save(model, tmp_path / "run.h5")


def test_backup_with_double_checkpoint_resumes_exactly_after_a_kill_in_its_save(tmp_path):
    reference = _worker("backup", tmp_path / "reference" / "backup")
    assert reference.returncode == 0, reference.stderr[-3000:]
    # Killed in the backup at the end of epoch 3: latest.weights.h5 is
    # half-written; the restart falls back to the copy of epoch 2.
    path = tmp_path / "run" / "backup"
    _killed("backup", path, 3)
    resumed = _worker("backup", path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = np.load(tmp_path / "reference" / "final.npz")
    final = np.load(tmp_path / "run" / "final.npz")
    assert len(final.files) == len(expected.files)
    for name in expected.files:
        np.testing.assert_array_equal(final[name], expected[name])
