"""HyperparameterLogger: the schedule's values in every log, in any order."""

import csv
import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_adamwr
from keras_adamwr import HyperparameterLogger
from keras_adamwr.callbacks.hyperparameters import KEYS

BATCH = 16  # 96 samples: 6 batches per epoch


def _model(optimizer, jit_compile=False, **compile_kwargs):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer, "sparse_categorical_crossentropy",
                  jit_compile=jit_compile, **compile_kwargs)
    return model


def _fit(model, callbacks, epochs=3, **kwargs):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    return model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False,
                     verbose=0, callbacks=callbacks, **kwargs)


def _expected(optimizer, step):
    """The values of the update at `step`, from the optimizer's own read-outs."""
    schedule = optimizer.schedule
    saved = int(optimizer.iterations)
    optimizer.iterations.assign(step)
    try:
        return {"learning_rate": float(optimizer.learning_rate),
                "eta": schedule.multiplier(step),
                "weight_decay_effective": float(optimizer.decay_coefficient()),
                "cycle": schedule.cycle_index(step)}
    finally:
        optimizer.iterations.assign(saved)


def _read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("jit_compile", [False, True])
def test_epoch_logs_in_history_and_csv_logger_before_and_after(tmp_path, jit_compile):
    optimizer = keras_adamwr.AdamWR(1e-2, first_cycle_steps=4, t_mul=2.0)
    model = _model(optimizer, jit_compile=jit_compile)
    before = keras.callbacks.CSVLogger(str(tmp_path / "before.csv"))
    after = keras.callbacks.CSVLogger(str(tmp_path / "after.csv"))
    history = _fit(model, [before, HyperparameterLogger(), after])  # no validation data

    expected = [_expected(optimizer, 6 * (epoch + 1)) for epoch in range(3)]
    assert [row["cycle"] for row in expected] == [1, 2, 2]  # restarts at 4, 12
    for key in KEYS:
        assert history.history[key] == pytest.approx([row[key] for row in expected],
                                                     rel=1e-6), key
    for name in ("before.csv", "after.csv"):
        rows = _read_csv(tmp_path / name)
        for key in KEYS:
            assert [float(row[key]) for row in rows] == history.history[key], (name, key)


def test_batch_logs_carry_the_next_updates_values():
    optimizer = keras_adamwr.SGDWR(0.1, first_cycle_steps=3, t_mul=1.0)
    model = _model(optimizer, steps_per_execution=2)
    seen = []
    logger = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(
            (int(optimizer.iterations), {key: logs[key] for key in KEYS})))
    _fit(model, [logger, HyperparameterLogger(per_batch=True)], epochs=2)
    assert [step for step, _ in seen] == [2, 4, 6, 8, 10, 12]
    for step, values in seen:
        assert values == pytest.approx(_expected(optimizer, step), rel=1e-6)


def test_tensorboard_train_run_gets_the_values(tmp_path):
    pytest.importorskip("tensorboard")
    import tensorflow as tf

    optimizer = keras_adamwr.AdamWR(1e-2, first_cycle_steps=4)
    model = _model(optimizer, jit_compile=True)
    board = keras.callbacks.TensorBoard(str(tmp_path), update_freq=3)
    history = _fit(model, [board, HyperparameterLogger(per_batch=True)], epochs=2)
    train = tmp_path / "train"
    values = {}
    for name in os.listdir(train):
        for event in tf.compat.v1.train.summary_iterator(str(train / name)):
            for value in event.summary.value:
                if value.tag.startswith(("epoch_", "batch_")):
                    values[value.tag, event.step] = float(tf.make_ndarray(value.tensor))
    for key in ("eta", "weight_decay_effective", "cycle", "learning_rate"):
        assert [values[f"epoch_{key}", epoch] for epoch in (0, 1)] == pytest.approx(
            history.history[key], rel=1e-6), key
    # update_freq=3: batch scalars at steps 3, 6, 9, 12 (the value after it).
    for step in (3, 6, 9, 12):
        assert values["batch_eta", step] == pytest.approx(
            _expected(optimizer, step)["eta"], rel=1e-6)


def test_keras_optimizer_and_values_it_lacks():
    schedule = keras_adamwr.CosineWarmRestarts(1e-2, first_cycle_steps=4)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=0.01)
    history = _fit(_model(optimizer), [HyperparameterLogger()], epochs=1)
    assert history.history["eta"] == [schedule.multiplier(6)]
    assert history.history["cycle"] == [1]
    rate = float(schedule(6))
    assert history.history["learning_rate"] == pytest.approx([rate])
    assert history.history["weight_decay_effective"] == pytest.approx([0.01 * rate])
    # A float rate has no eta or cycle: those keys are left out.
    history = _fit(_model(keras.optimizers.Adam(1e-3)), [HyperparameterLogger()], epochs=1)
    assert set(history.history) == {"loss", "learning_rate"}


def test_wrapper_removed_after_fit_and_not_doubled():
    model = _model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4))
    logger = HyperparameterLogger()
    _fit(model, [logger, HyperparameterLogger()], epochs=1)
    assert "eta" not in _fit(model, [], epochs=1).history
    assert "eta" in _fit(model, [logger], epochs=1).history


def test_keras_fit_calls_the_train_function_attribute():
    # The hook HyperparameterLogger relies on (Keras 3.15): `fit` makes
    # `model.train_function` before `on_train_begin` and calls the attribute.
    model = _model(keras.optimizers.SGD(0.1))
    made = []

    class Probe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            made.append(self.model.train_function)
            function = self.model.train_function
            self.model.train_function = lambda *a: {**function(*a), "probe": 7.0}

    history = _fit(model, [Probe()], epochs=1)
    assert made[0] is not None
    assert history.history["probe"] == [7.0]


_JAX_SCRIPT = """
import json
import keras, numpy as np, keras_adamwr
x = np.random.default_rng(0).normal(size=(96, 4)).astype("float32")
y = (x[:, 0] > 0).astype("int32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
optimizer = keras_adamwr.AdamWR(1e-2, first_cycle_steps=4)
model.compile(optimizer, "sparse_categorical_crossentropy")
seen = []
spy = keras.callbacks.LambdaCallback(
    on_train_batch_end=lambda batch, logs: seen.append(logs["eta"]))
history = model.fit(x, y, batch_size=16, epochs=2, verbose=0,
                    callbacks=[spy, keras_adamwr.HyperparameterLogger(per_batch=True)])
print(json.dumps({"backend": keras.backend.backend(), "batches": seen,
                  "epochs": history.history["eta"],
                  "expected": [optimizer.schedule.multiplier(s) for s in range(1, 13)]}))
"""


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX not installed")
def test_jax_values_read_from_the_step_state():
    # On JAX, Keras syncs the optimizer's variables only at epoch ends: the
    # values come from the state the step returns.
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", _JAX_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    assert result["batches"] == pytest.approx(result["expected"], abs=1e-6)
    assert result["epochs"] == pytest.approx([result["expected"][5], result["expected"][11]],
                                             abs=1e-6)
