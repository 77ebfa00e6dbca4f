"""Persistence: every way of saving resumes training bit-identically.

Each optimizer below is saved in the middle of a restart cycle (after 7
updates), restored into fresh Python objects, and trained 8 more updates
across the next restart; every model and optimizer variable must then equal
those of the run that was never interrupted. Mechanisms: `save_weights` /
`load_weights`, `ModelCheckpoint` (`.keras` and `.weights.h5`),
`tf.train.Checkpoint`, a SavedModel carrying the optimizer state and a
serving signature, and `BackupAndRestore` after a SIGKILL in a subprocess.
Files written by another configuration must fail loudly.

The helpers under test, `build_optimizer`, `export_training_state` and
`restore_training_state`, live in `keras_adamwr.saving`; see docs/saving.md.
"""

import json
import os
import signal
import subprocess
import sys
import zipfile
from types import SimpleNamespace

import keras
import numpy as np
import pytest
try:
    import tensorflow as tf
except ImportError:  # other backends: the tests that use it are skipped (conftest.py)
    tf = None

import keras_adamwr
from keras_adamwr import build_optimizer
from keras_adamwr import export_training_state
from keras_adamwr import restore_training_state
from tests import _fault_worker as worker
from tests.test_fit import _data

BATCH = 16
SAVED_AT = 7  # first half: 112 samples, one epoch; second half: 128 samples
FINAL = SAVED_AT + 8
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

OPTIMIZERS = {
    # cycles end after 4, 12, 28 updates: saved inside cycle 1, resumed across 12.
    "adamwr_amsgrad_exclusions": lambda: keras_adamwr.AdamWR(
        3e-3, first_cycle_steps=4, amsgrad=True, exclude_from_weight_decay=["bias$"]),
    # cycles end after 3, 8, 15: saved inside cycle 1, resumed across 8 and 15.
    "sgdwr": lambda: keras_adamwr.SGDWR(
        0.05, first_cycle_steps=3, t_mul=1.5, m_mul=0.8, min_lr_ratio=0.1),
    # lambda = 0.05 / sqrt(15); the float learning rate is a saved variable too.
    "adamw_normalized": lambda: keras_adamwr.AdamW(
        3e-3, normalized_weight_decay=0.05, total_steps=FINAL),
}
NAMES = sorted(OPTIMIZERS)


# Helpers to promote into keras_adamwr/saving.py.

# Training runs.

