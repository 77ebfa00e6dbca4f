"""Saving edges (issue 18, items 7 and 9): no prompt, parents created,
modes that follow the umask, subclassed models, refusals that change
nothing, and stale temporary files of dead writers only."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_adamwr
from keras_adamwr import saving


def _model(optimizer, seed=0):
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(seed)),
    ])
    model.compile(optimizer=optimizer, loss="mse")
    keras_adamwr.build_optimizer(model)
    return model


def _weights(model):
    return [np.array(v) for v in model.weights]


@pytest.mark.parametrize("name", ["run.keras", "run.weights.h5"])
def test_atomic_save_without_overwrite_never_prompts(name, tmp_path, monkeypatch):
    # pytest's stdin is no terminal; Keras' prompt would read it.
    def prompt(*_):
        raise AssertionError("atomic_save prompted")

    monkeypatch.setattr("builtins.input", prompt)
    model = _model(keras_adamwr.AdamW(1e-3))
    path = tmp_path / name
    assert keras_adamwr.atomic_save(model, path, overwrite=False) == str(path)
    written = path.read_bytes()
    with pytest.raises(FileExistsError, match="already exists and `overwrite=False`"):
        keras_adamwr.atomic_save(_model(keras_adamwr.AdamW(1e-3), seed=1), path,
                                 overwrite=False)
    assert path.read_bytes() == written
    assert os.listdir(tmp_path) == [name]


@pytest.mark.tensorflow_only
def test_export_creates_parents_and_follows_the_umask(tmp_path):
    model = _model(keras_adamwr.AdamW(1e-3))
    previous = os.umask(0o022)
    try:
        keras_adamwr.export_training_state(model, tmp_path / "export" / "mid")
    finally:
        os.umask(previous)
    assert os.stat(tmp_path / "export" / "mid").st_mode & 0o777 == 0o755
    assert os.listdir(tmp_path / "export") == ["mid"]


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3, kernel_initializer="ones")

    def call(self, inputs):
        return self.dense(inputs)


@pytest.mark.tensorflow_only
def test_export_of_a_subclassed_model_needs_and_takes_a_signature(tmp_path):
    import tensorflow as tf

    model = Subclassed()
    model.compile(keras_adamwr.AdamW(1e-3), "mse")
    model.fit(np.ones((4, 4), "float32"), np.ones((4, 3), "float32"), verbose=0)
    with pytest.raises(ValueError, match="`input_signature` is needed"):
        keras_adamwr.export_training_state(model, tmp_path / "a")
    keras_adamwr.export_training_state(
        model, tmp_path / "a", input_signature=tf.TensorSpec((None, 4), "float32"))
    served = tf.saved_model.load(str(tmp_path / "a")).signatures["serving_default"](
        tf.ones((2, 4)))
    np.testing.assert_allclose(next(iter(served.values())), model(np.ones((2, 4))))


@pytest.mark.parametrize("file", ["w.weights.h5", "m.keras"])
@pytest.mark.parametrize("source", [
    lambda: keras.optimizers.SGD(0.05, momentum=0.9),  # untagged, another name
    lambda: keras_adamwr.AdamW(1e-3),  # another tag
    lambda: keras_adamwr.SGDW(0.05, momentum=0.9, name="sgdw"),
])
def test_refused_optimizer_state_leaves_the_weights_alone(source, file, tmp_path):
    saved = _model(source(), seed=1)
    if file.endswith(".keras"):
        saved.save(tmp_path / file)
    else:
        saved.save_weights(tmp_path / file)
    target = _model(keras_adamwr.SGDW(0.05, momentum=0.9, nesterov=True, name="mine"))
    if isinstance(saved.optimizer, keras_adamwr.SGDW):  # same tag, other count
        target = _model(keras_adamwr.SGDW(0.05, momentum=0.0))
    before = _weights(target)
    with pytest.raises(ValueError, match="(format|saved by an optimizer|variables but)"):
        target.load_weights(tmp_path / file)
    for a, b in zip(_weights(target), before):
        np.testing.assert_array_equal(a, b)
    # What the check passes still loads (and skip_mismatch loads the model).
    with pytest.warns(UserWarning, match="could not be loaded"):
        target.load_weights(tmp_path / file, skip_mismatch=True)
    np.testing.assert_array_equal(_weights(target)[0], _weights(saved)[0])


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_only_temporary_files_of_dead_writers_of_this_host_are_removed(tmp_path):
    host = saving._host()
    dead, alive = _dead_pid(), os.getppid()
    names = {
        f".run.keras_adamwr-{host}-{dead}-abc_12.tmp.keras": False,
        f".run.keras_adamwr-{host}-{alive}-abc_12.tmp.keras": True,  # running
        f".run.keras_adamwr-otherhost-{dead}-abc_12.tmp.keras": True,  # elsewhere
        f".run.keras_adamwr-{host}-{dead}-abc_12.tmp.keras.bak": True,  # not a form of ours
        f".other.keras_adamwr-{host}-{dead}-abc_12.tmp.keras": True,  # another target
        ".run-abc123.tmp.keras": True,  # 0.4.0's name: writer unknown
        "notes.txt": True,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / f".run.keras_adamwr-{host}-{dead}-abc_12").mkdir()  # an export's
    keras_adamwr.atomic_save(_model(keras_adamwr.AdamW(1e-3)), tmp_path / "run.keras")
    kept = {name for name, keep in names.items() if keep} | {"run.keras"}
    assert set(os.listdir(tmp_path)) == kept
