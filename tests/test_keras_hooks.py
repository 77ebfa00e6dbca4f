"""The private Keras hooks we override, pinned: if Keras renames or stops
calling them, these tests fail before users see doubled or missing decay.

setup.cfg pins `keras>=3.15,<3.16`, the range these tests have run on.
"""

import keras
import numpy as np

import keras_adamwr
from keras_adamwr.optimizers.base import DecoupledWeightDecay


def test_hooks_exist_in_keras():
    base = keras.optimizers.Optimizer
    for hook in ("_apply_weight_decay", "_get_current_learning_rate",
                 "_use_weight_decay", "_get_variable_index",
                 "_backend_update_step"):
        assert callable(getattr(base, hook, None)), hook
    for hook in ("_apply_weight_decay", "_get_current_learning_rate",
                 "_backend_update_step"):
        assert hook in DecoupledWeightDecay.__dict__, hook


def test_backend_update_step_receives_every_step_and_the_learning_rate():
    # `_compiled.py` relies on Keras calling `_backend_update_step(grads,
    # variables, self.learning_rate)` once per weight update, with
    # accumulation too, after the gradients are clipped.
    calls = []

    class Spy(keras_adamwr.SGDW):
        def _backend_update_step(self, grads, trainable_variables, learning_rate):
            calls.append((keras.ops.convert_to_numpy(grads[0]),
                          float(learning_rate), len(trainable_variables)))
            super()._backend_update_step(grads, trainable_variables, learning_rate)

    optimizer = Spy(lambda: 0.5, base_learning_rate=0.5, clipvalue=1.0,
                    gradient_accumulation_steps=2)
    variable = keras.Variable(np.zeros(2))
    for _ in range(4):
        optimizer.apply([np.full(2, 3.0)], [variable])
    assert [(list(g), lr, n) for g, lr, n in calls] == [([1.0, 1.0], 0.5, 1)] * 2


def test_keras_own_decay_pass_never_runs():
    # If Keras applied its own `lr * wd * theta` pass as well, zero
    # gradients would shrink theta by (1 - 0.5)(1 - 0.5 * 0.1).
    optimizer = keras_adamwr.SGDW(0.1, weight_decay=0.5, momentum=0.0)
    variable = keras.Variable(np.ones(3))
    optimizer.apply([np.zeros(3)], [variable])
    np.testing.assert_allclose(variable.numpy(), 0.5, rtol=1e-7)


def test_schedule_is_evaluated_at_weight_updates_not_micro_batches():
    schedule = keras_adamwr.CosineWarmRestarts(1.0, 4)
    optimizer = keras_adamwr.AdamW(schedule, gradient_accumulation_steps=3)
    variable = keras.Variable(np.ones(2))
    rates = []
    for _ in range(12):
        rates.append(float(optimizer.learning_rate))
        optimizer.apply([np.ones(2)], [variable])
    expected = [float(schedule(i // 3)) for i in range(12)]
    np.testing.assert_allclose(rates, expected, rtol=1e-7)
    assert int(optimizer.iterations) == 4


def test_h5_store_keeps_the_optimizer_name_beside_its_variables(tmp_path):
    # `_state._saved_optimizer_name` reads it to tell a 0.2.0 file (no tag)
    # from another optimizer's.
    from keras_adamwr.optimizers._state import _saved_optimizer_name

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(momentum=0.9, name="some_sgd"), loss="mse")
    model.optimizer.build(model.trainable_variables)
    model.save_weights(tmp_path / "w.weights.h5")
    seen = []

    class Probe(keras_adamwr.SGDW):
        def load_own_variables(self, store):
            seen.append(_saved_optimizer_name(store))

    probe = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    probe.compile(optimizer=Probe(), loss="mse")
    probe.optimizer.build(probe.trainable_variables)
    probe.load_weights(tmp_path / "w.weights.h5")
    assert seen == ["some_sgd"]


def test_decoupled_update_step_runs_once_per_variable_for_keras_optimizers():
    # `decoupled(K)` adds its decay in `update_step`: Keras must call it for
    # every variable of a step (its `_backend_update_step` loop), also on
    # torch, where Keras swaps exact classes such as `Adam` for fused
    # versions that never call `update_step`, but not subclasses.
    calls = []
    for base in (keras.optimizers.Adam, keras.optimizers.Lion, keras.optimizers.SGD):
        cls = keras_adamwr.decoupled(base)
        optimizer = cls(0.1, weight_decay=1e-4, jit_compile=False)
        assert type(optimizer) is cls
        update_step = optimizer.update_step
        optimizer.update_step = lambda g, v, lr, update_step=update_step: (
            calls.append(v.name.split(":")[0]), update_step(g, v, lr))
        variables = [keras.Variable(np.ones(2), name="a"), keras.Variable(np.ones(3), name="b")]
        for _ in range(2):
            optimizer.apply([keras.ops.ones(2), keras.ops.ones(3)], variables)
    assert calls == ["a", "b"] * 6
