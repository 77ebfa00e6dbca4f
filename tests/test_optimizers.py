"""AdamW / SGDW against the NumPy transcription of the paper, step by step."""

import keras
import numpy as np
import pytest
try:
    import tensorflow as tf
except ImportError:  # other backends: the tests that use it are skipped (conftest.py)
    tf = None

import keras_adamwr
from tests import reference

STEPS = 120
TOLERANCE = {"float16": 2e-2, "float64": 1e-10, "float32": 2e-5}
SCHEDULE = dict(first_cycle_steps=7, t_mul=2.0, m_mul=0.9, min_lr_ratio=0.05, warmup_steps=3)

# name -> (constructor, reference, keyword arguments for both)
OPTIMIZERS = {
    "adamw": (keras_adamwr.AdamW, reference.adamw_reference, {}),
    "adamw_amsgrad": (keras_adamwr.AdamW, reference.adamw_reference, {"amsgrad": True}),
    "sgdw": (keras_adamwr.SGDW, reference.sgdw_reference, {"momentum": 0.9}),
    "sgdw_nesterov": (keras_adamwr.SGDW, reference.sgdw_reference,
                      {"momentum": 0.8, "nesterov": True}),
    "sgdw_plain": (keras_adamwr.SGDW, reference.sgdw_reference, {"momentum": 0.0}),
}


def _problem(dtype, steps=STEPS, seed=0):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(4, 3)).astype(dtype)
    grads = [rng.normal(size=(4, 3)).astype(dtype) for _ in range(steps)]
    return theta, grads


def _run(optimizer, theta, grads):
    variable = keras.Variable(theta, dtype=theta.dtype)
    history = []
    for gradient in grads:
        # A tensor: Keras' own optimizers take no NumPy gradients on torch.
        optimizer.apply([keras.ops.convert_to_tensor(gradient)], [variable])
        history.append(keras.ops.convert_to_numpy(variable))
    return history


def _assert_lockstep(actual, expected, dtype):
    tol = TOLERANCE[dtype]
    for step, (a, e) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(
            a.astype("float64"), e.astype("float64"), rtol=tol, atol=tol,
            err_msg=f"diverged at step {step + 1}",
        )


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("restarts", [False, True], ids=["constant", "restarts"])
@pytest.mark.parametrize("normalized", [False, True], ids=["raw", "normalized"])
@pytest.mark.parametrize("jit_compile", [True, False], ids=["xla", "kernels"])
def test_lockstep_with_paper(name, dtype, restarts, normalized, jit_compile):
    constructor, algorithm, kwargs = OPTIMIZERS[name]
    # alpha is exact in float32, the dtype Keras keeps the learning rate in.
    alpha, theta, grads = 2.0**-7, *_problem(dtype)
    if restarts:
        schedule = keras_adamwr.CosineWarmRestarts(alpha, **SCHEDULE)
        # eta_t as the optimizer sees it (float32, computed by XLA with
        # jit_compile); alpha * eta_t is exact.
        multiplier = schedule.multiplier_tensor  # eager, as `apply` here
        if jit_compile:
            multiplier = tf.function(multiplier, jit_compile=True)
        etas = [float(multiplier(keras.ops.convert_to_tensor(t, "int64")))
                for t in range(STEPS)]
        _, _, lengths = reference.schedule_reference(STEPS, **{
            k: v for k, v in SCHEDULE.items() if k != "m_mul" and k != "min_lr_ratio"})
    else:
        schedule, etas, lengths = alpha, [1.0] * STEPS, [STEPS] * STEPS
    decay = dict(normalized_weight_decay=0.3) if normalized else dict(weight_decay=0.02)
    if normalized and not restarts:
        decay["total_steps"] = STEPS
    lambdas = (reference.normalized_lambdas(0.3, lengths) if normalized
               else [0.02] * STEPS)
    optimizer = constructor(
        learning_rate=schedule, jit_compile=jit_compile, **decay, **kwargs
    )
    expected = algorithm(theta, grads, etas, lambdas, alpha, **kwargs)
    _assert_lockstep(_run(optimizer, theta, grads), expected, dtype)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("jit_compile", [True, False], ids=["xla", "kernels"])
