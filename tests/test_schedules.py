"""CosineWarmRestarts against the step-by-step loop of the paper."""

import math

import keras
import numpy as np
import pytest
try:
    import tensorflow as tf
except ImportError:  # other backends: the tests that use it are skipped (conftest.py)
    tf = None

from keras_adamwr import CosineWarmRestarts
from tests import reference

CONFIGS = [
    dict(first_cycle_steps=1, t_mul=2.0),
    dict(first_cycle_steps=3, t_mul=1.5, m_mul=0.8, alpha=0.1),
    dict(first_cycle_steps=10, t_mul=1.0, alpha=0.2),
    dict(first_cycle_steps=5, t_mul=3.0, m_mul=0.5, warmup_steps=4),
    dict(first_cycle_steps=7, t_mul=1.1, warmup_steps=1),
    dict(first_cycle_steps=40, t_mul=0.75),  # shrinking cycles, limit 160
    dict(first_cycle_steps=1, t_mul=0.5),
]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_every_step_matches_loop_reference(config):
    steps = 600
    etas, cycles, lengths = reference.schedule_reference(steps, **config)
    schedule = CosineWarmRestarts(2.0, **config)
    index, _, length = schedule.cycle_position(np.arange(steps))
    np.testing.assert_array_equal(index, cycles)
    np.testing.assert_allclose(length, lengths, rtol=1e-6)
    np.testing.assert_allclose(schedule(np.arange(steps)), 2.0 * np.array(etas),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose([schedule.multiplier(t) for t in range(steps)],
                               etas, rtol=1e-12, atol=1e-12)
    assert [schedule.cycle_index(t) for t in range(steps)] == cycles


@pytest.mark.parametrize("t_mul", [1.0, 1.5, 2.0, 3.0])
def test_every_boundary_exact_for_first_cycle_steps_1_to_200(t_mul):
    for first_cycle_steps in range(1, 201):
        schedule = CosineWarmRestarts(1.0, first_cycle_steps, t_mul=t_mul)
        ends = reference.restart_reference(40, first_cycle_steps, t_mul)
        ends = [end for end in ends if end < 2**31 - 2]
        assert schedule.restart_steps(len(ends)) == ends
        steps = sorted({s for end in ends for s in (end - 1, end, end + 1)})
        expected = [reference.cycle_reference(s, first_cycle_steps, t_mul) for s in steps]
        index, fraction, _ = schedule.cycle_position(np.array(steps))
        assert list(np.asarray(index)) == [i for i, _ in expected], first_cycle_steps
        np.testing.assert_allclose(fraction, [f for _, f in expected], atol=2e-6)
        eta = [0.5 * (1 + math.cos(math.pi * f)) for _, f in expected]
        np.testing.assert_allclose(schedule(np.array(steps)), eta, atol=1e-5)


@pytest.mark.parametrize("first_cycle_steps,t_mul", [
    (1, 2.0), (1, 1.5), (3, 3.0), (7, 1.0), (1000, 2.0), (13, 1.25)])
def test_far_steps_near_2_24_and_2_31(first_cycle_steps, t_mul):
    ends = reference.restart_reference(80, first_cycle_steps, t_mul)
    near = [e for e in ends if 2**23 < e < 2**31 - 1][:6]
    steps = sorted({s for e in near for s in (e - 1, e, e + 1)}
                   | {2**24 - 1, 2**24, 2**24 + 1, 2**31 - 2, 2**31 - 1})
    schedule = CosineWarmRestarts(1.0, first_cycle_steps, t_mul=t_mul)
    expected = [reference.cycle_reference(s, first_cycle_steps, t_mul) for s in steps]
    index, fraction, _ = schedule.cycle_position(np.array(steps, "int64"))
    assert list(np.asarray(index)) == [i for i, _ in expected]
    np.testing.assert_allclose(fraction, [f for _, f in expected], atol=1e-5)
    assert [schedule.cycle_index(s) for s in steps] == [i for i, _ in expected]


def test_equals_keras_cosine_decay_restarts_where_keras_is_right():
    for kwargs in [dict(t_mul=2.0, m_mul=0.9, alpha=0.1), dict(t_mul=1.0),
                   dict(t_mul=1.5, alpha=0.3)]:
        ours = CosineWarmRestarts(0.5, 20, **kwargs)
        theirs = keras.optimizers.schedules.CosineDecayRestarts(0.5, 20, **kwargs)
        steps = np.arange(0, 3000, 7)
        np.testing.assert_allclose(ours(steps), [float(theirs(s)) for s in steps],
                                   rtol=1e-4, atol=1e-6)


def test_keras_float32_log_misplaces_step_8191_we_do_not():
    ours = CosineWarmRestarts(1.0, 1, t_mul=2.0)
    assert ours.cycle_index(8191) == 13 and float(ours(8191)) == 1.0
    assert ours.restart_steps(13)[-1] == 8191


def test_warmup_then_first_cycle():
    schedule = CosineWarmRestarts(1.0, 4, warmup_steps=4)
    np.testing.assert_allclose(schedule(np.arange(10)),
                               [0, 0.25, 0.5, 0.75, 1.0, 0.853553, 0.5, 0.146447, 1.0, 0.961940],
                               atol=1e-6)
    assert schedule.restart_steps(3) == [8, 16, 32]


def test_shrinking_cycles_end_at_the_floor():
    schedule = CosineWarmRestarts(1.0, 1, t_mul=0.5, alpha=0.25)
    np.testing.assert_allclose(schedule(np.arange(5)), [1.0, 1.0, 0.25, 0.25, 0.25])
    assert not np.isnan(float(schedule(10**6)))


@pytest.mark.parametrize("mode", ["function", "xla"])
def test_eager_function_and_xla_agree(mode):
    schedule = CosineWarmRestarts(0.1, 3, t_mul=1.5, m_mul=0.7, alpha=0.05, warmup_steps=2)
    steps = tf.range(0, 5000, dtype="int64")
    compiled = tf.function(
        lambda s: (schedule(s), schedule.cycle_position(s)[0]), jit_compile=(mode == "xla"))
    rates, index = compiled(steps)
    np.testing.assert_array_equal(index, schedule.cycle_position(steps)[0])
    # XLA's cosine may differ from TensorFlow's in the last bit.
    np.testing.assert_allclose(rates, schedule(steps), rtol=1e-6, atol=1e-8)
    scalar = tf.function(schedule, jit_compile=(mode == "xla"))
    for step in [0, 1, 2, 3, 4, 7, 8, 4999]:
        assert float(scalar(tf.constant(step, "int64"))) == pytest.approx(
            float(schedule(step)), rel=1e-6)


def test_python_helpers():
    schedule = CosineWarmRestarts(1.0, 10, t_mul=2.0)
    assert schedule.restart_steps(4) == [10, 30, 70, 150]
    assert [schedule.cycle_index(s) for s in (0, 9, 10, 29, 30)] == [0, 0, 1, 1, 2]
    assert schedule.cycle_length(3) == 80.0
    assert schedule.multiplier(30) == 1.0 and schedule.multiplier(5) == pytest.approx(0.5)
    assert CosineWarmRestarts(1.0, 2, t_mul=1.5).cycle_length(2) == 4.5


def test_config_round_trip():
    schedule = CosineWarmRestarts(0.3, 11, t_mul=1.5, m_mul=0.9, alpha=0.1,
                                  warmup_steps=5, name="sgdr")
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule))
    assert isinstance(restored, CosineWarmRestarts)
    assert restored.get_config() == schedule.get_config()
    steps = np.arange(200)
    np.testing.assert_array_equal(restored(steps), schedule(steps))
