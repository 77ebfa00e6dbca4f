"""`jit_compile=True` (the default): on TensorFlow the update of all
variables of a step is one XLA function (keras_adamwr/optimizers/_compiled.py).

The lockstep tests against the paper run with and without it
(tests/test_optimizers.py); these check that the path is taken when it
should be, and not otherwise, and that it agrees with the kernel path.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adamwr
from keras_adamwr.optimizers import _compiled

CONSTRUCTORS = {
    "adamw": lambda **kw: keras_adamwr.AdamW(1e-3, weight_decay=1e-2, **kw),
    "amsgrad": lambda **kw: keras_adamwr.AdamW(1e-3, amsgrad=True, **kw),
    "adamwr": lambda **kw: keras_adamwr.AdamWR(1e-3, first_cycle_steps=3, **kw),
    "sgdw": lambda **kw: keras_adamwr.SGDW(0.05, weight_decay=1e-2, **kw),
    "sgdwr": lambda **kw: keras_adamwr.SGDWR(0.05, first_cycle_steps=3, nesterov=True, **kw),
}


def _xla_calls(graph):
    """Function calls in `graph` that XLA must compile."""
    return [
        op for op in graph.get_operations()
        if "_XlaMustCompile" in op.node_def.attr and op.get_attr("_XlaMustCompile")
    ]


def _functions(optimizer):
    """Every (chunk, XLA function) pair the optimizer holds."""
    return [pair for pairs in optimizer._scratch.compiled.values() for pair in pairs]


def _variables(seed=0):
    rng = np.random.default_rng(seed)
    return [keras.Variable(rng.normal(size=shape).astype("float32"))
            for shape in [(4, 3), (3,), (2, 2, 2)]]


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
@pytest.mark.parametrize("jit_compile", [True, False])
def test_graph_step_has_one_xla_call_exactly_when_asked(name, jit_compile):
    optimizer = CONSTRUCTORS[name](jit_compile=jit_compile)
    variables = _variables()
    optimizer.build(variables)
    grads = [tf.ones_like(v.value) for v in variables]
    step = tf.function(lambda: optimizer.apply(grads, variables), autograph=False)
    graph = step.get_concrete_function().graph
    assert len(_xla_calls(graph)) == (1 if jit_compile else 0)


def test_eager_steps_reuse_one_compiled_function():
    optimizer = CONSTRUCTORS["adamwr"]()
    variables = _variables()
    for seed in range(5):
        rng = np.random.default_rng(seed)
        optimizer.apply([rng.normal(size=v.shape).astype("float32") for v in variables],
                        variables)
    ((_, function),) = _functions(optimizer)
    assert function.experimental_get_tracing_count() == 1
    # Another subset of the variables gets its own function, and updates
    # only its own variables, also for subsets of the same size.
    for index, variable in enumerate(variables):
        before = [v.numpy() for v in variables]
        optimizer.apply([np.ones(variable.shape, "float32")], [variable])
        for other, value in zip(variables, before):
            assert np.array_equal(other.numpy(), value) == (other is not variable)
    assert len(optimizer._scratch.compiled) == 4


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
def test_compiled_and_kernel_updates_agree(name):
    results = []
    for jit_compile in (True, False):
        optimizer = CONSTRUCTORS[name](jit_compile=jit_compile)
        variables = _variables()
        rng = np.random.default_rng(1)
        for _ in range(10):
            optimizer.apply([rng.normal(size=v.shape).astype("float32") for v in variables],
                            variables)
        results.append([v.numpy() for v in variables + optimizer.variables[2:]])
    for compiled, kernels in zip(*results):
        np.testing.assert_allclose(compiled, kernels, rtol=1e-5, atol=1e-7)


def _fit(optimizer, model_jit, embedding=False):
    keras.utils.set_random_seed(0)
    if embedding:
        inputs = keras.Input((5,), dtype="int32")
        hidden = keras.layers.Flatten()(keras.layers.Embedding(20, 4)(inputs))
        x = np.random.default_rng(0).integers(0, 20, size=(48, 5))
    else:
        inputs = keras.Input((6,))
        hidden = keras.layers.Dense(8, activation="relu")(inputs)
        x = np.random.default_rng(0).normal(size=(48, 6)).astype("float32")
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    y = np.random.default_rng(1).normal(size=(48, 2)).astype("float32")
    model.compile(optimizer=optimizer, loss="mse", jit_compile=model_jit)
    model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    return model


@pytest.mark.parametrize("case", ["graph", "xla_model", "embedding", "accumulation"])
def test_fit_with_and_without_compiled_update(case):
    weights = []
    for jit_compile in (True, False):
        optimizer = keras_adamwr.AdamWR(
            1e-2, first_cycle_steps=4, jit_compile=jit_compile,
            gradient_accumulation_steps=2 if case == "accumulation" else None)
        model = _fit(optimizer, case == "xla_model", embedding=case == "embedding")
        weights.append(model.get_weights() + [v.numpy() for v in optimizer.variables])
        functions = _functions(optimizer)
        assert len(functions) == (1 if jit_compile else 0)
        if jit_compile:
            # One trace for the train function; sparse embedding gradients
            # are made dense, so no retracing for their index counts.
            assert functions[0][1].experimental_get_tracing_count() == 1
    for compiled, kernels in zip(*weights):
        np.testing.assert_allclose(compiled, kernels, rtol=1e-5, atol=1e-6)


def test_callable_learning_rate_is_read_every_step():
    rate = [None]
    optimizer = keras_adamwr.SGDW(
        lambda: rate[0], base_learning_rate=0.1, weight_decay=0.0, momentum=0.0)
    variable = keras.Variable([1.0], dtype="float64")
    for rate[0] in (0.1, 0.05, 0.025):
        optimizer.apply([np.array([1.0])], [variable])
    np.testing.assert_allclose(variable.numpy(), [1 - 0.175], rtol=1e-15)


def test_not_used_under_a_distribution_strategy():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        optimizer = CONSTRUCTORS["adamwr"]()
        variables = _variables()
        assert not _compiled.use_compiled_update(optimizer)
        strategy.run(lambda: optimizer.apply([tf.ones_like(v.value) for v in variables],
                                             variables))
    assert optimizer._scratch.compiled == {}
    assert _compiled.use_compiled_update(optimizer)


def test_not_used_where_keras_falls_back_from_xla(monkeypatch):
    monkeypatch.setattr(_compiled.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(_compiled.platform, "processor", lambda: "arm")
    optimizer = CONSTRUCTORS["adamw"]()
    variables = _variables()
    optimizer.apply([np.ones(v.shape, "float32") for v in variables], variables)
    assert optimizer._scratch.compiled == {}



@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("path", ["compiled", "kernels", "xla_model"])
@pytest.mark.parametrize("cls", [keras_adamwr.AdamW, keras_adamwr.SGDW])
def test_the_learning_rate_does_not_change_the_decay_bit_for_bit(cls, path, dtype):
    # The decay is `eta_t * lambda` with `eta_t = lr_t / alpha` = 1 for a
    # float rate. XLA folded `lambda * (lr / alpha)` into
    # `lr * (lambda / alpha)`, 1 ulp off for some alpha (issue 9).
    init = np.random.default_rng(0).normal(size=50).astype(dtype)
    expected = init.copy()
    for _ in range(10):
        expected = expected - np.asarray(0.05, dtype) * expected
    for alpha in (0.1, 1e-4, 3e-3, 1e-3, 0.01, 0.7):
        optimizer = cls(alpha, weight_decay=0.05, jit_compile=path == "compiled")
        variable = keras.Variable(init, dtype=dtype)
        apply = lambda: optimizer.apply([tf.zeros(50, dtype)], [variable])  # noqa: E731
        if path == "xla_model":
            optimizer.build([variable])
            apply = tf.function(apply, jit_compile=True, autograph=False)
        for _ in range(10):
            apply()
        assert np.array_equal(variable.numpy(), expected), alpha


def _small_variables(count, seed=0):
    rng = np.random.default_rng(seed)
    return [keras.Variable(rng.normal(size=(3,)).astype("float32")) for _ in range(count)]


def test_changing_sets_of_variables_compile_a_bounded_number_of_functions():
    # An eager loop whose variables with gradients change every step
    # compiled and kept one XLA function per set, without limit (issue 10).
    variables = _small_variables(12)
    optimizer = CONSTRUCTORS["adamw"]()
    kernels = CONSTRUCTORS["adamw"](jit_compile=False)
    twins = [keras.Variable(v.numpy()) for v in variables]
    optimizer.build(variables)
    kernels.build(twins)
    rng = np.random.default_rng(2)
    for _ in range(8):
        chosen = sorted(rng.choice(12, size=rng.integers(1, 12), replace=False))
        grads = [rng.normal(size=3).astype("float32") for _ in chosen]
        optimizer.apply(grads, [variables[i] for i in chosen])
        kernels.apply(grads, [twins[i] for i in chosen])
    assert len(optimizer._scratch.compiled) == _compiled.MAX_SUBSETS
    traces = [f.experimental_get_tracing_count() for _, f in _functions(optimizer)]
    assert traces == [1] * _compiled.MAX_SUBSETS
    # The steps past the bound ran, on the kernel path.
    for variable, twin in zip(variables, twins):
        np.testing.assert_allclose(variable.numpy(), twin.numpy(), rtol=1e-5, atol=1e-7)


def test_many_variables_go_in_bounded_chunks_or_to_the_kernel_path():
    # 10,000 small variables in one XLA function took minutes to compile
    # and 14.7 GB (issue 10): at most MAX_VARIABLES_PER_FUNCTION per
    # function, and past MAX_COMPILED_VARIABLES no compiling at all.
    size = _compiled.MAX_VARIABLES_PER_FUNCTION
    optimizer = CONSTRUCTORS["sgdw"]()
    variables = _small_variables(2 * size + 1)
    step = tf.function(lambda: optimizer.apply([tf.ones(3)] * len(variables), variables),
                       autograph=False)
    optimizer.build(variables)
    graph = step.get_concrete_function().graph
    assert len(_xla_calls(graph)) == 3
    chunks = [chunk for chunk, _ in _functions(optimizer)]
    assert [len(variables[c]) for c in chunks] == [size, size, 1]
    assert variables == [v for c in chunks for v in variables[c]]

    optimizer = CONSTRUCTORS["sgdw"]()
    variables = _small_variables(_compiled.MAX_COMPILED_VARIABLES + 1)
    optimizer.build(variables)
    step = tf.function(lambda: optimizer.apply([tf.ones(3)] * len(variables), variables),
                       autograph=False)
    assert _xla_calls(step.get_concrete_function().graph) == []
    assert optimizer._scratch.compiled == {}


def test_chunked_update_equals_the_kernel_path():
    results = []
    for jit_compile in (True, False):
        optimizer = CONSTRUCTORS["adamwr"](jit_compile=jit_compile)
        variables = _small_variables(_compiled.MAX_VARIABLES_PER_FUNCTION + 5)
        rng = np.random.default_rng(3)
        for _ in range(4):
            optimizer.apply([rng.normal(size=3).astype("float32") for _ in variables],
                            variables)
        results.append([v.numpy() for v in variables + optimizer.variables])
        assert len(_functions(optimizer)) == (2 if jit_compile else 0)
    for compiled, kernels in zip(*results):
        np.testing.assert_allclose(compiled, kernels, rtol=1e-5, atol=1e-7)