def test_sparse_gradients_with_repeated_indices_are_the_gradient(name, jit_compile):
    # An embedding row looked up twice in a batch: its gradient is the sum
    # of the parts, and Adam's v must see that sum squared (Keras' own Adam
    # squares the parts: 1 + 4 instead of 9).
    constructor, _, kwargs = OPTIMIZERS[name]
    sparse = tf.IndexedSlices(tf.constant([[1.0, 1.0], [2.0, 2.0], [0.5, 0.5]]),
                              tf.constant([0, 0, 2]), tf.constant([3, 2]))
    results = []
    for gradient in (sparse, tf.convert_to_tensor(sparse)):
        variable = keras.Variable(np.ones((3, 2), "float32"))
        optimizer = constructor(learning_rate=0.1, jit_compile=jit_compile, **kwargs)
        for _ in range(3):
            optimizer.apply([gradient], [variable])
        results.append([variable.numpy()] + [v.numpy() for v in optimizer.variables[2:]])
    for from_sparse, from_dense in zip(*results):
        np.testing.assert_array_equal(from_sparse, from_dense)


def test_golden_sgdw():
    # Hand-derived: m1 = 0.05, theta1 = 1 - 0.05 - 0.01 = 0.94;
    # with eta_2 = 0.5: m2 = 0.045 - 0.0125 = 0.0325,
    # theta2 = 0.94 - 0.0325 - 0.5 * 0.01 * 0.94 = 0.9028.
    optimizer = keras_adamwr.SGDW(
        learning_rate=lambda: 0.1, base_learning_rate=0.1, weight_decay=0.01)
    variable = keras.Variable([1.0], dtype="float64")
    optimizer.apply([np.array([0.5])], [variable])
    np.testing.assert_allclose(variable.numpy(), [0.94], rtol=1e-15)
    optimizer.learning_rate = lambda: 0.05
    optimizer.apply([np.array([-0.25])], [variable])
    np.testing.assert_allclose(variable.numpy(), [0.9028], rtol=1e-14)


def test_golden_adamw():
    # Constant gradients: m_hat / sqrt(v_hat) = 1, so with epsilon = 0
    # theta1 = 1 - (0.1 + 0.01) = 0.89 and, at eta_2 = 0.5,
    # theta2 = 0.89 - 0.5 * (0.1 + 0.01 * 0.89) = 0.83555.
    lr = keras.Variable(0.1, dtype="float64")
    optimizer = keras_adamwr.AdamW(
        learning_rate=lambda: lr.value, base_learning_rate=0.1,
        weight_decay=0.01, epsilon=0.0)
    variable = keras.Variable([1.0], dtype="float64")
    optimizer.apply([np.array([0.5])], [variable])
    np.testing.assert_allclose(variable.numpy(), [0.89], rtol=1e-14)
    lr.assign(0.05)
    optimizer.apply([np.array([0.5])], [variable])
    np.testing.assert_allclose(variable.numpy(), [0.83555], rtol=1e-14)


def test_golden_epsilon_outside_bias_corrected_root():
    # Paper: 0.1 * 0.5 / (sqrt(0.25) + 0.5) = 0.05, so theta1 = 0.94.
    # Keras Adam's placement would give 1 - 0.00307 - 0.01 = 0.98693.
    optimizer = keras_adamwr.AdamW(0.1, weight_decay=0.01, epsilon=0.5)
    variable = keras.Variable([1.0], dtype="float64")
    optimizer.apply([np.array([0.5])], [variable])
    np.testing.assert_allclose(variable.numpy(), [0.94], rtol=1e-7)


