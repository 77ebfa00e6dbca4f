"""Mixed precision, float16/bfloat16 variables and non-finite gradients.

What each test pins is explained for users in docs/distribution.md:
float16/bfloat16 variables are updated in float32 and rounded once, so a
small decay is not rounded away and AdamW's epsilon does not underflow.
"""

import keras
import numpy as np
import pytest

import keras_adamwr
from keras_adamwr.optimizers.base import DecoupledWeightDecay
from tests import reference
from tests.test_fit import _data

# Half the spacing of floats just below 1: `1 - c` rounds to 1 for c below it.
HALF_SPACING_BELOW_ONE = {"float16": 2.0**-12, "bfloat16": 2.0**-9}


def _model():
    keras.utils.set_random_seed(1)
    return keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="tanh"),
        keras.layers.Dense(2),
    ])


def _compile(model, optimizer):
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def _inner(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.inner_optimizer
    return optimizer


def _numpy(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


def _skipped_steps(optimizer):
    """Skipped steps so far: each one halves the loss scale (no growth here)."""
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return 0
    return round(np.log2(optimizer.initial_scale / float(optimizer.dynamic_scale)))


MIXED_OPTIMIZERS = {
    "adamw": lambda: keras_adamwr.AdamW(3e-3, weight_decay=1e-2, amsgrad=True),
    "sgdwr": lambda: keras_adamwr.SGDWR(
        0.05, first_cycle_steps=3, exclude_from_weight_decay=["bias"]),
}


# Mixed precision: float16/bfloat16 compute, float32 variables.

@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("name", sorted(MIXED_OPTIMIZERS))
def test_mixed_precision_trains_with_float32_state(policy, name):
    keras.config.set_dtype_policy(policy)
    model = _model()
    _compile(model, MIXED_OPTIMIZERS[name]())
    x, y = _data()
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    # Keras wraps the optimizer for float16 only (bfloat16 has float32's range).
    wrapped = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert wrapped == (policy == "mixed_float16")
    inner = _inner(model.optimizer)
    assert isinstance(inner, DecoupledWeightDecay)
    assert model.layers[0].compute_dtype == policy.split("_")[1]
    assert {v.dtype for v in model.trainable_variables} == {"float32"}
    slots = [v for v in inner.variables if "int" not in v.dtype]  # all but the counter
    assert len(slots) >= len(model.trainable_variables)
    assert {v.dtype for v in slots} == {"float32"}
    assert np.isfinite(history.history["loss"]).all()
    for value in _numpy(model.trainable_variables) + _numpy(slots):
        assert np.isfinite(value).all()
    assert int(inner.iterations) + _skipped_steps(model.optimizer) == 16


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_decay_acts_on_float32_variables(policy):
    # c_t = 1e-4: `1 - c_t` is 1 in float16 and bfloat16, but the variables
    # are float32, so every step shrinks the kernels by exactly (1 - 1e-4).
    # The rate is negligible: the gradient moves a kernel by <= 1e-8 in all.
    keras.config.set_dtype_policy(policy)
    model = _model()
    _compile(model, keras_adamwr.SGDW(1e-9, weight_decay=1e-4, momentum=0.0))
    kernels = [v for v in model.trainable_variables if "kernel" in v.path]
    before = _numpy(kernels)
    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    steps = int(_inner(model.optimizer).iterations)
    assert steps + _skipped_steps(model.optimizer) == 8 and steps >= 6
    for after, start in zip(_numpy(kernels), before):
        assert after.dtype == np.float32
        np.testing.assert_allclose(after, start * (1 - 1e-4) ** steps, rtol=2e-7, atol=2e-8)


@pytest.mark.parametrize("name", ["adamw", "sgdw"])
def test_loss_scale_optimizer_update_matches_float32_reference(name):
    schedule = keras_adamwr.CosineWarmRestarts(2.0**-7, 7, warmup_steps=2)
    steps = 30
    etas = [float(schedule.multiplier_tensor(t)) for t in range(steps)]
    if name == "adamw":
        inner = keras_adamwr.AdamW(schedule, weight_decay=0.02)
        algorithm = reference.adamw_reference
    else:
        inner = keras_adamwr.SGDW(schedule, weight_decay=0.02, momentum=0.9)
        algorithm = reference.sgdw_reference
    optimizer = keras.optimizers.LossScaleOptimizer(inner, initial_scale=2.0**12)
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(4, 3)).astype("float32")
    grads = [rng.normal(size=(4, 3)).astype("float32") for _ in range(steps)]
    variable = keras.Variable(theta)
    optimizer.build([variable])
    actual = []
    for gradient in grads:
        # What a scaled loss gives: gradients times the current scale.
        optimizer.apply([gradient * float(optimizer.dynamic_scale)], [variable])
        actual.append(keras.ops.convert_to_numpy(variable))
    expected = algorithm(theta, grads, etas, [0.02] * steps, 2.0**-7)
    assert variable.dtype == "float32" and int(inner.iterations) == steps
    for step, (a, e) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(a, e, rtol=2e-5, atol=2e-5, err_msg=f"step {step + 1}")


def test_skipped_mixed_float16_steps_leave_weights_slots_and_schedule_alone():
    # A loss scale of 2**30 overflows float16 gradients: Keras skips steps,
    # halving the scale each time, until the gradients are finite.
    keras.config.set_dtype_policy("mixed_float16")
    model = _model()
    inner = keras_adamwr.AdamWR(3e-3, first_cycle_steps=4, exclude_from_weight_decay=["bias"])
    optimizer = keras.optimizers.LossScaleOptimizer(inner, initial_scale=2.0**30)
    _compile(model, optimizer)

    states = []

    class Record(keras.callbacks.Callback):
        def _record(self):
            states.append(dict(
                scale=float(optimizer.dynamic_scale) if optimizer.built else 2.0**30,
                iterations=int(inner.iterations),
                weights=_numpy(model.trainable_variables),
                slots=_numpy(inner.variables) if inner.built else None,
                learning_rate=float(inner.learning_rate),
            ))

        def on_train_begin(self, logs=None):
            self._record()

        def on_train_batch_end(self, batch, logs=None):
            self._record()

    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False, callbacks=[Record()])
    skipped = 0
    for before, after in zip(states, states[1:]):
        if after["scale"] < before["scale"]:  # skipped
            skipped += 1
            assert after["scale"] == before["scale"] / 2
            assert after["iterations"] == before["iterations"]
            for a, b in zip(after["weights"], before["weights"]):
                np.testing.assert_array_equal(a, b)
            if before["slots"] is not None:
                for a, b in zip(after["slots"], before["slots"]):
                    np.testing.assert_array_equal(a, b)
        else:
            assert after["iterations"] == before["iterations"] + 1
            assert not np.array_equal(after["weights"][0], before["weights"][0])
        # The schedule (and so eta_t, lambda_t and the restarts) follows the
        # weight updates, not the batches.
        np.testing.assert_allclose(
            after["learning_rate"], float(inner.schedule(after["iterations"])), rtol=1e-6)
    assert 5 <= skipped <= 20, skipped
    assert int(inner.iterations) == 24 - skipped
    # Counting batches instead would have put the run in a later cycle.
    assert inner.schedule.cycle_index(24 - skipped) < inner.schedule.cycle_index(24)


