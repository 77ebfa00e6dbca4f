"""Setting the learning rate of a schedule-built optimizer: what
`keras.callbacks.ReduceLROnPlateau` does (`LearningRateScheduler`, whose
rates are absolute, is refused).

Keras refuses it (`TypeError: ... learning rate is not settable`), so
`ReduceLROnPlateau` used to crash when the plateau triggered, possibly hours
into training. Here setting `learning_rate = x` scales the schedule by
`x / (its rate now)`; `eta_t`, hence the decay, follows; the scale is saved
and restored with the optimizer state.
"""

import keras
import numpy as np
import pytest

import keras_adamwr
from keras_adamwr import build_optimizer
from tests.test_fit import _data

BATCH = 16  # 8 updates per epoch on 128 samples


def _compiled(optimizer):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(2)])
    model.compile(optimizer=optimizer, jit_compile=False,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _optimizer(**kwargs):
    # Cycles of 12, 24 updates: epochs end inside cycles.
    return keras_adamwr.AdamWR(3e-3, first_cycle_steps=12, **kwargs)


class _RateRecorder(keras.callbacks.Callback):
    """The scale in effect at each update: lr_t / schedule(t), and c_t / c_t(unscaled)."""

    def __init__(self):
        super().__init__()
        self.scales, self.decay_scales = [], []

    def on_train_batch_begin(self, batch, logs=None):
        optimizer = self.model.optimizer
        step = int(optimizer.iterations)
        unscaled = float(optimizer.schedule(step))
        self.scales.append(float(optimizer.learning_rate) / unscaled)
        eta = float(optimizer.schedule.multiplier_tensor(step))
        self.decay_scales.append(
            float(optimizer.decay_coefficient()) / (eta * float(optimizer.weight_decay_at())))


def _plateau():
    # min_delta huge: no epoch after the first counts as an improvement, so
    # with patience=0 the rate halves at the end of epochs 2, 3, ...
    return keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0,
                                             min_delta=1e9, verbose=0)


def _fit(model, epochs, callbacks=()):
    x, y = _data()
    return model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
                     callbacks=list(callbacks))


@pytest.mark.parametrize("jit_compile", [True, False])
def test_reduce_lr_on_plateau_scales_rate_and_decay(jit_compile):
    model = _compiled(_optimizer(jit_compile=jit_compile))
    recorder = _RateRecorder()
    history = _fit(model, 4, [_plateau(), recorder])
    expected = np.repeat([1.0, 1.0, 0.5, 0.25], 8)
    np.testing.assert_allclose(recorder.scales, expected, rtol=1e-6)
    np.testing.assert_allclose(recorder.decay_scales, expected, rtol=1e-6)
    # Logged at the end of epoch 3 (update 24), before that epoch's halving.
    assert history.history["learning_rate"][2] == pytest.approx(
        float(model.optimizer.schedule(24)) * 0.5, rel=1e-6)
    assert float(model.optimizer._learning_rate_scale.numpy()) == pytest.approx(0.125)