@pytest.mark.parametrize("constructor", [keras_adamwr.AdamW, keras_adamwr.SGDW])
def test_decay_does_not_scale_with_alpha(constructor):
    """Zero gradients: only the decay acts. Paper convention: same weights
    for any alpha; Keras convention: shrink by (1 - lr_t * lambda)."""
    zeros = [np.zeros((3,), "float64")] * 30
    theta = np.array([1.0, -2.0, 3.0])
    results = {}
    for scaling in ["schedule", "learning_rate"]:
        for alpha in [1e-1, 1e-4]:
            schedule = keras_adamwr.CosineWarmRestarts(alpha, 10)
            optimizer = constructor(schedule, weight_decay=0.05, decay_scaling=scaling)
            results[scaling, alpha] = _run(optimizer, theta, zeros)[-1]
    np.testing.assert_array_equal(results["schedule", 1e-1], results["schedule", 1e-4])
    etas = [keras_adamwr.CosineWarmRestarts(1.0, 10).multiplier(t) for t in range(30)]
    for alpha in [1e-1, 1e-4]:
        expected = theta * np.prod([1 - alpha * eta * 0.05 for eta in etas])
        np.testing.assert_allclose(results["learning_rate", alpha], expected, rtol=1e-6)
    assert not np.allclose(results["learning_rate", 1e-1], results["learning_rate", 1e-4])


def test_learning_rate_scaling_matches_keras_adamw():
    theta, grads = _problem("float32", steps=50)
    ours = keras_adamwr.AdamW(1e-2, weight_decay=0.1, decay_scaling="learning_rate")
    keras_opt = keras.optimizers.AdamW(1e-2, weight_decay=0.1, epsilon=1e-8)
    _assert_lockstep(_run(ours, theta, grads), _run(keras_opt, theta, grads), "float32")


def test_learning_rate_scaling_matches_keras_sgd_with_weight_decay():
    theta, grads = _problem("float32", steps=50)
    ours = keras_adamwr.SGDW(1e-2, momentum=0.9, weight_decay=0.1,
                             decay_scaling="learning_rate")
    keras_opt = keras.optimizers.SGD(1e-2, momentum=0.9, weight_decay=0.1)
    _assert_lockstep(_run(ours, theta, grads), _run(keras_opt, theta, grads), "float32")


def test_decay_follows_manual_learning_rate_change():
    optimizer = keras_adamwr.AdamW(1e-3, weight_decay=0.1)
    variable = keras.Variable(np.ones(2), dtype="float64")
    optimizer.apply([np.zeros(2)], [variable])
    np.testing.assert_allclose(variable.numpy(), 1 - 0.1, rtol=1e-6)
    optimizer.learning_rate = 5e-4  # as ReduceLROnPlateau does: eta = 0.5
    optimizer.apply([np.zeros(2)], [variable])
    np.testing.assert_allclose(variable.numpy(), 0.9 * (1 - 0.05), rtol=1e-6)
    assert float(optimizer.decay_coefficient()) == pytest.approx(0.05)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_gradient_accumulation_counts_weight_updates(name):
    constructor, algorithm, kwargs = OPTIMIZERS[name]
    alpha, theta, grads = 2.0**-7, *_problem("float64", steps=40)
    schedule = keras_adamwr.CosineWarmRestarts(alpha, 3, t_mul=2.0)
    optimizer = constructor(schedule, normalized_weight_decay=0.3,
                            gradient_accumulation_steps=2, **kwargs)
    actual = _run(optimizer, theta, grads)[1::2]
    averaged = [(a + b) / 2 for a, b in zip(grads[::2], grads[1::2])]
    etas = [float(schedule.multiplier_tensor(t)) for t in range(20)]
    _, _, lengths = reference.schedule_reference(20, 3, 2.0)
    expected = algorithm(theta, averaged, etas,
                         reference.normalized_lambdas(0.3, lengths), alpha, **kwargs)
    _assert_lockstep(actual, expected, "float64")
    assert int(optimizer.iterations) == 20


def test_excluded_variables_are_not_decayed():
    theta, grads = _problem("float64", steps=20)
    kernel = keras.Variable(theta, name="kernel")
    bias = keras.Variable(theta, name="bias")
    gamma = keras.Variable(theta, name="gamma")
    optimizer = keras_adamwr.AdamW(2.0**-7, weight_decay=0.1,
                                   exclude_from_weight_decay=["bias$"])
    optimizer.exclude_from_weight_decay(var_list=[gamma])  # Keras' method
    for g in grads:
        optimizer.apply([g, g, g], [kernel, bias, gamma])
    decayed = reference.adamw_reference(theta, grads, [1.0] * 20, [0.1] * 20, 2.0**-7)
    undecayed = reference.adamw_reference(theta, grads, [1.0] * 20, [0.0] * 20, 2.0**-7)
    np.testing.assert_allclose(kernel.numpy(), decayed[-1], rtol=1e-12)
    np.testing.assert_allclose(bias.numpy(), undecayed[-1], rtol=1e-12)
    np.testing.assert_allclose(gamma.numpy(), undecayed[-1], rtol=1e-12)
    assert [optimizer.uses_weight_decay(v) for v in (kernel, bias, gamma)] == [
        True, False, False]