# Non-finite gradients.

NONFINITE_OPTIMIZERS = {
    "adamw": lambda: keras_adamwr.AdamW(1e-2, weight_decay=0.05),
    "adamw_amsgrad": lambda: keras_adamwr.AdamW(1e-2, weight_decay=0.05, amsgrad=True),
    "sgdw_nesterov": lambda: keras_adamwr.SGDW(
        keras_adamwr.CosineWarmRestarts(1e-2, 3), nesterov=True, weight_decay=0.05),
}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", sorted(NONFINITE_OPTIMIZERS))
def test_loss_scale_optimizer_skips_nonfinite_gradient(name, bad):
    inner = NONFINITE_OPTIMIZERS[name]()
    optimizer = keras.optimizers.LossScaleOptimizer(inner, initial_scale=16.0)
    rng = np.random.default_rng(0)
    variable = keras.Variable(rng.normal(size=(4, 3)).astype("float32"))
    optimizer.build([variable])
    for _ in range(3):
        optimizer.apply([16.0 * rng.normal(size=(4, 3)).astype("float32")], [variable])
    before = _numpy([variable] + list(inner.variables))
    gradient = rng.normal(size=(4, 3)).astype("float32")
    gradient[1, 2] = bad
    optimizer.apply([gradient], [variable])
    after = _numpy([variable] + list(inner.variables))
    for a, b in zip(after, before):  # weights, m, v, v_hat, iterations
        np.testing.assert_array_equal(a, b)
    assert int(inner.iterations) == 3
    assert float(optimizer.dynamic_scale) == 8.0
    optimizer.apply([8.0 * rng.normal(size=(4, 3)).astype("float32")], [variable])
    assert int(inner.iterations) == 4
    assert np.isfinite(keras.ops.convert_to_numpy(variable)).all()