def _model(seed):
    """A fresh model; `seed` changes the initial weights, so a restore shows."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="tanh"),
        keras.layers.Dense(2),
    ])


def _compiled(optimizer, seed=5):
    model = _model(seed)
    model.compile(optimizer=optimizer, jit_compile=False,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _first_half(model, callbacks=()):
    x, y = _data()
    model.fit(x[:112], y[:112], batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=list(callbacks))


def _second_half(model):
    x, y = _data()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)


def _state(model):
    return [variable.numpy() for variable in model.variables + model.optimizer.variables]


def _assert_state(model, expected):
    actual = _state(model)
    assert len(actual) == len(expected)
    for index, (a, b) in enumerate(zip(actual, expected)):
        np.testing.assert_array_equal(a, b, err_msg=f"variable {index}")


def _decay_mask(model):
    return [model.optimizer.uses_weight_decay(v) for v in model.trainable_variables]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """`saved(name)`: one run per optimizer, saved after 7 updates by every
    mechanism, then continued uninterrupted to 15 updates."""
    runs = {}

    def run(name):
        if name not in runs:
            runs[name] = _save_everything(name, tmp_path_factory.mktemp(name))
        return runs[name]

    return run


def _save_everything(name, folder):
    model = _compiled(OPTIMIZERS[name](), seed=3)
    _first_half(model, callbacks=[
        keras.callbacks.ModelCheckpoint(str(folder / "checkpoint.keras")),
        keras.callbacks.ModelCheckpoint(str(folder / "checkpoint.weights.h5"),
                                        save_weights_only=True),
    ])
    optimizer = model.optimizer
    assert int(optimizer.iterations) == SAVED_AT
    if optimizer.schedule is not None:  # the save point is strictly inside a cycle
        schedule = optimizer.schedule
        assert schedule.cycle_index(SAVED_AT - 1) == schedule.cycle_index(SAVED_AT)
        assert schedule.cycle_index(FINAL) > schedule.cycle_index(SAVED_AT)
    model.save_weights(folder / "model.weights.h5")
    if keras.backend.backend() == "tensorflow":  # tf.train.Checkpoint, SavedModel
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
        tf.train.CheckpointManager(checkpoint, str(folder / "tf_checkpoints"),
                                   max_to_keep=1).save()
        export_training_state(model, folder / "saved_model")
    run = SimpleNamespace(
        folder=folder, state=_state(model), config=optimizer.get_config(),
        mask=_decay_mask(model), predictions=model.predict(_data()[0], verbose=0))
    _second_half(model)
    assert int(optimizer.iterations) == FINAL
    run.final = _state(model)
    return run


def _unnamed(config):
    return {key: value for key, value in config.items() if key != "name"}


def _assert_resumes(model, run):
    """Restored state == saved state; 8 more updates == the uninterrupted run."""
    # Names are unique per instance (as in Keras), the rest must match.
    assert _unnamed(model.optimizer.get_config()) == _unnamed(run.config)
    assert _decay_mask(model) == run.mask
    _assert_state(model, run.state)
    _second_half(model)
    _assert_state(model, run.final)


# 1. save_weights / load_weights.

@pytest.mark.parametrize("name", NAMES)
def test_load_weights_into_a_fresh_model_resumes_exactly(name, saved):
    run = saved(name)
    model = _compiled(OPTIMIZERS[name]())
    build_optimizer(model)  # without it the optimizer state is skipped, see below
    model.load_weights(run.folder / "model.weights.h5")
    _assert_resumes(model, run)


def test_load_weights_before_the_optimizer_is_built_keeps_its_state(saved):
    name = "adamwr_amsgrad_exclusions"
    run = saved(name)
    model = _compiled(OPTIMIZERS[name]())
    model.load_weights(run.folder / "model.weights.h5")
    _second_half(model)  # builds the optimizer
    _assert_state(model, run.final)


# 2. ModelCheckpoint, whole model and weights only.

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("file", ["checkpoint.keras", "checkpoint.weights.h5"])
def test_model_checkpoint_resumes_exactly(name, file, saved):
    run = saved(name)
    if file.endswith(".keras"):
        model = keras.models.load_model(run.folder / file)
        assert type(model.optimizer) is type(OPTIMIZERS[name]())
    else:
        model = _compiled(OPTIMIZERS[name]())
        build_optimizer(model)
        model.load_weights(run.folder / file)
    _assert_resumes(model, run)


# 3. tf.train.Checkpoint and CheckpointManager.

@pytest.mark.parametrize("name", NAMES)
def test_tf_train_checkpoint_resumes_exactly(name, saved):
    run = saved(name)
    model = _compiled(OPTIMIZERS[name]())
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    manager = tf.train.CheckpointManager(checkpoint, str(run.folder / "tf_checkpoints"),
                                         max_to_keep=1)
    # Restored before the optimizer is built: TF fills the slot variables
    # when they are created (here by build_optimizer, else by fit).
    status = checkpoint.restore(manager.latest_checkpoint)
    build_optimizer(model)
    status.assert_consumed()
    _assert_resumes(model, run)


# 4. SavedModel with the optimizer state and a serving signature.

@pytest.mark.parametrize("name", NAMES)
def test_saved_model_serves_and_resumes_exactly(name, saved):
    run = saved(name)
    model = _compiled(OPTIMIZERS[name]())
    loaded = restore_training_state(run.folder / "saved_model", model)
    x = _data()[0]
    served = loaded.signatures["serving_default"](inputs=tf.constant(x))["output_0"]
    np.testing.assert_allclose(served.numpy(), run.predictions, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.predict(x, verbose=0), run.predictions,
                               rtol=1e-6, atol=1e-7)
    _assert_resumes(model, run)


# 5. A training process killed mid-epoch, resumed by BackupAndRestore.

def _run_worker(run_dir, *arguments):
    return subprocess.run(
        [sys.executable, "-m", "tests._fault_worker", str(run_dir), *map(str, arguments)],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=240,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend(), "TF_CPP_MIN_LOG_LEVEL": "3"})


def _rows(run_dir):
    with open(os.path.join(run_dir, "anytime", "anytime.json")) as file:
        return json.load(file)


def _without_wall_time(rows):
    return [{k: v for k, v in row.items() if k != "wall_time"} for row in rows]


def test_sigkill_mid_epoch_then_backup_and_restore_equals_an_uninterrupted_run(tmp_path):
    # 8 updates per epoch; cycles end after 6, 18, 42. Killed after update
    # 21 (epoch 2, batch 4, inside cycle 2): the backup holds update 16,
    # and the row for the end at 18 was written after it.
    reference = worker.train(str(tmp_path / "reference"))
    steps = worker.EPOCHS * worker.SAMPLES // worker.BATCH_SIZE
    assert int(reference.optimizer.iterations) == steps == 48
    expected_rows = _rows(tmp_path / "reference")
    assert [row["step"] for row in expected_rows] == [6, 18, 42]

    run_dir = tmp_path / "run"
    killed = _run_worker(run_dir, 21)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    with open(run_dir / "backup" / "training_metadata.json") as file:
        assert json.load(file)["epoch"] == 2
    rows_at_crash = _rows(run_dir)
    assert [row["step"] for row in rows_at_crash] == [6, 18]
    assert not (run_dir / "final.npz").exists()

    resumed = _run_worker(run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    with np.load(run_dir / "final.npz") as final:
        state = [final[f"arr_{i}"] for i in range(len(final.files))]
    _assert_state(reference, state)
    assert not (run_dir / "backup").exists()  # deleted at the end of a complete fit

    rows = _rows(run_dir)
    assert [row["step"] for row in rows] == [6, 18, 42]  # 18 replaced, not duplicated
    assert _without_wall_time(rows) == _without_wall_time(expected_rows)
    assert _without_wall_time(rows[:2]) == _without_wall_time(rows_at_crash)


class _Crash(Exception):
    pass


class _CrashAtStep(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == self.step:
            raise _Crash()


def test_integer_save_freq_replays_the_start_of_the_epoch(tmp_path):
    """Pins Keras 3.15: with an integer `save_freq` BackupAndRestore saves
    mid-epoch state but resumes at the start of that epoch, so the batches
    before the backup are applied twice. Use save_freq="epoch" to resume
    exactly (docs/saving.md)."""
    x, y = worker.data()
    backup = str(tmp_path / "backup")
    reference = worker.build_model()
    reference.fit(x, y, batch_size=worker.BATCH_SIZE, epochs=2, shuffle=False, verbose=0)

    model = worker.build_model()
    with pytest.raises(_Crash):
        model.fit(x, y, batch_size=worker.BATCH_SIZE, epochs=2, shuffle=False, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(backup, save_freq=3),
                             _CrashAtStep(13)])
    with open(os.path.join(backup, "training_metadata.json")) as file:
        metadata = json.load(file)
    # Backups after updates 3, 6, 9 and 12: the last one in epoch 1 at batch 3.
    assert metadata == {"epoch": 1, "batch": 3}
    resumed = worker.build_model()
    resumed.fit(x, y, batch_size=worker.BATCH_SIZE, epochs=2, shuffle=False, verbose=0,
                callbacks=[keras.callbacks.BackupAndRestore(backup, save_freq=3)])
    assert int(reference.optimizer.iterations) == 16
    assert int(resumed.optimizer.iterations) == 16 + metadata["batch"] + 1
    assert not np.array_equal(resumed.get_weights()[0], reference.get_weights()[0])


# 6. Files of another configuration fail loudly.

CONFIGURATIONS = {
    "amsgrad_into_plain": (
        lambda: keras_adamwr.AdamWR(1e-3, first_cycle_steps=4, amsgrad=True),
        lambda: keras_adamwr.AdamWR(1e-3, first_cycle_steps=4)),
    "plain_into_amsgrad": (
        lambda: keras_adamwr.AdamWR(1e-3, first_cycle_steps=4),
        lambda: keras_adamwr.AdamWR(1e-3, first_cycle_steps=4, amsgrad=True)),
    "momentum_into_none": (
        lambda: keras_adamwr.SGDW(0.05, momentum=0.9),
        lambda: keras_adamwr.SGDW(0.05, momentum=0.0)),
    "none_into_momentum": (
        lambda: keras_adamwr.SGDW(0.05, momentum=0.0),
        lambda: keras_adamwr.SGDW(0.05, momentum=0.9)),
}


def _pair(case, build_target=True):
    """A built source model at update 5 and a target of the other kind."""
    source_optimizer, target_optimizer = CONFIGURATIONS[case]
    source = _compiled(source_optimizer(), seed=3)
    build_optimizer(source).iterations.assign(5)
    target = _compiled(target_optimizer())
    if build_target:
        build_optimizer(target)
    return source, target


@pytest.mark.parametrize("case", sorted(CONFIGURATIONS))
@pytest.mark.parametrize("built", [True, False], ids=["built", "unbuilt"])
def test_weights_file_of_another_configuration_raises(case, built, tmp_path):
    source, target = _pair(case, build_target=built)
    path = tmp_path / "source.weights.h5"
    source.save_weights(path)
    x, y = _data(BATCH)
    with pytest.raises(ValueError, match="variables but the saved state has"):
        target.load_weights(path)
        # Loaded before the optimizer is built, the state is checked when
        # `fit` builds it (while tracing the train step, on TensorFlow).
        target.fit(x, y, batch_size=BATCH, verbose=0)


@pytest.mark.parametrize("case", sorted(CONFIGURATIONS))
def test_tf_checkpoint_of_another_configuration_fails_assert_consumed(case, tmp_path):
    source, target = _pair(case)
    path = tf.train.Checkpoint(model=source, optimizer=source.optimizer).save(
        str(tmp_path / "ckpt"))
    status = tf.train.Checkpoint(model=target, optimizer=target.optimizer).restore(path)
    with pytest.raises(AssertionError):
        status.assert_consumed()
    status.expect_partial()  # no "could not be found" warnings at exit


@pytest.mark.parametrize("case", sorted(CONFIGURATIONS))
def test_saved_model_of_another_configuration_raises(case, tmp_path):
    source, target = _pair(case)
    export_training_state(source, tmp_path / "saved_model")
    before = _state(target)
    with pytest.raises(ValueError, match="optimizer variables"):
        restore_training_state(tmp_path / "saved_model", target)
    _assert_state(target, before)  # nothing assigned


@pytest.mark.parametrize("optimizer,registered_name", [
    (lambda: keras_adamwr.AdamWR(1e-3, first_cycle_steps=4), "keras_adamwr>AdamWR"),
    (lambda: keras_adamwr.AdamW(keras_adamwr.CosineWarmRestarts(1e-3, 4)),
     "keras_adamwr>CosineWarmRestarts"),
])
def test_keras_file_with_an_unregistered_class_raises(optimizer, registered_name,
                                                      tmp_path, monkeypatch):
    # As in a process that never imported keras_adamwr.
    path = tmp_path / "model.keras"
    _compiled(optimizer()).save(path)
    monkeypatch.delitem(keras.saving.get_custom_objects(), registered_name)
    class_name = registered_name.split(">")[1]
    with pytest.raises(TypeError, match=f"Could not locate class '{class_name}'"):
        keras.models.load_model(path)


# 7. State written by keras_adamwr 0.2.0 (tests/data/v0_2_0/make.py) loads;
#    state of another optimizer class is refused.

V020 = os.path.join(REPOSITORY, "tests", "data", "v0_2_0")
V020_OPTIMIZERS = {
    "adamwr": lambda **kw: keras_adamwr.AdamWR(
        3e-3, first_cycle_steps=4, amsgrad=True, exclude_from_weight_decay=["bias$"], **kw),
    "sgdw": lambda **kw: keras_adamwr.SGDW(0.05, momentum=0.9, weight_decay=1e-3, **kw),
}


def _v020_arrays(name, prefix):
    with np.load(os.path.join(V020, f"{name}.npz")) as arrays:
        return [arrays[f"{prefix}_{i}"] for i in range(len(arrays.files) // 2)]


def _assert_v020_resumes(model, name):
    """Loaded == 0.2.0's saved state (plus scale 1); 8 more updates == 0.2.0's."""
    optimizer = model.optimizer
    scale = [] if optimizer.schedule is None else [np.float32(1)]
    _assert_state(model, _v020_arrays(name, "saved") + scale)
    _second_half(model)
    final = _v020_arrays(name, "final") + scale
    actual = _state(model)
    assert len(actual) == len(final)
    for a, b in zip(actual, final):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(V020_OPTIMIZERS))
def test_v020_keras_file_loads_and_resumes(name):
    model = keras.models.load_model(os.path.join(V020, f"{name}.keras"))
    assert model.optimizer.name == {"adamwr": "adamwr", "sgdw": "sgdw"}[name]
    _assert_v020_resumes(model, name)


@pytest.mark.parametrize("name", sorted(V020_OPTIMIZERS))
@pytest.mark.parametrize("built", [True, False], ids=["built", "unbuilt"])
def test_v020_weights_file_loads_and_resumes(name, built):
    model = _compiled(V020_OPTIMIZERS[name](), seed=3)
    if built:
        build_optimizer(model)
    model.load_weights(os.path.join(V020, f"{name}.weights.h5"))
    if not built:
        build_optimizer(model)  # assigns the state kept since load_weights
    _assert_v020_resumes(model, name)


@pytest.mark.parametrize("name", sorted(V020_OPTIMIZERS))
def test_v020_tf_checkpoint_restores(name):
    model = _compiled(V020_OPTIMIZERS[name](), seed=3)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    path = os.path.join(V020, f"{name}_checkpoint", "ckpt")
    # Untagged: it could as well be Keras' SGD (tests/test_checkpoint_tag.py).
    with pytest.raises(ValueError, match="untagged_checkpoint_state"):
        checkpoint.restore(path)
    with keras_adamwr.untagged_checkpoint_state():
        status = checkpoint.restore(path)
    build_optimizer(model)
    status.expect_partial()  # written without a save counter; the state is checked below
    _assert_v020_resumes(model, name)


def test_v020_state_under_a_custom_name_needs_that_name():
    # 0.2.0 wrote no tag: under a name that is not a 0.2.0 default, the
    # state could as well be Keras' (see the next test); the saved name
    # decides, and the error says so.
    path = os.path.join(V020, "sgdw_named.weights.h5")
    model = _compiled(V020_OPTIMIZERS["sgdw"]())
    build_optimizer(model)
    with pytest.raises(ValueError, match="name='my_sgd'"):
        model.load_weights(path)
    model = _compiled(V020_OPTIMIZERS["sgdw"](name="my_sgd"), seed=3)
    build_optimizer(model)
    model.load_weights(path)
    _assert_v020_resumes(model, "sgdw_named")
    # Its .keras file carries the name in the config: it just loads.
    keras.models.load_model(os.path.join(V020, "sgdw_named.keras"))


# 8. Files of keras_adamwr 0.4.0, the last release before the move to
#    subpackages (tests/data/v0_4_0/make.py): their configs name the old
#    modules (`keras_adamwr.adamw`), the registered names find the classes.

V040 = os.path.join(REPOSITORY, "tests", "data", "v0_4_0")


def _assert_resumes_as_saved(model, folder, name):
    with np.load(os.path.join(folder, f"{name}.npz")) as arrays:
        count = len(arrays.files) // 2
        saved = [arrays[f"saved_{i}"] for i in range(count)]
        final = [arrays[f"final_{i}"] for i in range(count)]
    _assert_state(model, saved)
    _second_half(model)
    actual = _state(model)
    assert len(actual) == len(final)
    for a, b in zip(actual, final):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(V020_OPTIMIZERS))
def test_v040_keras_file_of_the_flat_layout_loads_and_resumes(name):
    path = os.path.join(V040, f"{name}.keras")
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    module = config["compile_config"]["optimizer"]["module"]
    assert module in ("keras_adamwr.adamw", "keras_adamwr.sgdw")  # gone since
    model = keras.models.load_model(path)
    assert type(model.optimizer).__name__ == {"adamwr": "AdamWR", "sgdw": "SGDW"}[name]
    _assert_resumes_as_saved(model, V040, name)


@pytest.mark.parametrize("name", sorted(V020_OPTIMIZERS))
def test_v040_weights_file_loads_and_resumes(name):
    model = _compiled(V020_OPTIMIZERS[name](), seed=3)
    build_optimizer(model)
    model.load_weights(os.path.join(V040, f"{name}.weights.h5"))
    _assert_resumes_as_saved(model, V040, name)


@pytest.mark.parametrize("built", [True, False], ids=["built", "unbuilt"])
def test_keras_sgd_state_is_refused_by_sgdw(built, tmp_path):
    # Same variable count and shapes, opposite sign of the momentum.
    source = _compiled(keras.optimizers.SGD(0.05, momentum=0.9), seed=3)
    _first_half(source)
    path = tmp_path / "keras_sgd.weights.h5"
    source.save_weights(path)
    target = _compiled(keras_adamwr.SGDW(0.05, momentum=0.9))
    if built:
        build_optimizer(target)
    assert len(source.optimizer.variables) == len(build_optimizer(target).variables)
    with pytest.raises(ValueError, match="-lr \\* g"):
        target.load_weights(path)


@pytest.mark.parametrize("source,target", [
    (lambda: keras_adamwr.SGDW(0.05, momentum=0.9), lambda: keras_adamwr.AdamW(1e-3)),
    (lambda: keras_adamwr.AdamW(1e-3), lambda: keras_adamwr.SGDW(0.05, momentum=0.9)),
])
def test_state_of_another_keras_adamwr_class_is_refused(source, target, tmp_path):
    # AdamW's float-rate state has the layout of SGDW(momentum=0.9) with
    # twice the variables; a tag names the class whatever the counts.
    model = _compiled(source())
    build_optimizer(model)
    path = tmp_path / "state.weights.h5"
    model.save_weights(path)
    other = _compiled(target())
    build_optimizer(other)
    with pytest.raises(ValueError, match="format 'keras_adamwr"):
        other.load_weights(path)


def test_saved_state_carries_the_format_tag(tmp_path):
    import h5py

    model = _compiled(keras_adamwr.SGDWR(0.05, first_cycle_steps=3))
    build_optimizer(model)
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5") as file:
        group = file["optimizer"]["vars"]
        tag = bytes(np.asarray(group["keras_adamwr_format"])).decode()
        assert tag == "keras_adamwr.SGDW/1"
        # Keras' keys stay "0" ... "n-1", one per variable, in order.
        assert sorted(k for k in group if k.isdigit()) == sorted(
            str(i) for i in range(len(model.optimizer.variables)))
    # Keras' own SGD skips such a file (it counts one key more), with a warning.
    keras_model = _compiled(keras.optimizers.SGD(0.05, momentum=0.9))
    build_optimizer(keras_model)
    with pytest.warns(UserWarning, match="Skipping variable loading"):
        keras_model.load_weights(tmp_path / "w.weights.h5")


# Issue 18, item 4: slots follow the order of the variables, not the
# variables. Layers created in another order when restoring gave a.kernel
# the moments of b.kernel (Keras' own optimizers do the same).

class TwoLayers(keras.Model):
    def __init__(self, a_first, **kwargs):
        super().__init__(**kwargs)
        if a_first:
            self.a, self.b = keras.layers.Dense(3, name="a"), keras.layers.Dense(3, name="b")
        else:
            self.b, self.a = keras.layers.Dense(3, name="b"), keras.layers.Dense(3, name="a")

    def call(self, x):
        return self.b(self.a(x))


def _two_layers(a_first, optimizer):
    keras.utils.set_random_seed(5)
    model = TwoLayers(a_first, name="two")
    model.compile(optimizer=optimizer, loss="mse", jit_compile=False)
    model(np.zeros((1, 3), "float32"))
    return model


@pytest.mark.parametrize("make", [
    lambda: keras_adamwr.AdamW(1e-2, weight_decay=1e-4),
    lambda: keras_adamwr.SGDW(0.05, momentum=0.9, weight_decay=1e-4),
], ids=["adamw", "sgdw"])
@pytest.mark.parametrize("built", [True, False], ids=["built", "unbuilt"])
def test_state_saved_for_variables_in_another_order_is_refused(make, built, tmp_path):
    rng = np.random.default_rng(0)
    source = _two_layers(True, make())
    source.fit(rng.normal(size=(16, 3)), rng.normal(size=(16, 3)), verbose=0, batch_size=8)
    path = tmp_path / "two.weights.h5"
    source.save_weights(path)
    same = _two_layers(True, make())
    if built:
        build_optimizer(same)
    same.load_weights(path)  # same order: loads
    for a, b in zip(same.optimizer.variables[2:], source.optimizer.variables[2:]):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    swapped = _two_layers(False, make())
    if built:
        build_optimizer(swapped)
        before = [keras.ops.convert_to_numpy(v) for v in swapped.optimizer.variables]
    with pytest.raises(ValueError, match="another order") as error:
        swapped.load_weights(path)
        if not built:
            build_optimizer(swapped)  # the state waits for `build`
    message = str(error.value)
    assert "/b/kernel:momentum'" in message and "/a/kernel:momentum'" in message, message
    if built:
        for a, b in zip(swapped.optimizer.variables, before):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), b)