def _named_layers_model():
    # Layers whose names contain "beta" and "bias" (issue 18, item 1).
    return keras.Sequential([
        keras.Input((3,)),
        keras.layers.Dense(4, name="beta_vae_encoder"),
        keras.layers.Dense(2, name="debias_head"),
        keras.layers.LayerNormalization(name="norm"),
    ])


def _decayed_paths(optimizer, model):
    optimizer.build(model.trainable_variables)
    return sorted(v.path.split("/", 1)[1] for v in model.trainable_variables
                  if optimizer.uses_weight_decay(v))


def test_documented_exclusions_match_variable_names_not_layer_names():
    # ["bias", "gamma", "beta"] (README, docstring) matched variable.path up
    # to 0.4.0: the kernels of `beta_vae_encoder` and `debias_head` were not
    # decayed. Keras matches variable.name; patterns with "/" match the path.
    model = _named_layers_model()
    optimizer = keras_adamwr.AdamW(1e-3, exclude_from_weight_decay=["bias", "gamma", "beta"])
    assert _decayed_paths(optimizer, model) == [
        "beta_vae_encoder/kernel", "debias_head/kernel"]
    optimizer = keras_adamwr.SGDW(0.1, exclude_from_weight_decay=["debias_head/", "^gamma$"])
    assert _decayed_paths(optimizer, model) == [
        "beta_vae_encoder/bias", "beta_vae_encoder/kernel", "norm/beta"]


def test_exclusions_of_a_config_without_version_keep_their_path_meaning():
    # A 0.4.0 config (no config_version) meant re.search on variable.path:
    # loaded, it keeps that meaning, warns where the new rule would differ,
    # and saves config_version 1 so that it keeps it.
    import warnings

    model = _named_layers_model()
    config = keras_adamwr.AdamW(1e-3, exclude_from_weight_decay=["bias", "beta"]).get_config()
    assert config.pop("config_version") == 2
    old = keras_adamwr.AdamW.from_config(config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _decayed_paths(old, model) == ["norm/gamma"]  # the rest matched the path
    messages = [str(w.message) for w in caught if "config_version 1" in str(w.message)]
    assert len(messages) == 1 and "beta_vae_encoder/kernel" in messages[0]
    assert old.get_config()["config_version"] == 1
    again = keras_adamwr.AdamW.from_config(old.get_config())
    assert _decayed_paths(again, _named_layers_model()) == ["norm/gamma"]
    current = keras_adamwr.AdamW.from_config(keras_adamwr.AdamW(
        1e-3, exclude_from_weight_decay=["bias", "beta"]).get_config())
    assert _decayed_paths(current, _named_layers_model()) == [
        "beta_vae_encoder/kernel", "debias_head/kernel", "norm/gamma"]
    with pytest.raises(ValueError, match="config_version=3"):
        keras_adamwr.AdamW.from_config(dict(config, config_version=3))


def test_normalized_decay_exact_near_the_int32_limit():
    schedule = keras_adamwr.CosineWarmRestarts(2.0**-7, 3, t_mul=1.5)
    optimizer = keras_adamwr.AdamW(schedule, normalized_weight_decay=0.05)
    for step in [2**31 - 2, 2**31 - 1]:
        index, fraction = reference.cycle_reference(step, 3, 1.5)
        length = float(3 * 1.5**index)
        expected = 0.05 / np.sqrt(length) * 0.5 * (1 + np.cos(np.pi * fraction))
        step = keras.ops.convert_to_tensor(step, "int64")
        actual = float(optimizer.decay_coefficient(step=step))
        assert actual == pytest.approx(expected, rel=1e-5)
        assert float(optimizer.weight_decay_at(step)) == pytest.approx(
            0.05 / np.sqrt(length), rel=1e-6)