@pytest.mark.parametrize("ours,theirs", [
    (lambda: keras_adamwr.AdamW(1e-2, weight_decay=0.05), lambda: keras.optimizers.Adam(1e-2)),
    (lambda: keras_adamwr.SGDW(1e-2, weight_decay=0.05), lambda: keras.optimizers.SGD(1e-2, 0.9)),
], ids=["adamw", "sgdw"])
def test_nonfinite_gradient_without_loss_scaling_propagates_like_keras(ours, theirs):
    # Documented: no check, as in Keras. The non-finite entries poison their
    # own weights and slots for good; the other entries train on.
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(4, 3)).astype("float32")
    grads = [rng.normal(size=(4, 3)).astype("float32") for _ in range(4)]
    grads[2][0, 0], grads[2][1, 1] = np.nan, np.inf
    results = {}
    for label, make in (("ours", ours), ("keras", theirs)):
        optimizer, variable = make(), keras.Variable(theta)
        for gradient in grads:
            optimizer.apply([gradient], [variable])
        value = keras.ops.convert_to_numpy(variable)
        slot = keras.ops.convert_to_numpy(  # first moment / momentum buffer
            [v for v in optimizer.variables if v.path.endswith("_momentum")][0])
        results[label] = value, slot
        assert int(optimizer.iterations) == 4
    (value, slot), (keras_value, _) = results["ours"], results["keras"]
    poisoned = np.zeros((4, 3), bool)
    poisoned[0, 0] = poisoned[1, 1] = True
    np.testing.assert_array_equal(~np.isfinite(value), poisoned)
    np.testing.assert_array_equal(~np.isfinite(slot), poisoned)
    np.testing.assert_array_equal(np.isfinite(value), np.isfinite(keras_value))


# float16 / bfloat16 variables (no float32 copy).

def _low_precision_theta(dtype, size=2000, scale=0.5):
    theta = np.random.default_rng(0).normal(0, scale, size)
    return keras.ops.convert_to_numpy(keras.ops.cast(theta, dtype)).astype("float64")


def _run_low_precision(optimizer, theta, grads, dtype):
    variable = keras.Variable(theta, dtype=dtype)
    for gradient in grads:
        optimizer.apply([keras.ops.cast(gradient, dtype)], [variable])
    return keras.ops.convert_to_numpy(keras.ops.cast(variable, "float64"))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_decay_without_gradient_is_lost_below_half_spacing(dtype):
    # Documented: with zero gradients only the decay acts. Below half the
    # spacing of floats under 1, theta * (1 - c_t) rounds back to theta in
    # any rounding-to-nearest implementation: the decay is lost.
    threshold = HALF_SPACING_BELOW_ONE[dtype]
    theta = _low_precision_theta(dtype)
    zeros = [np.zeros_like(theta)] * 20
    for factor in (0.25, 0.8):
        optimizer = keras_adamwr.SGDW(0.1, weight_decay=factor * threshold, momentum=0.0)
        np.testing.assert_array_equal(_run_low_precision(optimizer, theta, zeros, dtype), theta)
    # At 4x the threshold (1 - c_t exact) the weights shrink as they should.
    c = 4 * threshold
    optimizer = keras_adamwr.SGDW(0.1, weight_decay=c, momentum=0.0)
    shrink = 1 - _run_low_precision(optimizer, theta, zeros, dtype) / theta
    # (Each step rounds by up to half a spacing, as large as the decay itself.)
    np.testing.assert_allclose(np.mean(shrink), 1 - (1 - c) ** 20, rtol=0.15)


def _decay_kept(dtype, c, steps=150):
    """Share of the float64 reference's decay that survives in `dtype`.

    SGDW with and without decay on the same gradients; the float64 gap
    between the two runs is the decay's effect, and the low-precision gap
    is projected onto it: 1 means all of it, 0 none.
    """
    theta = _low_precision_theta(dtype)
    rng = np.random.default_rng(1)
    grads = [rng.normal(size=theta.shape) for _ in range(steps)]
    runs = {}
    for weight_decay in (0.0, c):
        optimizer = keras_adamwr.SGDW(1e-3, momentum=0.9, weight_decay=weight_decay)
        runs[weight_decay] = _run_low_precision(optimizer, theta, grads, dtype)
    exact = {wd: reference.sgdw_reference(theta, grads, [1.0] * steps, [wd] * steps,
                                          1e-3, momentum=0.9)[-1]
             for wd in runs}
    gap, exact_gap = runs[0.0] - runs[c], exact[0.0] - exact[c]
    return float(np.sum(gap * exact_gap) / np.sum(exact_gap**2))


