"""Config round-trips and `.keras` save/load with training resuming exactly."""

import keras
import numpy as np
import pytest

import keras_adamwr
from tests.test_fit import OPTIMIZERS
from tests.test_fit import _data


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_config_round_trip(name):
    optimizer = OPTIMIZERS[name]()
    serialized = keras.optimizers.serialize(optimizer)
    assert serialized["registered_name"].startswith("keras_adamwr>")
    restored = keras.optimizers.deserialize(serialized)
    assert type(restored) is type(optimizer)
    assert restored.get_config() == optimizer.get_config()


def test_jit_compile_round_trips_and_configs_without_it_load():
    optimizer = keras_adamwr.SGDWR(0.1, first_cycle_steps=5, jit_compile=False)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert restored.jit_compile is False
    config = keras_adamwr.AdamWR(first_cycle_steps=5).get_config()
    del config["jit_compile"]  # as keras_adamwr 0.1.0 wrote it
    assert keras_adamwr.AdamWR.from_config(config).jit_compile is True


def _model():
    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="tanh"),
        keras.layers.Dense(2),
    ])


def _train(model, epochs):
    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, shuffle=False)


def _compiled(name):
    model = _model()
    model.compile(optimizer=OPTIMIZERS[name](),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _first_half(model):
    x, y = _data()
    model.fit(x[:88], y[:88], batch_size=16, epochs=1, verbose=0, shuffle=False)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)


def _second_half(model):
    x, y = _data()
    model.fit(x[:80], y[:80], batch_size=16, epochs=2, verbose=0, shuffle=False)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_save_load_resumes_bit_identically_mid_cycle(name, tmp_path):
    # 14 updates before saving: inside a cycle for every restart schedule.
    uninterrupted = _compiled(name)
    _first_half(uninterrupted)
    _second_half(uninterrupted)

    interrupted = _compiled(name)
    _first_half(interrupted)
    assert int(interrupted.optimizer.iterations) == 14
    interrupted.save(tmp_path / "model.keras")
    del interrupted
    restored = keras.models.load_model(tmp_path / "model.keras")
    assert type(restored.optimizer) is type(uninterrupted.optimizer)
    assert int(restored.optimizer.iterations) == 14
    _second_half(restored)

    # Default names are unique per instance (as in Keras); the rest is equal.
    assert restored.optimizer.name != uninterrupted.optimizer.name
    assert ({**restored.optimizer.get_config(), "name": None}
            == {**uninterrupted.optimizer.get_config(), "name": None})
    for a, b in zip(restored.get_weights(), uninterrupted.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(restored.optimizer.variables) == len(uninterrupted.optimizer.variables)
    for a, b in zip(restored.optimizer.variables, uninterrupted.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_exclusions_and_schedule_survive_load_model(tmp_path):
    model = _model()
    model.compile(optimizer=keras_adamwr.AdamWR(
        1e-3, first_cycle_steps=5, t_mul=1.5, warmup_steps=2, amsgrad=True,
        exclude_from_weight_decay=["bias$"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    _train(model, 1)
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    optimizer = restored.optimizer
    assert optimizer.exclude_from_weight_decay_patterns == ("bias$",)
    assert [optimizer.uses_weight_decay(v) for v in restored.trainable_variables] == [
        True, False, True, False]
    assert optimizer.schedule.get_config() == model.optimizer.schedule.get_config()
    # iterations, then momentum, velocity, velocity_hat for 4 variables, then
    # the schedule's scale (settable learning rate, added in 0.3.0).
    assert len(optimizer.variables) == len(model.optimizer.variables) == 1 + 3 * 4 + 1
    assert optimizer.variables[-1].path.endswith("learning_rate_scale")


def test_epoch_arguments_survive_load_model(tmp_path):
    model = _model()
    model.compile(optimizer=keras_adamwr.SGDWR(
        0.05, first_cycle_epochs=1, steps_per_epoch=4, warmup_epochs=0.5, t_mul=1.5,
        cycle_limit=3, warmup_start_ratio=0.1, min_lr_ratio=0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    _train(model, 1)
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras").optimizer
    config = restored.get_config()
    assert config == model.optimizer.get_config()
    assert (config["first_cycle_epochs"], config["steps_per_epoch"], config["warmup_epochs"],
            config["cycle_limit"], config["warmup_start_ratio"], config["min_lr_ratio"]) == (
        1.0, 4.0, 0.5, 3, 0.1, 0.05)
    assert config["first_cycle_steps"] is None and config["warmup_steps"] is None
    assert restored.schedule.restart_steps(4) == [6, 12, 21, 21]  # 2 + 4, 6, 9
    steps = np.arange(40)
    np.testing.assert_array_equal(restored.schedule(steps), model.optimizer.schedule(steps))


@pytest.mark.parametrize("name", ["AdamWR", "SGDWR"])
def test_0_2_0_configs_with_alpha_load(name):
    # As keras_adamwr 0.2.0 saved them: the floor was called `alpha`.
    config = getattr(keras_adamwr, name)(first_cycle_steps=5, min_lr_ratio=0.2).get_config()
    for key in ("min_lr_ratio", "steps_per_epoch", "first_cycle_epochs", "warmup_epochs",
                "cycle_limit", "warmup_start_ratio"):
        del config[key]
    config["alpha"], config["warmup_steps"] = 0.2, 0
    serialized = {"module": "keras_adamwr.optimizers.adamw", "class_name": name, "config": config,
                  "registered_name": f"keras_adamwr>{name}"}
    restored = keras.optimizers.deserialize(serialized)
    assert restored.schedule.min_lr_ratio == 0.2
    assert restored.schedule.multiplier(5 - 1) > 0.2 and restored.schedule.cycle_limit is None
    schedule = {"initial_learning_rate": 1.0, "first_cycle_steps": 10, "t_mul": 2.0,
                "m_mul": 1.0, "alpha": 0.3, "warmup_steps": 0, "name": "CosineWarmRestarts"}
    assert keras_adamwr.CosineWarmRestarts.from_config(schedule).min_lr_ratio == 0.3
