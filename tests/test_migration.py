"""The conversions of docs/migration.md: converted settings give the same weights.

PyTorch and optax run here when installed (the `test` extra installs them);
TF Addons and keras-adamw cannot be installed next to Keras 3, so their
documented update rules are transcribed in NumPy below, one step at a time.
Everything runs in float64 with learning rates exact in float32 (the dtype
Keras keeps the rate in), so agreement is to float64 rounding unless a
comment says why not.
"""

import inspect
import math

import keras
import numpy as np
import pytest

import keras_adamwr

STEPS = 120
# Keras converts beta_1, beta_2 (in the bias corrections), SGD's momentum
# and weight_decay to float32 before casting them to a float64 variable's dtype; values exact
# in float32 keep the comparisons with Keras at float64 rounding.
KERAS_BETAS = dict(beta_1=0.875, beta_2=1 - 2.0**-10)
RATES_AND_DECAYS = [(2.0**-10, 1e-2), (3 * 2.0**-8, 0.05), (2.0**-6, 0.3)]


def _problem(steps=STEPS, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(5, 4))
    grads = [scale * rng.normal(size=(5, 4)) for _ in range(steps)]
    return theta, grads


def _run(optimizer, theta, grads):
    variable = keras.Variable(theta, dtype="float64")
    history = []
    for gradient in grads:
        optimizer.apply([gradient], [variable])
        history.append(keras.ops.convert_to_numpy(variable))
    return np.array(history)