def test_the_scale_changes_the_update_as_a_scaled_schedule_would():
    # Scaled by 0.5 before the first update == a schedule with half the
    # peak and base_learning_rate kept (so eta_t is halved as well).
    scaled = _compiled(_optimizer(weight_decay=1e-3))
    build_optimizer(scaled).learning_rate = 1.5e-3
    halved = _compiled(keras_adamwr.AdamW(
        keras_adamwr.CosineWarmRestarts(1.5e-3, 12), weight_decay=5e-4,
        base_learning_rate=1.5e-3))
    _fit(scaled, 2)
    _fit(halved, 2)
    for a, b in zip(scaled.get_weights(), halved.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_learning_rate_scheduler_is_refused_with_a_schedule():
    # Issue 18, item 5: its function returns the rate of an epoch; on a
    # schedule it became a scale (an absolute 2.5e-4 scaled the cosine by
    # 0.5 for good). Refused at the first epoch, before any update.
    model = _compiled(_optimizer())
    absolute = keras.callbacks.LearningRateScheduler(lambda epoch: 2.5e-4)
    with pytest.raises(TypeError) as error:
        _fit(model, 2, [absolute])
    message = str(error.value)
    assert "LearningRateScheduler" in message and "ReduceLROnPlateau" in message
    assert "learning_rate=<float>" in message and "Received: learning_rate=0.00025" in message
    assert int(model.optimizer.iterations) == 0


def test_learning_rate_scheduler_sets_the_rate_of_a_float_learning_rate():
    model = _compiled(keras_adamwr.AdamW(3e-3, weight_decay=1e-4))
    rates = keras.callbacks.LearningRateScheduler(lambda epoch: [3e-3, 2.5e-4][epoch])
    _fit(model, 2, [rates])
    assert float(model.optimizer.learning_rate) == pytest.approx(2.5e-4)


def test_own_callback_setting_the_rate_still_scales_the_schedule():
    class Halve(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch:
                optimizer = self.model.optimizer
                optimizer.learning_rate = float(optimizer.learning_rate) / 2

    model = _compiled(_optimizer())
    recorder = _RateRecorder()
    _fit(model, 3, [Halve(), recorder])
    np.testing.assert_allclose(recorder.scales, np.repeat([1.0, 0.5, 0.25], 8), rtol=1e-6)


@pytest.mark.parametrize("file", ["model.keras", "model.weights.h5"])
def test_scale_is_saved_and_training_resumes_bit_identically(file, tmp_path):
    uninterrupted = _compiled(_optimizer())
    _fit(uninterrupted, 3, [_plateau()])  # scale 0.25 from here on
    path = tmp_path / file
    if file.endswith(".keras"):
        uninterrupted.save(path)
    else:
        uninterrupted.save_weights(path)
    _fit(uninterrupted, 1)
    if file.endswith(".keras"):
        restored = keras.models.load_model(path)
    else:
        restored = _compiled(_optimizer())
        restored.load_weights(path)  # optimizer not built: kept until build
    _fit(restored, 1)
    assert float(restored.optimizer._learning_rate_scale.numpy()) == 0.25
    for a, b in zip(restored.get_weights() + [v.numpy() for v in restored.optimizer.variables],
                    uninterrupted.get_weights()
                    + [v.numpy() for v in uninterrupted.optimizer.variables]):
        np.testing.assert_array_equal(a, b)


def test_scale_survives_tf_train_checkpoint(tmp_path):
    import tensorflow as tf

    model = _compiled(_optimizer())
    _fit(model, 3, [_plateau()])
    path = tf.train.Checkpoint(optimizer=model.optimizer).write(str(tmp_path / "ckpt"))
    restored = _compiled(_optimizer())
    status = tf.train.Checkpoint(optimizer=restored.optimizer).restore(path)
    build_optimizer(restored)
    status.expect_partial()
    assert float(restored.optimizer._learning_rate_scale.numpy()) == 0.25


def test_setting_before_build_and_reading_back():
    optimizer = _optimizer()
    optimizer.learning_rate = 1e-3  # peak 3e-3 at step 0: scale 1/3
    assert float(optimizer.learning_rate) == pytest.approx(1e-3, rel=1e-6)
    optimizer.build([keras.Variable(np.ones(2))])
    assert float(optimizer.learning_rate) == pytest.approx(1e-3, rel=1e-6)
    assert float(optimizer._learning_rate_scale.numpy()) == pytest.approx(1 / 3, rel=1e-6)


def test_float_learning_rate_is_assigned_as_in_keras():
    optimizer = keras_adamwr.AdamW(1e-3)
    optimizer.build([keras.Variable(np.ones(2))])
    optimizer.learning_rate = 5e-4
    assert float(optimizer.learning_rate) == pytest.approx(5e-4)
    assert not any("scale" in v.path for v in optimizer.variables)  # 0.2.0's layout


def test_setting_where_the_schedule_is_zero_raises():
    # The first update of a warm-up has rate 0: no scale gives another rate.
    optimizer = keras_adamwr.AdamWR(1e-3, first_cycle_steps=10, warmup_steps=4)
    optimizer.learning_rate = 0.0  # already 0: fine
    with pytest.raises(ValueError, match="`learning_rate`.*is 0"):
        optimizer.learning_rate = 1e-4


def test_setting_a_schedule_replaces_it_and_resets_the_scale():
    optimizer = _optimizer()
    optimizer.build([keras.Variable(np.ones(2))])
    optimizer.learning_rate = 1e-3
    optimizer.learning_rate = keras_adamwr.CosineWarmRestarts(2e-3, 5)
    assert float(optimizer.learning_rate) == pytest.approx(2e-3)


def test_a_callable_learning_rate_is_not_settable_with_a_clear_error():
    optimizer = keras_adamwr.AdamW(lambda: 1e-3, base_learning_rate=1e-3)
    with pytest.raises(TypeError, match="callable"):
        optimizer.learning_rate = 5e-4
    optimizer.learning_rate = lambda: 2e-3  # replacing it works, as in Keras
    assert float(optimizer.learning_rate) == pytest.approx(2e-3)
