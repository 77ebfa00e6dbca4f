"""Keras' own distribution API: `keras.distribution.DataParallel` on JAX over
two host CPU devices gives the one-device result (docs/distribution.md).

JAX fixes its device count at start-up, so the runs happen in a fresh
interpreter (tests/_data_parallel_worker.py) with
XLA_FLAGS=--xla_force_host_platform_device_count=2; it runs on any backend
the suite runs on, wherever JAX is installed.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests import _data_parallel_worker as worker

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                reason="JAX not installed")


@pytest.fixture(scope="module")
def results():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    done = subprocess.run([sys.executable, worker.__file__], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {record["case"]: record for record in lines}


@pytest.mark.parametrize("case", sorted(worker.CASES))
def test_data_parallel_fit_matches_one_device(results, case):
    record = results[case]
    assert record["devices"] == 2
    assert record["keys_match"] and record["finite"]
    # Exclusions resolved the same way: Dense kernels decayed; the bias and
    # BatchNormalization's gamma/beta not.
    assert record["decayed"] == [True, False, False, True, False]
    accumulation = worker.CASES[case].get("gradient_accumulation_steps", 1)
    assert record["iterations"] == worker.STEPS // accumulation
    # Same program on the global batch; only the summation order differs.
    assert record["max_difference"] < 1e-6, record