def _assert_same_weights(actual, expected, rtol):
    """Every step, relative to the size of the weights (so that a weight
    crossing zero does not need an absolute tolerance of its own)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = np.max(np.abs(expected), axis=tuple(range(1, expected.ndim)), keepdims=True)
    error = np.max(np.abs(actual - expected) / scale)
    assert error <= rtol, f"max relative error {error:.3g} > {rtol:.3g}"


def _restarts(initial_learning_rate, cycle_steps, t_mul, floor=0.0, **kwargs):
    """CosineWarmRestarts with the floor fraction under its current name
    (`min_lr_ratio`, formerly `alpha`)."""
    names = inspect.signature(keras_adamwr.CosineWarmRestarts).parameters
    floor_name = "min_lr_ratio" if "min_lr_ratio" in names else "alpha"
    return keras_adamwr.CosineWarmRestarts(
        initial_learning_rate, first_cycle_steps=cycle_steps, t_mul=t_mul,
        **{floor_name: floor}, **kwargs)


# ---------------------------------------------------------------- PyTorch


def _torch_run(theta, grads, make_optimizer, before_step=None, after_step=None):
    torch = pytest.importorskip("torch")
    parameter = torch.nn.Parameter(torch.tensor(theta, dtype=torch.float64))
    optimizer = make_optimizer([parameter])
    history, rates = [], []
    for index, gradient in enumerate(grads):
        if before_step is not None:
            before_step(optimizer, index)
        rates.append(optimizer.param_groups[0]["lr"])
        parameter.grad = torch.tensor(gradient, dtype=torch.float64)
        optimizer.step()
        if after_step is not None:
            after_step(optimizer, index)
        history.append(parameter.detach().numpy().copy())
    return np.array(history), np.array(rates)


@pytest.mark.parametrize("scaling,amsgrad", [
    ("schedule", False), ("schedule", True), ("learning_rate", False)])
@pytest.mark.parametrize("lr,wd", RATES_AND_DECAYS)
def test_torch_adamw(lr, wd, scaling, amsgrad):
    torch = pytest.importorskip("torch")
    theta, grads = _problem()
    expected, _ = _torch_run(theta, grads, lambda params: torch.optim.AdamW(
        params, lr=lr, weight_decay=wd, amsgrad=amsgrad))
    if scaling == "schedule":   # lambda_paper = alpha * lambda_torch
        ours = keras_adamwr.AdamW(lr, weight_decay=lr * wd, amsgrad=amsgrad)
    else:
        ours = keras_adamwr.AdamW(lr, weight_decay=wd, amsgrad=amsgrad,
                                  decay_scaling="learning_rate")
    _assert_same_weights(_run(ours, theta, grads), expected, 1e-12)


def _torch_warm_restarts(lr, cycle_steps, t_mul, floor):
    torch = pytest.importorskip("torch")

    def make(params):
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
        make.scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=cycle_steps, T_mult=t_mul, eta_min=floor * lr)
        return optimizer

    return make


def test_torch_cosine_annealing_warm_restarts_per_batch():
    """`scheduler.step()` after every `optimizer.step()`, T_0 in batches.

    The schedule here is computed in float32 (as Keras' schedules are),
    PyTorch's in float64: the rates agree to float32 rounding and the
    weights to about 1e-7 of their size; the decay conversion is exact.
    """
    lr, wd, floor = 2.0**-7, 0.05, 0.1
    theta, grads = _problem()
    make = _torch_warm_restarts(lr, 10, 2, floor)
    expected, torch_rates = _torch_run(
        theta, grads, make, after_step=lambda optimizer, index: make.scheduler.step())
    schedule = _restarts(lr, 10, 2.0, floor)
    rates = [float(schedule(step)) for step in range(STEPS)]
    np.testing.assert_allclose(rates, torch_rates, rtol=1e-6, atol=1e-7 * lr)
    ours = keras_adamwr.AdamW(schedule, weight_decay=lr * wd)
    _assert_same_weights(_run(ours, theta, grads), expected, 1e-7)


def test_torch_epoch_units_need_the_next_position():
    """T_0 in epochs, stepped per batch with fractional epochs.

    `scheduler.step(epoch + (i + 1) / iters)` after update i sets the rate
    of update i + 1: that is this library's schedule. PyTorch's docstring
    loop, `scheduler.step(epoch + i / iters)` after the update, runs one
    update late (the first rate is used twice, each restart comes one
    update after the epoch boundary).
    """
    torch = pytest.importorskip("torch")
    lr, iters, epochs = 2.0**-7, 5, 15

    def rates(position):
        parameter = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
        optimizer = torch.optim.AdamW([parameter], lr=lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=1, T_mult=2)
        used = []
        for epoch in range(epochs):
            for i in range(iters):
                used.append(optimizer.param_groups[0]["lr"])
                parameter.grad = torch.ones(1, dtype=torch.float64)
                optimizer.step()
                scheduler.step(epoch + position(i) / iters)
        return np.array(used)

    schedule = _restarts(lr, iters, 2.0)  # first_cycle_epochs=1, steps_per_epoch=5
    ours = np.array([float(schedule(step)) for step in range(iters * epochs)])
    # float32 schedule: eta to about 1e-7 (absolute), so lr to 1e-7 * lr.
    np.testing.assert_allclose(rates(lambda i: i + 1), ours, rtol=1e-6, atol=1e-7 * lr)
    late = rates(lambda i: i)
    np.testing.assert_allclose(late[1:], ours[:-1], rtol=1e-6, atol=1e-7 * lr)
    assert late[iters + 1] == pytest.approx(lr) and ours[iters] == pytest.approx(lr)
    assert ours[iters + 1] < 0.99 * lr  # the difference is real


def test_torch_epoch_units_with_the_new_arguments():
    """The epochs form of the page (`steps_per_epoch`, `first_cycle_epochs`)."""
    names = inspect.signature(keras_adamwr.CosineWarmRestarts).parameters
    if "steps_per_epoch" not in names or "first_cycle_epochs" not in names:
        pytest.skip("CosineWarmRestarts has no epochs arguments yet")
    in_epochs = keras_adamwr.CosineWarmRestarts(
        2.0**-7, first_cycle_epochs=1, steps_per_epoch=5, t_mul=2.0)
    in_steps = _restarts(2.0**-7, 5, 2.0)
    for step in range(80):
        assert float(in_epochs(step)) == float(in_steps(step))


def test_torch_sgd_weight_decay_is_sgdw_only_without_momentum():
    """torch.optim.SGD's weight_decay is L2 (added to the gradient): the
    same as SGDW with lambda_paper = lr * wd only when momentum is 0."""
    torch = pytest.importorskip("torch")
    lr, wd = 2.0**-6, 0.1
    theta, grads = _problem()
    for momentum in [0.0, 0.9]:
        expected, _ = _torch_run(theta, grads, lambda params: torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=wd))
        ours = _run(keras_adamwr.SGDW(lr, momentum=momentum, weight_decay=lr * wd),
                    theta, grads)
        if momentum == 0:
            _assert_same_weights(ours, expected, 1e-12)
        else:
            error = np.max(np.abs(ours - expected)) / np.max(np.abs(expected))
            assert error > 1e-4


def test_torch_sgd_without_weight_decay_equals_sgdw_at_a_constant_rate():
    torch = pytest.importorskip("torch")
    lr = 2.0**-6
    theta, grads = _problem()
    for nesterov in [False, True]:
        expected, _ = _torch_run(theta, grads, lambda params: torch.optim.SGD(
            params, lr=lr, momentum=0.9, nesterov=nesterov))
        ours = keras_adamwr.SGDW(lr, momentum=0.9, nesterov=nesterov, weight_decay=0.0)
        _assert_same_weights(_run(ours, theta, grads), expected, 1e-12)


# ---------------------------------------------------------------- optax


def _optax_run(transform, theta, grads):
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    with jax.enable_x64(True):
        params = jax.numpy.asarray(theta)
        state = transform().init(params)
        update = transform().update
        history = []
        for gradient in grads:
            updates, state = update(jax.numpy.asarray(gradient), state, params)
            params = optax.apply_updates(params, updates)
            assert params.dtype == np.float64
            history.append(np.asarray(params))
    return np.array(history)


@pytest.mark.parametrize("scaling", ["schedule", "learning_rate"])
@pytest.mark.parametrize("lr,wd", RATES_AND_DECAYS)
def test_optax_adamw(lr, wd, scaling):
    optax = pytest.importorskip("optax")
    theta, grads = _problem()
    expected = _optax_run(lambda: optax.adamw(lr, weight_decay=wd), theta, grads)
    if scaling == "schedule":
        ours = keras_adamwr.AdamW(lr, weight_decay=lr * wd)
    else:
        ours = keras_adamwr.AdamW(lr, weight_decay=wd, decay_scaling="learning_rate")
    _assert_same_weights(_run(ours, theta, grads), expected, 1e-12)


def test_optax_sgdr_schedule():
    """optax.sgdr_schedule with cycles T, 2T, 4T is CosineWarmRestarts with
    t_mul=2 (float32 schedule here, float64 in optax: about 1e-7)."""
    optax = pytest.importorskip("optax")
    lr, wd, cycle, floor = 2.0**-7, 0.05, 10, 0.1
    theta, grads = _problem(steps=7 * cycle)
    cycles = [dict(init_value=lr, peak_value=lr, warmup_steps=0,
                   decay_steps=cycle * 2**i, end_value=floor * lr) for i in range(3)]
    expected = _optax_run(
        lambda: optax.adamw(optax.sgdr_schedule(cycles), weight_decay=wd), theta, grads)
    ours = keras_adamwr.AdamW(_restarts(lr, cycle, 2.0, floor), weight_decay=lr * wd)
    _assert_same_weights(_run(ours, theta, grads), expected, 1e-7)


def test_optax_amsgrad_takes_the_maximum_after_bias_correction():
    """optax.scale_by_amsgrad keeps the maximum of the bias-corrected v_hat;
    torch, Keras and this library that of the raw v_t, then correct it. The
    two differ, so optax's AMSGrad has no exact counterpart here."""
    optax = pytest.importorskip("optax")
    lr, wd = 2.0**-7, 0.05
    theta, grads = _problem(steps=50)
    expected = _optax_run(lambda: optax.chain(
        optax.scale_by_amsgrad(), optax.add_decayed_weights(wd),
        optax.scale_by_learning_rate(lr)), theta, grads)
    ours = _run(keras_adamwr.AdamW(lr, weight_decay=lr * wd, amsgrad=True), theta, grads)
    plain = _run(keras_adamwr.AdamW(lr, weight_decay=lr * wd), theta, grads)
    _assert_same_weights(_optax_run(lambda: optax.adamw(lr, weight_decay=wd),
                                    theta, grads), plain, 1e-12)
    assert np.max(np.abs(ours - expected)) > 1e-4 * np.max(np.abs(expected))


# ---------------------------------------------------------------- Keras


@pytest.mark.parametrize("lr,wd,amsgrad", [
    *[(lr, wd, False) for lr, wd in RATES_AND_DECAYS], (*RATES_AND_DECAYS[1], True)])
def test_keras_adamw_without_epsilon(lr, wd, amsgrad):
    """With epsilon = 0 the conversion is exact: the two differ only in
    rounding (Keras decays in a separate pass before the update)."""
    wd = float(np.float32(wd))
    theta, grads = _problem()
    expected = _run(keras.optimizers.AdamW(lr, weight_decay=wd, epsilon=0.0,
                                           amsgrad=amsgrad, **KERAS_BETAS), theta, grads)
    for ours in [
        keras_adamwr.AdamW(lr, weight_decay=lr * wd, epsilon=0.0, amsgrad=amsgrad,
                           **KERAS_BETAS),
        keras_adamwr.AdamW(lr, weight_decay=wd, epsilon=0.0, amsgrad=amsgrad,
                           decay_scaling="learning_rate", **KERAS_BETAS),
    ]:
        _assert_same_weights(_run(ours, theta, grads), expected, 1e-12)


def test_keras_adamw_with_cosine_decay_restarts():
    lr, wd, floor = 2.0**-7, 0.004, 0.1
    theta, grads = _problem()
    keras_schedule = keras.optimizers.schedules.CosineDecayRestarts(
        lr, first_decay_steps=10, t_mul=2.0, m_mul=0.5, alpha=floor)
    expected = _run(keras.optimizers.AdamW(keras_schedule, weight_decay=wd,
                                           epsilon=0.0, **KERAS_BETAS), theta, grads)
    schedule = _restarts(lr, 10, 2.0, floor, m_mul=0.5)
    ours = keras_adamwr.AdamW(schedule, weight_decay=lr * wd, epsilon=0.0,
                              **KERAS_BETAS)
    # Both schedules are float32; they may differ in the last bit.
    _assert_same_weights(_run(ours, theta, grads), expected, 1e-9)
    names = inspect.signature(keras_adamwr.AdamWR).parameters
    floor_name = "min_lr_ratio" if "min_lr_ratio" in names else "alpha"
    in_one = keras_adamwr.AdamWR(lr, first_cycle_steps=10, t_mul=2.0, m_mul=0.5,
                                 weight_decay=lr * wd, epsilon=0.0,
                                 **{floor_name: floor}, **KERAS_BETAS)
    _assert_same_weights(_run(in_one, theta, grads), expected, 1e-9)


@pytest.mark.parametrize("nesterov", [False, True])
def test_keras_sgd_weight_decay(nesterov):
    """Keras 3's SGD decays decoupled too, by lr_t * w: SGDW(lr * w).
    (Keras rounds the momentum to float32 as well: 0.875 is exact.)"""
    lr, wd, momentum = 2.0**-6, float(np.float32(0.1)), 0.875
    theta, grads = _problem()
    expected = _run(keras.optimizers.SGD(lr, momentum=momentum, nesterov=nesterov,
                                         weight_decay=wd), theta, grads)
    ours = keras_adamwr.SGDW(lr, momentum=momentum, nesterov=nesterov,
                             weight_decay=lr * wd)
    _assert_same_weights(_run(ours, theta, grads), expected, 1e-12)


def test_keras_epsilon_is_epsilon_hat():
    """Keras' update is the paper's with epsilon_t = eps / sqrt(1 - beta_2**t).

    Exact at step 1 when converted that way; with the same epsilon the two
    differ little for gradients far above epsilon and a lot for gradients
    near it, most in the first steps.
    """
    eps, beta_2 = 1e-7, KERAS_BETAS["beta_2"]
    theta, grads = _problem(steps=1, scale=1e-6)
    keras_opt = keras.optimizers.AdamW(2.0**-7, weight_decay=0.0, epsilon=eps,
                                       **KERAS_BETAS)
    ours = keras_adamwr.AdamW(2.0**-7, weight_decay=0.0,
                              epsilon=eps / math.sqrt(1 - beta_2), **KERAS_BETAS)
    _assert_same_weights(_run(ours, theta, grads), _run(keras_opt, theta, grads), 1e-14)

    def steps(scale):  # first updates of both with the same epsilon
        theta, grads = _problem(steps=10, scale=scale)
        ref = _run(keras.optimizers.AdamW(2.0**-7, weight_decay=0.0, epsilon=eps),
                   theta, grads)
        got = _run(keras_adamwr.AdamW(2.0**-7, weight_decay=0.0, epsilon=eps),
                   theta, grads)
        return np.max(np.abs(got - ref)) / np.max(np.abs(ref - theta))

    assert steps(1.0) < 1e-4       # gradients ~1: step sizes agree to < 1e-4
    assert steps(1e-6) > 0.5       # gradients ~1e-6: steps differ by > 50%


# ---------------------------------------------------------------- TF Addons


def _tfa_adamw(theta, grads, lrs, wds, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """tfa.optimizers.AdamW: `var -= wd_t * var` first (absolute, not scaled
    by the rate), then tf.keras' (legacy) Adam, whose epsilon is epsilon-hat:
    `var -= lr_t * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) + eps)`."""
    m, v, history = np.zeros_like(theta), np.zeros_like(theta), []
    for t, (g, lr, wd) in enumerate(zip(grads, lrs, wds), start=1):
        theta = theta - wd * theta
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        step_size = lr * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        theta = theta - step_size * m / (np.sqrt(v) + epsilon)
        history.append(theta)
    return np.array(history)


def _tfa_sgdw(theta, grads, lr, wd, momentum, nesterov):
    """tfa.optimizers.SGDW: `var -= wd * var`, then tf.keras' (legacy) SGD:
    `m = momentum * m - lr * g; var += m` (Nesterov: `var += momentum * m - lr * g`)."""
    m, history = np.zeros_like(theta), []
    for g in grads:
        theta = theta - wd * theta
        m = momentum * m - lr * g
        theta = theta + (momentum * m - lr * g if nesterov else m)
        history.append(theta)
    return np.array(history)


def test_tf_addons_adamw_with_a_schedule_on_both():
    """TF Addons' docs: `lr = lr_0 * s(step)`, `wd = wd_0 * s(step)`.
    The decay is `wd_0 * s(t)`: the paper's `eta_t * lambda` with
    `lambda = wd_0` when s peaks at 1."""
    lr_0, wd_0, boundaries, factors = 2.0**-6, 1e-3, [60, 120], [1.0, 2.0**-3, 2.0**-6]
    theta, grads = _problem()
    factor = [factors[np.searchsorted(boundaries, step, side="left")] for step in range(STEPS)]
    expected = _tfa_adamw(theta, grads, [lr_0 * f for f in factor],
                          [wd_0 * f for f in factor], epsilon=0.0)
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries, [lr_0 * f for f in factors])
    ours = keras_adamwr.AdamW(schedule, weight_decay=wd_0, epsilon=0.0)
    _assert_same_weights(_run(ours, theta, grads), expected, 1e-12)


@pytest.mark.parametrize("lr,wd", RATES_AND_DECAYS)
def test_tf_addons_adamw_constant(lr, wd):
    theta, grads = _problem()
    expected = _tfa_adamw(theta, grads, [lr] * STEPS, [wd * 1e-2] * STEPS, epsilon=0.0)
    ours = keras_adamwr.AdamW(lr, weight_decay=wd * 1e-2, epsilon=0.0)
    _assert_same_weights(_run(ours, theta, grads), expected, 1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_tf_addons_sgdw(nesterov):
    lr, wd = 2.0**-6, 1e-3
    theta, grads = _problem()
    expected = _tfa_sgdw(theta, grads, lr, wd, momentum=0.9, nesterov=nesterov)
    ours = keras_adamwr.SGDW(lr, momentum=0.9, nesterov=nesterov, weight_decay=wd)
    _assert_same_weights(_run(ours, theta, grads), expected, 1e-12)


def _run_base_with_decay_first(base_class, base_kwargs, theta, grads, decays):
    """TF Addons' `DecoupledWeightDecayExtension` rule, transcribed: each
    step `var -= wd_t * var` (its `_decay_weights_op`), then the base
    optimizer's own update of the decayed variable (here Keras 3's, run on
    it). A subclass: Keras on torch replaces its own classes, not
    subclasses, by fused versions whose rounding differs (by ~1e-8 in
    float64)."""
    base = type(base_class.__name__, (base_class,), {})(**base_kwargs)
    variable = keras.Variable(theta, dtype="float64")
    history = []
    for gradient, decay in zip(grads, decays):
        value = keras.ops.convert_to_numpy(variable)  # in NumPy: float64 decay on torch too
        variable.assign(value - decay * value)
        base.apply([keras.ops.convert_to_tensor(gradient)], [variable])
        history.append(keras.ops.convert_to_numpy(variable))
    return np.array(history)


def _run_tensors(optimizer, theta, grads):
    return _run(optimizer, theta, [keras.ops.convert_to_tensor(g) for g in grads])


def test_tf_addons_extend_with_decoupled_weight_decay():
    """`extend_with_decoupled_weight_decay(tf.keras.optimizers.Nadam)(
    weight_decay=wd_0 * s, learning_rate=lr_0 * s)` (a NadamW with one
    schedule s on both) is `decoupled(keras.optimizers.Nadam)(lr_0 * s,
    weight_decay=wd_0)`: TF Addons' `weight_decay` is the per-update shrink
    itself, the paper's `eta_t * lambda` with `lambda = wd_0`."""
    lr_0, wd_0, boundaries, factors = 2.0**-6, 1e-3, [60, 120], [1.0, 2.0**-3, 2.0**-6]
    theta, grads = _problem()
    factor = [factors[np.searchsorted(boundaries, step, side="left")] for step in range(STEPS)]
    rates = keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries, [lr_0 * f for f in factors])
    expected = _run_base_with_decay_first(keras.optimizers.Nadam, dict(learning_rate=rates),
                                          theta, grads, [wd_0 * f for f in factor])
    ours = keras_adamwr.decoupled(keras.optimizers.Nadam)(rates, weight_decay=wd_0)
    _assert_same_weights(_run_tensors(ours, theta, grads), expected, 1e-12)


def test_tf_addons_decoupled_weight_decay_extension():
    """`class RMSpropW(DecoupledWeightDecayExtension, tf.keras.optimizers.RMSprop)`
    then `RMSpropW(weight_decay=wd, learning_rate=lr)` is
    `decoupled(keras.optimizers.RMSprop)(lr, weight_decay=wd)`."""
    lr, wd = 2.0**-8, 1e-3
    theta, grads = _problem()
    expected = _run_base_with_decay_first(keras.optimizers.RMSprop,
                                          dict(learning_rate=lr, momentum=0.5),
                                          theta, grads, [wd] * STEPS)
    ours = keras_adamwr.decoupled(keras.optimizers.RMSprop)(lr, weight_decay=wd,
                                                             momentum=0.5)
    _assert_same_weights(_run_tensors(ours, theta, grads), expected, 1e-12)


def test_keras_lion_weight_decay():
    """`keras.optimizers.Lion(a, weight_decay=w)` shrinks by `lr_t * w`
    before its update: `decoupled(Lion)(a, weight_decay=a * w)` (paper
    convention) or `weight_decay=w, decay_scaling="learning_rate"`."""
    lr, wd = 2.0**-8, 0.25
    theta, grads = _problem()
    expected = _run_tensors(keras.optimizers.Lion(lr, weight_decay=wd), theta, grads)
    lion_w = keras_adamwr.decoupled(keras.optimizers.Lion)
    for ours in [lion_w(lr, weight_decay=lr * wd),
                 lion_w(lr, weight_decay=wd, decay_scaling="learning_rate")]:
        _assert_same_weights(_run_tensors(ours, theta, grads), expected, 1e-12)
    # Keras' value unchanged in the paper convention: warned, 1/lr times the decay.
    with pytest.warns(keras_adamwr.DecayConventionWarning):
        unconverted = lion_w(lr, weight_decay=wd)
    assert np.max(np.abs(_run_tensors(unconverted, theta, grads) - expected)) > 0.1


# ---------------------------------------------------------------- keras-adamw


def _keras_adamw(theta, grads, lr, l2, total_iterations, cosine,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-7, eta_min=0.0, eta_max=1.0):
    """keras-adamw's AdamW (tf.keras, last release) for one weight listed in
    `weight_decays` as `(0, l2)`, `total_iterations_wd = total_iterations`:

    * Adam with epsilon-hat (as tf.keras), step scaled by `eta_t`;
    * decay `eta_t * l2 / sqrt(total_iterations) * var`, `var` before the step;
    * `eta_t` starts at 1; after each update `t_cur` counts up (back to 0
      after `total_iterations` updates with `autorestart`) and, with
      `use_cosine_annealing`, `eta_t = eta_min + (eta_max - eta_min) * 0.5 *
      (1 + cos(pi * t_cur / (total_iterations - 1)))`.
    """
    m, v, history, etas = np.zeros_like(theta), np.zeros_like(theta), [], []
    eta, t_cur = 1.0, 0
    for t, g in enumerate(grads, start=1):
        etas.append(eta)
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        step_size = lr * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        update = theta - eta * step_size * m / (np.sqrt(v) + epsilon)
        theta = update - eta * (l2 / math.sqrt(total_iterations)) * theta
        history.append(theta)
        t_cur = 0 if (cosine and t_cur == total_iterations - 1) else t_cur + 1
        if cosine:
            fraction = t_cur / (total_iterations - 1)
            eta = eta_min + (eta_max - eta_min) * 0.5 * (1 + math.cos(math.pi * fraction))
    return np.array(history), np.array(etas)


def test_keras_adamw_package_normalized_decay():
    """No annealing: `l2` is the paper's normalized lambda_norm with
    T = total_iterations (batch size already folded in, as in its README)."""
    lr, l2, total = 2.0**-7, 0.05, 150
    theta, grads = _problem()
    expected, _ = _keras_adamw(theta, grads, lr, l2, total, cosine=False, epsilon=0.0)
    ours = keras_adamwr.AdamW(lr, normalized_weight_decay=l2, total_steps=total,
                              epsilon=0.0)
    _assert_same_weights(_run(ours, theta, grads), expected, 1e-12)


@pytest.mark.parametrize("eta_min,eta_max", [(0.0, 1.0), (0.1, 2.0)])
def test_keras_adamw_package_cosine_annealing_differs_by_one_step_per_cycle(
        eta_min, eta_max):
    """Its cosine reaches eta_min on the last update of a cycle of T updates
    (t_cur / (T - 1)); CosineWarmRestarts reaches it one step later, at the
    restart (T_cur / T). With learning_rate = lr * eta_max and min_lr_ratio =
    eta_min / eta_max the multipliers differ by at most
    (eta_max - eta_min) * pi / (2 T), except at the first update (eta_t = 1)."""
    lr, l2, total = 2.0**-7, 0.05, 20
    theta, grads = _problem(steps=100)
    _, their_etas = _keras_adamw(theta, grads, lr, l2, total, cosine=True,
                                 epsilon=0.0, eta_min=eta_min, eta_max=eta_max)
    schedule = _restarts(eta_max, total, 1.0, eta_min / eta_max)
    our_etas = np.array([float(schedule(step)) for step in range(100)])
    assert their_etas[0] == 1.0
    bound = (eta_max - eta_min) * math.pi / (2 * total)
    difference = np.abs(their_etas - our_etas)[1:]
    assert difference.max() <= bound
    assert difference.max() > 0.1 * bound
    assert their_etas[total - 1] == pytest.approx(eta_min, abs=1e-12)
    np.testing.assert_allclose(their_etas[total::total], eta_max)  # same restarts
    np.testing.assert_allclose(our_etas[total::total], eta_max, rtol=1e-7)


def test_epsilon_hat_factors():
    """The factors 1 / sqrt(1 - beta_2**t) quoted in docs/migration.md."""
    factor = lambda t: 1 / math.sqrt(1 - 0.999**t)  # noqa: E731
    assert round(factor(1), 1) == 31.6
    assert round(factor(100), 1) == 3.2
    assert round(factor(1000), 2) == 1.26
    first_within_one_percent = next(t for t in range(1, 10**5) if factor(t) <= 1.01)
    assert round(first_within_one_percent, -2) == 3900


# ---------------------------------------------------------------- timm


def _timm_cosine(t, t_initial, lr_min=0.0, cycle_mul=1.0, cycle_decay=1.0,
                 cycle_limit=1, warmup_t=0, warmup_lr_init=0.0, warmup_prefix=False,
                 base=1.0):
    """timm.scheduler.CosineLRScheduler._get_lr at update t (t_in_epochs=False)."""
    if t < warmup_t:
        return warmup_lr_init + t * (base - warmup_lr_init) / warmup_t
    if warmup_prefix:
        t = t - warmup_t
    if cycle_mul != 1:
        i = math.floor(math.log(1 - t / t_initial * (1 - cycle_mul), cycle_mul))
        t_i = cycle_mul**i * t_initial
        t_curr = t - (1 - cycle_mul**i) / (1 - cycle_mul) * t_initial
    else:
        i = t // t_initial
        t_i = t_initial
        t_curr = t - t_initial * i
    lr_max = base * cycle_decay**i
    if i >= cycle_limit:
        return lr_min
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * t_curr / t_i))