@pytest.mark.parametrize("c", [1e-4, 3e-4])
@pytest.mark.parametrize("dtype,lowest", [("float16", 0.9), ("bfloat16", 0.7)])
def test_low_precision_decay_survives_next_to_gradient_steps(dtype, lowest, c):
    # Rounding 1 - c_t to the variable's dtype first would lose c_t = 1e-4
    # (share 0) and turn 3e-4 into 2**-11 in float16 (share 1.6).
    assert lowest <= _decay_kept(dtype, c) <= 1.1


def test_float16_adamw_zero_gradient_leaves_weight_finite():
    variable = keras.Variable(np.array([0.5, -0.25, 1.0]), dtype="float16")
    optimizer = keras_adamwr.AdamW(1e-3, weight_decay=0.0)
    for _ in range(3):
        optimizer.apply([np.array([0.0, 1e-2, 1.0], "float16")], [variable])
    value = keras.ops.convert_to_numpy(variable)
    assert np.isfinite(value).all(), value
    assert value[0] == 0.5


# float16/bfloat16 variables: no step larger than the rate allows.

LOW_PRECISION_BITS = {"float16": 10, "bfloat16": 7}  # mantissa bits
MAGNITUDES = {
    "float16": [10.0**k for k in range(-7, 3)],
    "bfloat16": [10.0**k for k in range(-30, 16, 5)],  # g**2 finite in float32
}
SWEEP_OPTIMIZERS = {
    # jit_compile=False: one XLA compile per optimizer would dominate.
    "adamw": lambda: keras_adamwr.AdamW(1e-2, weight_decay=0.0, jit_compile=False),
    "amsgrad": lambda: keras_adamwr.AdamW(1e-2, weight_decay=0.0, amsgrad=True,
                                          jit_compile=False),
    "sgdw": lambda: keras_adamwr.SGDW(1e-2, weight_decay=0.0, momentum=0.9,
                                      jit_compile=False),
}


def _largest_step(name, t, gradients, rate=1e-2, beta_1=0.9, beta_2=0.999):
    """The largest |step| at update t (1-based) in exact arithmetic."""
    if name == "sgdw":  # m_t = sum momentum**k lr g_{t-k}
        return rate * np.abs(gradients[:t]).max() * sum(0.9**k for k in range(t))
    ratio = beta_1**2 / beta_2
    c_t = (1 - beta_1) ** 2 / (1 - beta_2) * (1 - ratio**t) / (1 - ratio)
    return rate * np.sqrt(c_t * (1 - beta_2**t)) / (1 - beta_1**t)


@pytest.mark.parametrize("dtype", sorted(MAGNITUDES))
@pytest.mark.parametrize("name", sorted(SWEEP_OPTIMIZERS))
def test_low_precision_variables_never_step_further_than_the_rate_allows(dtype, name):
    # Issue: AdamW turned a float16 1.0 into -499.2 in one step with
    # g = 5e-3 (v underflowed to 0, m did not).
    rng = np.random.default_rng(0)
    steps = 12
    for magnitude in MAGNITUDES[dtype] + [5e-3]:
        optimizer = SWEEP_OPTIMIZERS[name]()
        variable = keras.Variable(np.ones(3, "float32"), dtype=dtype)
        # Mostly one sign (momentum builds up), with noise, at this magnitude.
        gradients = magnitude * (0.5 + rng.normal(size=(steps, 3)))
        before = keras.ops.convert_to_numpy(keras.ops.cast(variable, "float32"))
        for t in range(1, steps + 1):
            gradient = keras.ops.cast(gradients[t - 1].astype("float32"), dtype)
            optimizer.apply([gradient], [variable])
            after = keras.ops.convert_to_numpy(keras.ops.cast(variable, "float32"))
            actual = np.abs(gradients[:t]).astype("float32")
            bound = _largest_step(name, t, actual) * (1 + 1e-3)
            rounding = np.maximum(np.abs(before), np.abs(after)) * 2.0 ** -LOW_PRECISION_BITS[dtype]
            assert np.all(np.abs(after - before) <= bound + rounding), (
                magnitude, t, before, after, bound)
            before = after


