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


# Issue 16: values in plain Python, read once per epoch.

def _tensor_values(optimizer):
    """The values as 0.4.0 computed them: the optimizer's tensors, evaluated."""
    inner = optimizer
    step = int(inner.iterations)
    rate = float(inner.learning_rate)
    if isinstance(inner, keras_adamwr.AdamW) or hasattr(inner, "decay_coefficient"):
        decay = float(inner.decay_coefficient())
    else:
        decay = float(inner.weight_decay) * rate
    schedule = getattr(inner, "schedule", None) or inner._learning_rate
    values = {"learning_rate": rate, "weight_decay_effective": decay}
    if hasattr(schedule, "multiplier"):
        values.update(eta=schedule.multiplier(step), cycle=schedule.cycle_index(step))
    return values


_OPTIMIZERS = {
    "adamwr_normalized_t_mul_near_1": lambda: keras_adamwr.AdamWR(
        1e-2, first_cycle_steps=5, t_mul=1.0006, normalized_weight_decay=0.05),
    "adamwr_warmup_m_mul": lambda: keras_adamwr.AdamWR(
        1e-2, first_cycle_steps=4, t_mul=1.5, m_mul=0.8, min_lr_ratio=0.1,
        warmup_steps=3, weight_decay=0.01),
    "sgdwr_learning_rate_scaling": lambda: keras_adamwr.SGDWR(
        0.1, first_cycle_steps=3, t_mul=2.0, weight_decay=0.01,
        decay_scaling="learning_rate"),
    "adamw_float_rate": lambda: keras_adamwr.AdamW(1e-3, weight_decay=0.02),
    "adamw_keras_schedule": lambda: keras_adamwr.AdamW(
        keras.optimizers.schedules.CosineDecay(1e-2, 40), weight_decay=0.02),
    "keras_adamw_restarts": lambda: keras.optimizers.AdamW(
        keras_adamwr.CosineWarmRestarts(1e-2, first_cycle_steps=4), weight_decay=0.01),
}


@pytest.mark.parametrize("name", sorted(_OPTIMIZERS))
def test_python_values_equal_the_optimizers_tensors(name):
    from keras_adamwr.callbacks.hyperparameters import current_values

    optimizer = _OPTIMIZERS[name]()
    model = _model(optimizer)
    _fit(model, [], epochs=1)
    for step, scale in [(0, 1.0), (1, 1.0), (5, 1.0), (7, 0.5), (11, 0.25), (30, 1.0)]:
        optimizer.iterations.assign(step)
        if hasattr(optimizer, "_learning_rate_scale") and optimizer.schedule is not None:
            optimizer._set_learning_rate_scale(scale)  # as ReduceLROnPlateau does
        values = current_values(optimizer)
        expected = _tensor_values(optimizer)
        assert set(values) == set(expected), step
        for key, value in expected.items():
            assert values[key] == pytest.approx(value, rel=1e-6, abs=1e-9), (step, key)


def test_epoch_values_read_the_counter_once_per_epoch(monkeypatch):
    from keras_adamwr.callbacks import hyperparameters

    calls = []
    original = hyperparameters.current_values
    monkeypatch.setattr(hyperparameters, "current_values",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    optimizer = keras_adamwr.AdamWR(1e-2, first_cycle_steps=4, t_mul=2.0)
    history = _fit(_model(optimizer), [HyperparameterLogger()], epochs=3)
    assert len(calls) == 3  # one per epoch, not one per step (0.4.0: 18)
    expected = [_expected(optimizer, 6 * (epoch + 1)) for epoch in range(3)]
    for key in KEYS:
        assert history.history[key] == pytest.approx(
            [row[key] for row in expected], rel=1e-6), key
    # No batch hook that would make Keras sync every step's logs.
    assert type(HyperparameterLogger()).on_train_batch_end is (
        keras.callbacks.Callback.on_train_batch_end)


def test_epoch_values_follow_a_rate_scaled_like_reduce_lr_on_plateau():
    optimizer = keras_adamwr.AdamWR(1e-2, first_cycle_steps=4, t_mul=2.0,
                                    weight_decay=1e-3)
    model = _model(optimizer)
    # What ReduceLROnPlateau does (it also overwrites logs["learning_rate"]
    # with its own reading, so it is not used here).
    def halve_rate(epoch, logs):
        optimizer.learning_rate = float(optimizer.learning_rate) * 0.5

    halve = keras.callbacks.LambdaCallback(on_epoch_end=halve_rate)
    seen = []
    probe = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(
        (float(optimizer.learning_rate), float(optimizer.decay_coefficient()))))
    history = _fit(model, [HyperparameterLogger(), halve, probe], epochs=3)
    # The values of the next update when the epoch ended, before the halving
    # at that epoch end; the next epoch's show the halved scale.
    scales = [1.0, 0.5, 0.25]
    for epoch, scale in enumerate(scales):
        step = 6 * (epoch + 1)
        eta = optimizer.schedule.multiplier(step)
        assert history.history["learning_rate"][epoch] == pytest.approx(
            1e-2 * scale * eta, rel=1e-6)
        assert history.history["weight_decay_effective"][epoch] == pytest.approx(
            scale * eta * optimizer.weight_decay, rel=1e-6)
    assert seen[-1][0] == pytest.approx(0.125 * 1e-2 * optimizer.schedule.multiplier(18),
                                        rel=1e-6)


def test_dataset_of_unknown_size_gets_epoch_values_every_epoch(tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).filter(
        lambda a, b: True).batch(BATCH)  # cardinality unknown
    optimizer = keras_adamwr.AdamWR(1e-2, first_cycle_steps=4)
    model = _model(optimizer)
    before = keras.callbacks.CSVLogger(str(tmp_path / "before.csv"))
    expected = []
    probe = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: expected.append(
        _expected(optimizer, int(optimizer.iterations))))
    history = model.fit(dataset, epochs=3, verbose=0,
                        callbacks=[before, HyperparameterLogger(), probe])
    for key in KEYS:
        assert history.history[key] == pytest.approx(
            [row[key] for row in expected], rel=1e-6), key
    # A callback placed before it sees them from the second epoch on.
    rows = _read_csv(tmp_path / "before.csv")
    assert [float(row["eta"]) for row in rows[1:]] == history.history["eta"][1:]


def test_schedule_built_for_another_batch_count_warns_once():
    # Issue 18 (6): steps_per_epoch=500 // 128 (3) while fit runs 4 batches.
    x = np.zeros((500, 4), "float32")
    y = np.zeros((500,), "int32")
    optimizer = keras_adamwr.AdamWR(1e-3, first_cycle_epochs=1, steps_per_epoch=500 // 128)
    model = _model(optimizer)
    recorder = keras_adamwr.AnytimeRecorder((x[:8], y[:8]), verbose=0)
    with pytest.warns(UserWarning) as caught:
        model.fit(x, y, batch_size=128, epochs=1, verbose=0,
                  callbacks=[HyperparameterLogger(), recorder])
    messages = [str(w.message) for w in caught if "steps_per_epoch" in str(w.message)]
    assert len(messages) == 1
    assert "steps_per_epoch=3" in messages[0] and "4 weight updates" in messages[0]
    assert "batches_per_epoch" in messages[0] and "0.75, 2.25, 5.25" in messages[0]
    # The right count: no warning.
    optimizer = keras_adamwr.AdamWR(1e-3, first_cycle_epochs=1,
                                    steps_per_epoch=keras_adamwr.batches_per_epoch(500, 128))
    model = _model(optimizer)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.fit(x, y, batch_size=128, epochs=1, verbose=0,
                  callbacks=[HyperparameterLogger()])
