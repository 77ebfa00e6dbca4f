"""The same update rules on the JAX backend (skipped where JAX is missing).

The optimizers use keras.ops only, so they must run unchanged on every
backend; JAX also has an int32 step counter.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

WORKER = os.path.join(os.path.dirname(__file__), "_backend_worker.py")


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX not installed")
def test_jax_backend_matches_reference_and_tensorflow():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, WORKER], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    jax = json.loads(done.stdout.strip().splitlines()[-1])
    assert jax["backend"] == "jax"
    assert jax["adamw"] < 2e-5 and jax["sgdw"] < 2e-5
    assert jax["cycles"] == [13, 31]
    assert jax["updates"] == 4
    assert jax["compiled_functions"] == 0  # jit_compile is a TensorFlow-only path
    # The same model on TensorFlow resolves the same decay mask.
    env["KERAS_BACKEND"] = "tensorflow"
    done = subprocess.run([sys.executable, WORKER], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    tensorflow = json.loads(done.stdout.strip().splitlines()[-1])
    assert jax["mask"] == tensorflow["mask"] == [True, True, False, True, True, False]
    assert tensorflow["adamw"] < 2e-5 and tensorflow["sgdw"] < 2e-5
    assert tensorflow["compiled_functions"] == 1
    import keras_adamwr

    grown = keras_adamwr.CosineWarmRestarts(1.0, 3, t_mul=1.5)
    expected = [(2**31 - 1) / 2**50, 0.5, 0.5, grown.cycle_index(2**31 - 1),
                grown.multiplier(2**31 - 1)]
    for backend in (jax, tensorflow):
        assert backend["limits"][3] == expected[3]
        assert backend["limits"] == pytest.approx(expected, rel=1e-5)
