"""`keras_adamwr.decoupled(K)`: K's own update plus the paper's decay.

One table of base optimizers drives the invariant tests (optax's
alias_test style). The reference of each step is the base optimizer itself
(`K(weight_decay=None)`, run on a copy of the variables reset to the
reference weights `theta_{t-1}` before every step) for the base update, plus
the NumPy decay `eta_t * lambda_t * theta_{t-1}` of tests/reference.py
(schedule and per-restart normalized decay): so the test checks that the
base update sees `theta_{t-1}` (not decayed weights), that Keras' own decay
is off, and the decay itself, over steps that cross a restart.
"""

import copy
import inspect
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

import keras_adamwr
from keras_adamwr import decoupled
from tests.reference import normalized_lambdas
from tests.reference import schedule_reference

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 5
CYCLE = 2  # cycles of 2 and 4 updates: a restart before update 2 (0-based)
LAMBDA_NORM = 0.3  # lambda_t = 0.21, then 0.15: large, so that errors show


@keras.saving.register_keras_serializable(package="keras_adamwr_tests")
class ScaledMomentum(keras.optimizers.Optimizer):
    """A user's optimizer whose step depends on the weights:
    `v = momentum * v + g; theta -= lr * v * (1 + |theta|)`."""

    def __init__(self, learning_rate=0.01, momentum=0.5, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = momentum

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.velocities = [self.add_variable_from_reference(v, "velocity") for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        velocity = self.velocities[self._get_variable_index(variable)]
        rate = ops.cast(learning_rate, variable.dtype)
        self.assign(velocity, self.momentum * velocity + gradient)
        self.assign_sub(variable, rate * velocity * (1 + ops.abs(variable)))

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum}


# The documented pattern: decouple a user's class in the module that defines
# it, so that importing the module registers both before `load_model`.
ScaledMomentumW = decoupled(ScaledMomentum)

# (base class name, its keyword arguments, learning rate, XLA on TensorFlow)
TABLE = [
    ("Adam", {}, 0.05, True),
    ("SGD", dict(momentum=0.9), 0.1, False),
    ("Lion", {}, 0.01, False),
    ("Nadam", {}, 0.05, False),
    ("RMSprop", {}, 0.01, False),
    ("Adamax", {}, 0.05, False),
    ("Adafactor", {}, 0.1, False),
    ("Adagrad", {}, 0.1, False),
    ("Adadelta", {}, 1.0, False),
    ("Ftrl", {}, 0.1, False),
    ("Lamb", {}, 0.01, True),
    ("Muon", {}, 0.01, False),
    ("ScaledMomentum", {}, 0.05, False),
]
NAMES = [row[0] for row in TABLE]
KERAS_VERSION = tuple(int(part) for part in keras.__version__.split(".")[:2])


def _base(name):
    if name == "ScaledMomentum":
        return ScaledMomentum
    if not hasattr(keras.optimizers, name):
        pytest.skip(f"keras {keras.__version__} has no {name}")
    return getattr(keras.optimizers, name)


def _row(name):
    return next(row for row in TABLE if row[0] == name)


def _keras_decay(base, value):
    """Keyword arguments that set `base`'s own weight decay(s) (Keras'
    `weight_decay`, Muon's `adam_weight_decay` too) to `value`."""
    parameters = inspect.signature(base.__init__).parameters
    return {"weight_decay": value,
            **{key: value for key in parameters if key.endswith("_weight_decay")}}


def _problem(steps=STEPS, seed=0):
    rng = np.random.default_rng(seed)
    theta = [rng.normal(size=(3, 4)).astype("float32"), rng.normal(size=4).astype("float32")]
    grads = [[rng.normal(size=t.shape).astype("float32") for t in theta] for _ in range(steps)]
    return theta, grads


def _variables(theta):
    return [keras.Variable(theta[0], name="kernel"), keras.Variable(theta[1], name="bias")]


def _tensors(grads):
    return [ops.convert_to_tensor(g) for g in grads]


def _optimizer(name, **overrides):
    _, kwargs, rate, xla = _row(name)
    arguments = dict(
        learning_rate=keras_adamwr.CosineWarmRestarts(rate, CYCLE),
        normalized_weight_decay=LAMBDA_NORM, exclude_from_weight_decay=["bias"],
        jit_compile=xla, **kwargs)
    arguments.update(overrides)
    return decoupled(_base(name))(**arguments)


def _run(optimizer, theta, grads):
    variables = _variables(theta)
    history = []
    for step_grads in grads:
        optimizer.apply(_tensors(step_grads), variables)
        history.append([ops.convert_to_numpy(v).copy() for v in variables])
    return history


def _reference(name, theta, grads, decays, decayed=(True, False), learning_rate=None):
    """Base update of `K(weight_decay=None)` from theta_{t-1}, minus
    `decays[t] * theta_{t-1}` on the decayed variables."""
    base = _base(name)
    _, kwargs, rate, _ = _row(name)
    if learning_rate is None:
        learning_rate = keras_adamwr.CosineWarmRestarts(rate, CYCLE)
    optimizer = base(learning_rate=learning_rate, **_keras_decay(base, None), **kwargs)
    copies = _variables(theta)
    thetas = [t.astype("float64") for t in theta]
    history = []
    for decay, step_grads in zip(decays, grads):
        for copy, value in zip(copies, thetas):
            copy.assign(value.astype("float32"))
        optimizer.apply(_tensors(step_grads), copies)
        thetas = [ops.convert_to_numpy(copy).astype("float64") - (decay * value if d else 0)
                  for copy, value, d in zip(copies, thetas, decayed)]
        history.append(thetas)
    return history


def _paper_decays(steps=STEPS):
    etas, _, lengths = schedule_reference(steps, CYCLE)
    return [eta * lam for eta, lam in zip(etas, normalized_lambdas(LAMBDA_NORM, lengths))]


def _assert_close(actual, expected, rtol=2e-5):
    for step, (got, want) in enumerate(zip(actual, expected)):
        for a, e in zip(got, want):
            error = np.max(np.abs(a - e)) / np.max(np.abs(e))
            assert error <= rtol, f"update {step}: relative error {error:.3g}"


@pytest.mark.parametrize("name", NAMES)
def test_steps_are_the_base_update_plus_the_decay_across_a_restart(name):
    theta, grads = _problem()
    decays = _paper_decays()
    assert schedule_reference(STEPS, CYCLE)[1] == [0, 0, 1, 1, 1]
    optimizer = _optimizer(name)
    actual = _run(optimizer, theta, grads)
    _assert_close(actual, _reference(name, theta, grads, decays))
    # The excluded bias is the base update alone; the decay is not nothing.
    no_decay = _reference(name, theta, grads, [0.0] * STEPS)
    assert np.max(np.abs(actual[-1][0] - no_decay[-1][0])) > 1e-3
    assert type(optimizer).__name__ == f"Decoupled{name}"
    assert isinstance(optimizer, _base(name))


# Base updates that read the weights: Adafactor scales its step by their
# RMS, Ftrl's linear term and Lamb's trust ratio use them, and so does the
# user's class here. Keras decays first, so these see the decayed weights.
READS_WEIGHTS = {"Adafactor", "Ftrl", "Lamb", "ScaledMomentum"}


@pytest.mark.parametrize("name", NAMES)
def test_keras_own_weight_decay_is_the_learning_rate_convention_where_the_update_ignores_theta(
        name):
    """docs/decoupled.md's table: `K(lr, weight_decay=w)` shrinks by `lr_t *
    w` before its update; that is `decoupled(K)(lr, weight_decay=w,
    decay_scaling="learning_rate")` unless K's update reads the weights."""
    base = _base(name)
    _, kwargs, rate, _ = _row(name)
    decay = 0.05 / rate  # lr_t * w = 0.05 per update
    theta, grads = _problem()
    own = _run(base(rate, **_keras_decay(base, decay), **kwargs), theta, grads)
    ours = _run(decoupled(base)(rate, weight_decay=decay, decay_scaling="learning_rate",
                                jit_compile=False, **kwargs), theta, grads)
    if name in READS_WEIGHTS:
        with pytest.raises(AssertionError):
            _assert_close(ours, own, rtol=1e-4)
    else:
        _assert_close(ours, own)


def test_learning_rate_convention_and_a_float_rate():
    # decay_scaling="learning_rate": c_t = lr_t * lambda (Keras/PyTorch).
    theta, grads = _problem()
    rate = 0.05
    optimizer = decoupled(keras.optimizers.Nadam)(
        rate, weight_decay=2.0, decay_scaling="learning_rate", jit_compile=False)
    expected = _reference("Nadam", theta, grads, [rate * 2.0] * STEPS, (True, True),
                          learning_rate=rate)
    _assert_close(_run(optimizer, theta, grads), expected)


def test_adam_is_keras_adam_plus_decay_and_adamw_with_epsilon_hat():
    """decoupled(keras.optimizers.Adam) is Keras' Adam plus the decay (the
    table test); this package's AdamW puts epsilon where the paper does,
    outside sqrt(v_hat), and Keras' Adam inside the bias correction: the two
    agree exactly with epsilon = 0, and at update t when AdamW's epsilon is
    Keras' divided by sqrt(1 - beta_2**t) (here t = 1)."""
    theta, grads = _problem()
    rate, decay = 0.05, 1e-3
    adam_w = decoupled(keras.optimizers.Adam)
    _assert_close(_run(adam_w(rate, weight_decay=decay, epsilon=0.0, jit_compile=False),
                       theta, grads),
                  _run(keras_adamwr.AdamW(rate, weight_decay=decay, epsilon=0.0,
                                          jit_compile=False), theta, grads), rtol=1e-6)
    theta, grads = _problem(steps=1)
    grads = [[g * 1e-6 for g in grads[0]]]  # near epsilon: where placement matters
    keras_like = _run(adam_w(rate, weight_decay=decay, epsilon=1e-7, jit_compile=False),
                      theta, grads)
    paper = keras_adamwr.AdamW(rate, weight_decay=decay, epsilon=1e-7 / np.sqrt(1 - 0.999),
                               jit_compile=False)
    _assert_close(keras_like, _run(paper, theta, grads), rtol=1e-6)
    same_epsilon = _run(keras_adamwr.AdamW(rate, weight_decay=decay, epsilon=1e-7,
                                           jit_compile=False), theta, grads)
    with pytest.raises(AssertionError):
        _assert_close(keras_like, same_epsilon, rtol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip(name):
    optimizer = _optimizer(name, exclude_from_weight_decay=["bias", "gamma"],
                           decay_scaling="learning_rate", base_learning_rate=0.5)
    config = optimizer.get_config()
    assert config["exclude_from_weight_decay"] == ["bias", "gamma"]
    assert config["normalized_weight_decay"] == LAMBDA_NORM
    restored = type(optimizer).from_config(copy.deepcopy(config))
    assert restored.get_config() == {**config, "name": restored.name}
    serialized = keras.optimizers.serialize(optimizer)
    assert serialized["registered_name"] == (
        f"keras_adamwr>Decoupled<{keras.saving.get_registered_name(_base(name))}>")
    again = keras.optimizers.deserialize(serialized)
    assert type(again) is type(optimizer) is decoupled(_base(name))
    assert again.get_config() == config


def test_registered_names_are_found_after_import():
    assert keras.saving.get_registered_object("keras_adamwr>Decoupled<Lion>") is (
        decoupled(keras.optimizers.Lion))
    assert keras.saving.get_registered_name(ScaledMomentumW) == (
        "keras_adamwr>Decoupled<keras_adamwr_tests>ScaledMomentum>")
    assert decoupled(ScaledMomentum) is ScaledMomentumW


@pytest.mark.parametrize("argument,error,message", [
    (keras.optimizers.AdamW, ValueError, "cannot be AdamW: .*decoupled.keras.optimizers.Adam"),
    (keras.optimizers.LossScaleOptimizer, ValueError, "wrap the decoupled one"),
    (keras_adamwr.AdamW, ValueError, "has decoupled weight decay already"),
    (keras_adamwr.SGDW, ValueError, "has decoupled weight decay already"),
    ("Lion", TypeError, "must be a subclass of keras.optimizers.Optimizer"),
    (keras.optimizers.Lion(), TypeError, "must be a subclass"),
])
def test_refused_classes_say_why(argument, error, message):
    with pytest.raises(error, match=message):
        decoupled(argument)


@pytest.mark.parametrize("name,message", [
    ("MultiOptimizer", "decouple those"),
    ("ScheduleFreeAdamW", "average of its slot variables"),
])
def test_refused_keras_classes_where_installed(name, message):
    if not hasattr(keras.optimizers, name):
        pytest.skip(f"keras {keras.__version__} has no {name}")
    with pytest.raises(ValueError, match=f"cannot be {name}: .*{message}"):
        decoupled(getattr(keras.optimizers, name))


def test_class_that_skips_update_step_is_refused():
    @keras.saving.register_keras_serializable(package="keras_adamwr_tests")
    class Fused(ScaledMomentum):
        def _backend_update_step(self, grads, trainable_variables, learning_rate):
            pass

    with pytest.raises(ValueError, match="overrides `_backend_update_step` .in Fused."):
        decoupled(Fused)


def test_unregistered_user_class_is_refused_naming_what_to_register():
    class Plain(ScaledMomentum):
        pass

    with pytest.raises(ValueError, match=r"test_decoupled\..*Plain\) must be registered .*"
                       r"register_keras_serializable"):
        decoupled(Plain)


def test_muon_adam_weight_decay_is_refused_not_ignored():
    muon = _base("Muon")
    if "adam_weight_decay" not in inspect.signature(muon.__init__).parameters:
        pytest.skip("this Muon has no adam_weight_decay")
    with pytest.raises(ValueError, match="`adam_weight_decay` of Muon is Keras' own decay"):
        decoupled(muon)(weight_decay=1e-4, adam_weight_decay=0.004)
    assert decoupled(muon)(weight_decay=1e-4).get_config()["adam_weight_decay"] is None


def test_argument_checks_are_adamw_s():
    lion_w = decoupled(keras.optimizers.Lion)
    with pytest.raises(ValueError, match="mutually exclusive"):
        lion_w(weight_decay=1e-4, normalized_weight_decay=0.05, total_steps=10)
    with pytest.raises(ValueError, match="`total_steps` must be an integer"):
        lion_w(normalized_weight_decay=0.05)
    with pytest.raises(ValueError, match="`decay_scaling` must be one of"):
        lion_w(decay_scaling="lr")
    with pytest.raises(ValueError, match="`weight_decay` must be >= 0"):
        lion_w(weight_decay=-1.0)
    with pytest.raises(ValueError, match="`base_learning_rate` must be a float"):
        lion_w(keras.optimizers.schedules.CosineDecay(1e-3, 10).__call__)
    with pytest.warns(keras_adamwr.DecayConventionWarning):
        lion_w(1e-4, weight_decay=0.1)


SAVED_AT = 2  # saved after 2 updates, resumed for 3 more (across the restart)


def saving_grads(model):
    rng = np.random.default_rng(1)
    return [[ops.convert_to_tensor(rng.normal(size=v.shape).astype("float32"))
             for v in model.trainable_variables] for _ in range(STEPS)]


def _saved_run(name, folder):
    """Saves FOLDER/NAME.keras after SAVED_AT updates; returns the variables
    (model, then optimizer) after all STEPS updates in this process."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=_optimizer(name), loss="mse")
    for step, grads in enumerate(saving_grads(model)):
        if step == SAVED_AT:
            model.save(folder / f"{name}.keras")
        model.optimizer.apply(grads, model.trainable_variables)
    return [ops.convert_to_numpy(v) for v in model.variables + model.optimizer.variables]


def test_model_save_and_load_in_a_new_process_resumes_bit_identically(tmp_path):
    names = [name for name in NAMES if name == "ScaledMomentum" or hasattr(keras.optimizers, name)]
    if keras.backend.backend() == "tensorflow" and KERAS_VERSION < (3, 15):
        names.remove("Muon")  # Keras' own Muon fails there, see tests/conftest.py
    expected = {name: _saved_run(name, tmp_path) for name in names}
    result = subprocess.run(
        [sys.executable, "-m", "tests._decoupled_worker", str(tmp_path), *names],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend(),
             "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    for name in names:
        resumed = np.load(tmp_path / f"{name}.resumed.npz")
        assert str(resumed["class_name"]) == f"Decoupled{name}"
        arrays = [resumed[f"arr_{index}"] for index in range(len(expected[name]))]
        for got, want in zip(arrays, expected[name]):
            np.testing.assert_array_equal(got, want, err_msg=name)
    # The user's class, loaded before the module that registers it: Keras
    # names the missing registered name.
    message = (tmp_path / "unregistered.txt").read_text()
    assert "keras_adamwr>Decoupled<keras_adamwr_tests>ScaledMomentum>" in message, message


def _compiled_model(optimizer):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=optimizer, loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


@pytest.mark.parametrize("saved_with", ["keras", "other_decoupled"])
def test_another_optimizer_s_state_is_refused(tmp_path, saved_with):
    # keras.optimizers.Lion and decoupled(SGD)(momentum=0.9) have the layout
    # of decoupled(Lion): one slot per variable.
    lion_w = decoupled(keras.optimizers.Lion)
    other = (keras.optimizers.Lion() if saved_with == "keras"
             else decoupled(keras.optimizers.SGD)(momentum=0.9, weight_decay=1e-4))
    path = str(tmp_path / "other.weights.h5")
    _compiled_model(other).save_weights(path)
    model = _compiled_model(lion_w(weight_decay=1e-4))
    before = [ops.convert_to_numpy(v) for v in model.optimizer.variables]
    with pytest.raises(ValueError, match="cannot load"):
        model.load_weights(path)
    for variable, value in zip(model.optimizer.variables, before):
        np.testing.assert_array_equal(ops.convert_to_numpy(variable), value)


@pytest.mark.tensorflow_only
def test_tf_checkpoint_of_another_optimizer_is_refused(tmp_path):
    import tensorflow as tf

    lion_w = decoupled(keras.optimizers.Lion)
    for other, match in [(keras.optimizers.Lion(), "carries no keras_adamwr format tag"),
                         (decoupled(keras.optimizers.SGD)(momentum=0.9), "its format is")]:
        path = tf.train.Checkpoint(optimizer=_compiled_model(other).optimizer).save(
            str(tmp_path / type(other).__name__))
        model = _compiled_model(lion_w(weight_decay=1e-4))
        with pytest.raises(ValueError, match=match):
            tf.train.Checkpoint(optimizer=model.optimizer).restore(path)
    saved = _compiled_model(lion_w(weight_decay=1e-4))
    saved.optimizer.iterations.assign(7)
    path = tf.train.Checkpoint(optimizer=saved.optimizer).save(str(tmp_path / "own"))
    model = _compiled_model(lion_w(weight_decay=1e-4))
    tf.train.Checkpoint(optimizer=model.optimizer).restore(path).assert_consumed()
    assert int(model.optimizer.iterations) == 7


def _fit(optimizer, callbacks, epochs=3):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer, "sparse_categorical_crossentropy")
    return model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0,
                     callbacks=callbacks)


def test_anytime_recorder_works_unchanged():
    # 6 updates per epoch; cycles of 4, 8 updates end at 4 and 12.
    optimizer = decoupled(keras.optimizers.Lion)(
        keras_adamwr.CosineWarmRestarts(1e-3, 4), normalized_weight_decay=0.05)
    rng = np.random.default_rng(1)
    validation = (rng.normal(size=(32, 4)).astype("float32"), np.zeros(32, "int32"))
    recorder = keras_adamwr.AnytimeRecorder(validation, verbose=0)
    _fit(optimizer, [recorder])
    rows = recorder.records
    assert [row["step"] for row in rows] == [4, 12]
    for row in rows:
        last = row["step"] - 1
        assert row["weight_decay_effective"] == pytest.approx(
            float(optimizer.decay_coefficient(step=last)), rel=1e-5)  # float32
        assert row["weight_decay_effective"] > 0


def test_hyperparameter_logger_works_unchanged():
    from keras_adamwr.callbacks.hyperparameters import KEYS

    optimizer = decoupled(keras.optimizers.RMSprop)(
        keras_adamwr.CosineWarmRestarts(1e-3, 4), normalized_weight_decay=0.05)
    history = _fit(optimizer, [keras_adamwr.HyperparameterLogger()])
    schedule = optimizer.schedule
    for epoch, step in enumerate([6, 12, 18]):
        lengths = schedule.cycle_length(schedule.cycle_index(step))
        assert history.history["eta"][epoch] == schedule.multiplier(step)
        assert history.history["weight_decay_effective"][epoch] == pytest.approx(
            schedule.multiplier(step) * 0.05 / np.sqrt(lengths), rel=1e-6)
    assert set(KEYS) <= set(history.history)


def test_float16_variables_get_the_decay():
    # The decay is computed in float32 and subtracted before one rounding.
    theta = np.linspace(-2, 2, 8).astype("float16")
    gradient = np.linspace(1, -1, 8).astype("float16")
    variable = keras.Variable(theta, dtype="float16")
    optimizer = decoupled(keras.optimizers.SGD)(0.25, weight_decay=3e-4, jit_compile=False)
    optimizer.apply([ops.convert_to_tensor(gradient)], [variable])
    after_base = (theta - np.float16(0.25) * gradient).astype("float16")  # Keras' SGD in float16
    expected = (after_base.astype("float32") - np.float32(3e-4) * theta.astype("float32"))
    np.testing.assert_array_equal(ops.convert_to_numpy(variable), expected.astype("float16"))
