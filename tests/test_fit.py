"""Every optimizer through `model.fit`: XLA, Keras keywords, invariants."""

import keras
import numpy as np
import pytest

import keras_adamwr


def _optimizers():
    """One table drives the invariant tests (optax alias_test style)."""
    schedule = keras_adamwr.CosineWarmRestarts(3e-3, 5, t_mul=2.0, warmup_steps=2)
    return {
        "adamw": lambda **kw: keras_adamwr.AdamW(3e-3, weight_decay=1e-2, **kw),
        "adamw_amsgrad": lambda **kw: keras_adamwr.AdamW(
            schedule, normalized_weight_decay=0.05, amsgrad=True, **kw),
        "adamw_keras_scaling": lambda **kw: keras_adamwr.AdamW(
            3e-3, weight_decay=0.5, decay_scaling="learning_rate", **kw),
        "sgdw": lambda **kw: keras_adamwr.SGDW(
            0.05, normalized_weight_decay=0.05, total_steps=40, **kw),
        "sgdw_nesterov": lambda **kw: keras_adamwr.SGDW(0.05, nesterov=True, **kw),
        "adamwr": lambda **kw: keras_adamwr.AdamWR(
            3e-3, first_cycle_steps=4, exclude_from_weight_decay=["bias"], **kw),
        "sgdwr": lambda **kw: keras_adamwr.SGDWR(
            0.05, first_cycle_steps=3, t_mul=1.5, m_mul=0.8, min_lr_ratio=0.1, **kw),
    }


OPTIMIZERS = _optimizers()


def _data(n=128):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, :3].sum(axis=1) > 0).astype("int32")
    return x, y


def _fit(optimizer, jit_compile=False, epochs=3, **fit_kwargs):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="tanh"),
        keras.layers.BatchNormalization(),
        keras.layers.Dense(2),
    ])
    model.compile(optimizer=optimizer, jit_compile=jit_compile,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, shuffle=False, **fit_kwargs)
    return model


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_xla_and_graph_give_the_same_weights(name):
    graph = _fit(OPTIMIZERS[name](), jit_compile=False)
    xla = _fit(OPTIMIZERS[name](), jit_compile=True)
    for a, b in zip(graph.get_weights(), xla.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(graph.optimizer.iterations) == int(xla.optimizer.iterations) == 24


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("keywords", [
    dict(clipnorm=0.5), dict(clipvalue=0.01), dict(global_clipnorm=0.5),
    dict(use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=3),
    dict(gradient_accumulation_steps=2), dict(loss_scale_factor=128.0),
    dict(name="custom_name"),
], ids=lambda kw: "-".join(kw))
def test_keras_optimizer_keywords(name, keywords):
    model = _fit(OPTIMIZERS[name](**keywords), epochs=1)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    config = model.optimizer.get_config()
    for key, value in keywords.items():
        assert config[key] == value
    expected_updates = 4 if "gradient_accumulation_steps" in keywords else 8
    assert int(model.optimizer.iterations) == expected_updates


def test_clipping_changes_the_update():
    plain = _fit(OPTIMIZERS["adamw"](), epochs=1)
    clipped = _fit(OPTIMIZERS["adamw"](clipvalue=1e-6), epochs=1)
    assert not np.allclose(plain.get_weights()[0], clipped.get_weights()[0])


@pytest.mark.parametrize("constructor,keras_constructor", [
    (keras_adamwr.AdamW, keras.optimizers.Adam),
    (keras_adamwr.SGDW, keras.optimizers.SGD),
])
def test_zero_decay_reduces_to_adam_and_sgd(constructor, keras_constructor):
    extra = dict(epsilon=1e-12) if constructor is keras_adamwr.AdamW else dict(momentum=0.9)
    ours = _fit(constructor(1e-2, weight_decay=0.0, **extra))
    theirs = _fit(keras_constructor(1e-2, **extra))
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_constant_schedule_equals_float_learning_rate():
    constant = keras.optimizers.schedules.PiecewiseConstantDecay([10**9], [2e-3, 2e-3])
    with_schedule = _fit(keras_adamwr.AdamW(constant, weight_decay=0.1))
    with_float = _fit(keras_adamwr.AdamW(2e-3, weight_decay=0.1))
    for a, b in zip(with_schedule.get_weights(), with_float.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_excluded_variables_untouched_by_decay():
    # Decay factor 1 - 1e-6 (1 itself is refused: it zeroes the weights)
    # with a negligible rate: decayed kernels drop to ~0 in two steps, the
    # excluded biases and batch-norm parameters stay put.
    model = _fit(keras_adamwr.SGDW(1e-12, weight_decay=1 - 1e-6, momentum=0.0,
                                   exclude_from_weight_decay=["bias", "gamma", "beta"]),
                 epochs=1)
    values = {v.path.split("/")[-1] + str(i): v.numpy()
              for i, v in enumerate(model.trainable_variables)}
    assert len(values) == 6
    for key, value in values.items():
        if key.startswith("kernel"):
            assert np.abs(value).max() < 1e-9, key
        elif key.startswith("gamma"):
            np.testing.assert_allclose(value, 1.0, atol=1e-9)
        else:
            np.testing.assert_allclose(value, 0.0, atol=1e-9)