def test_issue_case_float16_adamw_step_is_the_rate():
    # One step with g = 5e-3 used to turn 1.0 into -499.2; float32 gives 0.999.
    variable = keras.Variable(np.ones(2, "float16"), dtype="float16")
    keras_adamwr.AdamW(1e-3, weight_decay=0.0).apply([np.full(2, 5e-3, "float16")], [variable])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), 0.999, atol=5e-4)


# Issue 18, item 2: float16/bfloat16 variables keep float32 slots. In their
# own dtype `(1 - beta_2) * g**2` underflowed (float16, |g| < ~7e-3) or
# stopped growing (bfloat16: increments below 2**-8 of v are rounded away):
# every step was the largest one, ~7.8x the rate.

ISSUE_GRADIENTS = {
    "constant": lambda: [np.full(64, 1e-4)] * 200,
    "random_sign": lambda: list(np.random.default_rng(0).choice([-1.0, 1.0], (200, 64)) * 1e-4),
}


@pytest.mark.parametrize("case", sorted(ISSUE_GRADIENTS))
def test_issue_case_float16_adamw_follows_the_float32_trajectory(case):
    # 200 steps at rate 1e-2: float32 (and the reference) moves a weight 2.0
    # with the constant gradient, 0.106 with random signs; float16 slots
    # moved it 4.3 and 0.79.
    grads = ISSUE_GRADIENTS[case]()
    theta = np.full(64, 1.0)
    exact = reference.adamw_reference(theta, grads, [1.0] * 200, [0.0] * 200, 1e-2)[-1]
    optimizer = keras_adamwr.AdamW(1e-2, weight_decay=0.0, jit_compile=False)
    actual = _run_low_precision(optimizer, theta, grads, "float16")
    moved, exact_moved = np.mean(np.abs(actual - theta)), np.mean(np.abs(exact - theta))
    # What is left: rounding the weights themselves to float16 (spacing 2**-10
    # at 1: a step of 1e-2 is rounded by up to 5%).
    assert moved == pytest.approx(exact_moved, rel=0.05), (moved, exact_moved)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["adamw", "amsgrad", "sgdw"])
def test_low_precision_variables_keep_float32_slots_that_match_the_reference(dtype, name):
    grads = ISSUE_GRADIENTS["constant"]()
    theta = np.full(64, 0.5)
    g = float(keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.cast(1e-4, dtype), "float64")))
    if name == "sgdw":
        optimizer = keras_adamwr.SGDW(1e-2, momentum=0.9, weight_decay=0.0, jit_compile=False)
        # m_t = 0.9 m + lr * g: its limit 1e-5 is a float16 subnormal.
        expected = {"momentum": 1e-2 * g * (1 - 0.9**200) / 0.1}
    else:
        optimizer = keras_adamwr.AdamW(1e-2, weight_decay=0.0, amsgrad=name == "amsgrad",
                                       jit_compile=False)
        expected = {"momentum": g * (1 - 0.9**200),
                    "velocity": g**2 * (1 - 0.999**200)}  # 0 in float16
    _run_low_precision(optimizer, theta, grads, dtype)
    slots = [v for v in optimizer.variables if v.path.endswith(("_momentum", "_velocity"))]
    assert {keras.backend.standardize_dtype(v.dtype) for v in slots} == {"float32"}
    for slot in slots:
        kind = slot.path.rsplit("_", 1)[1]
        np.testing.assert_allclose(keras.ops.convert_to_numpy(slot), expected[kind], rtol=1e-4,
                                   err_msg=slot.path)


def test_float16_slots_of_0_4_0_state_load_into_float32_slots():
    # 0.4.0 saved float16 slots for float16 variables (same names, shapes,
    # order): they load, widened exactly.
    from keras_adamwr.optimizers._state import FORMAT_KEY

    variable = keras.Variable(np.ones(3), dtype="float16")
    optimizer = keras_adamwr.AdamW(1e-2, weight_decay=0.0)
    optimizer.build([variable])
    saved = {"0": np.array(5, "int64"), "1": np.array(1e-2, "float32"),
             "2": np.array([1e-4, -2e-4, 3e-4], "float16"),
             "3": np.array([1e-7, 0.0, 6e-8], "float16"),
             FORMAT_KEY: np.frombuffer(b"keras_adamwr.AdamW/1", np.uint8)}
    optimizer.load_own_variables(saved)
    for key in ("2", "3"):
        slot = optimizer.variables[int(key)]
        assert keras.backend.standardize_dtype(slot.dtype) == "float32"
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(slot),
                                      saved[key].astype("float32"))
