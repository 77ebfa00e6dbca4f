"""torch backend: `compile(jit_compile=True)` (torch.compile) traces our
optimizers as few times as Keras' own.

Regression (issue 12): AdamWR made 36 Dynamo graphs where Keras' AdamW makes
11 in the same fit: NumPy in the schedule's cycle lookup broke the graph
(a data-dependent `searchsorted`), after which `update_step` was compiled
once per variable, and the per-step scalar cache, keyed by the identity of
each step's learning-rate tensor, failed its guard every step. Dynamo's
"eager" backend is used: it counts the same graphs and guards as Inductor
without generating kernels.
"""

import functools

import numpy as np
import pytest

import keras
import keras_adamwr

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="torch.compile (torch backend)")


def _graphs(make_optimizer, jit_compile=True):
    """Dynamo's (unique graphs, graph breaks, final weights) of a 6-step
    fit."""
    import torch
    import torch._dynamo
    from torch._dynamo.utils import counters

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "compile", functools.partial(
            torch.compile, backend="eager"))
        return _fit(make_optimizer, torch, counters, jit_compile)


def _fit(make_optimizer, torch, counters, jit_compile):
    torch._dynamo.reset()
    counters.clear()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((4,)), keras.layers.Dense(8),
        keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    model.compile(make_optimizer(), "mse", jit_compile=jit_compile)
    x = np.random.rand(24, 4).astype("float32")
    y = np.random.rand(24, 1).astype("float32")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    stats = counters["stats"]
    breaks = dict(counters["graph_break"])
    torch._dynamo.reset()
    return stats["unique_graphs"], breaks, [np.array(w) for w in model.weights]


OPTIMIZERS = {
    "AdamWR": lambda: keras_adamwr.AdamWR(
        1e-3, first_cycle_steps=2, t_mul=2.0, normalized_weight_decay=0.05),
    "SGDWR": lambda: keras_adamwr.SGDWR(
        1e-2, first_cycle_steps=2, t_mul=1.5, normalized_weight_decay=0.05),
    "AdamW+schedule": lambda: keras_adamwr.AdamW(
        keras_adamwr.CosineWarmRestarts(1e-3, 2, warmup_steps=1),
        weight_decay=1e-4),
}


@pytest.fixture(scope="module")
def keras_adamw():
    return _graphs(lambda: keras.optimizers.AdamW(1e-3))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_no_more_graphs_than_keras_adamw(keras_adamw, name):
    keras_graphs, keras_breaks, _ = keras_adamw
    graphs, breaks, weights = _graphs(OPTIMIZERS[name])
    new_breaks = {reason[:200]: count for reason, count in breaks.items()
                  if reason not in keras_breaks}
    assert not new_breaks, new_breaks
    assert graphs <= keras_graphs, (graphs, keras_graphs)
    # The same numbers as the eager fit: the scalars cached per step under
    # torch.compile are this step's (the rate and decay change every step).
    _, _, eager = _graphs(OPTIMIZERS[name], jit_compile=False)
    for compiled, expected in zip(weights, eager):
        np.testing.assert_allclose(compiled, expected, rtol=1e-5, atol=1e-6)