def test_timm_cosine_lr_scheduler_per_update():
    """CosineLRScheduler(t_initial=T, cycle_mul=2, cycle_decay=d, lr_min=0,
    warmup_t=W, warmup_prefix=True, cycle_limit large, t_in_epochs=False)
    stepped with `step_update(num_updates)`."""
    kwargs = dict(t_initial=6, cycle_mul=2.0, cycle_decay=0.5, cycle_limit=100,
                  warmup_t=4, warmup_prefix=True)
    schedule = _restarts(1.0, 6, 2.0, m_mul=0.5, warmup_steps=4)
    theirs = [_timm_cosine(t, **kwargs) for t in range(300)]
    ours = [schedule.multiplier(t) for t in range(300)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    # With a floor and a cycle decay, timm shrinks the peak, not the part
    # above the floor (Keras' and this library's m_mul): they differ.
    theirs = [_timm_cosine(t, **kwargs, lr_min=0.1) for t in range(300)]
    schedule = _restarts(1.0, 6, 2.0, 0.1, m_mul=0.5, warmup_steps=4)
    ours = [schedule.multiplier(t) for t in range(300)]
    assert max(abs(a - b) for a, b in zip(ours, theirs)) > 0.01


def test_timm_warmup_lr_init_and_cycle_limit():
    """timm's warmup_lr_init and cycle_limit are warmup_start_ratio and
    cycle_limit here (warmup_prefix=True, per-update stepping)."""
    kwargs = dict(t_initial=6, cycle_mul=2.0, cycle_decay=0.5, cycle_limit=3,
                  warmup_t=4, warmup_lr_init=0.002, warmup_prefix=True, base=0.01)
    schedule = keras_adamwr.CosineWarmRestarts(
        0.01, first_cycle_steps=6, t_mul=2.0, m_mul=0.5, warmup_steps=4,
        warmup_start_ratio=0.002 / 0.01, cycle_limit=3)
    theirs = [_timm_cosine(t, **kwargs) for t in range(80)]
    ours = [0.01 * schedule.multiplier(t) for t in range(80)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-9)
    assert theirs[4 + 6 + 12 + 24] == 0.0  # past the third cycle: the floor


def test_readme_keras_conversion_keeps_every_keras_default():
    # Issue 18, item 13: the README's one-line conversion dropped epsilon
    # (Keras' default 1e-7, ours 1e-8); docs/migration.md had it.
    import os
    import re

    readme = open(os.path.join(os.path.dirname(__file__), os.pardir, "README.md")).read()
    match = re.search(r"`(keras\.optimizers\.AdamW\([^`]*\))` is\s+`(keras_adamwr\.AdamW\([^`]*\))`",
                      readme)
    assert match, "README: the Keras AdamW conversion is gone"
    theirs, ours = (eval(code, {"keras": keras, "keras_adamwr": keras_adamwr})
                    for code in match.groups())
    assert ours.epsilon == theirs.epsilon
    assert ours.weight_decay == pytest.approx(float(theirs.learning_rate) * theirs.weight_decay)
    assert (ours.beta_1, ours.beta_2, ours.amsgrad) == (theirs.beta_1, theirs.beta_2,
                                                        theirs.amsgrad)
    theta, grads = _problem(scale=1e-2)
    # Close, not exact: Keras' epsilon is epsilon hat (see the test above).
    _assert_same_weights(_run(ours, theta, grads), _run(theirs, theta, grads), 2e-4)
