"""CosineWarmRestarts against the step-by-step loop of the paper."""

import math
from fractions import Fraction

import keras
import numpy as np
import pytest
try:
    import tensorflow as tf
except ImportError:  # other backends: the tests that use it are skipped (conftest.py)
    tf = None

import keras_adamwr
from keras_adamwr import CosineWarmRestarts
from tests import reference

CONFIGS = [
    dict(first_cycle_steps=1, t_mul=2.0),
    dict(first_cycle_steps=3, t_mul=1.5, m_mul=0.8, min_lr_ratio=0.1),
    dict(first_cycle_steps=10, t_mul=1.0, min_lr_ratio=0.2),
    dict(first_cycle_steps=5, t_mul=3.0, m_mul=0.5, warmup_steps=4),
    dict(first_cycle_steps=7, t_mul=1.1, warmup_steps=1),
    dict(first_cycle_steps=40, t_mul=0.75),  # shrinking cycles, limit 160
    dict(first_cycle_steps=1, t_mul=0.5),
    dict(first_cycle_steps=5, t_mul=2.0, cycle_limit=3, min_lr_ratio=0.1),
    dict(first_cycle_steps=6, t_mul=1.0, cycle_limit=4, warmup_steps=5,
         warmup_start_ratio=0.2),
    dict(first_cycle_steps=4, t_mul=1.5, m_mul=0.5, cycle_limit=7, warmup_steps=3,
         warmup_start_ratio=0.5),
    dict(first_cycle_steps=40, t_mul=0.75, cycle_limit=5),
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
    if tf is None:
        return  # the XLA check below is TensorFlow's
    compiled = tf.function(lambda s: (schedule(s), schedule.cycle_position(s)[0]),
                           jit_compile=True)
    rates, index = compiled(tf.range(steps, dtype="int64"))
    np.testing.assert_array_equal(index, cycles)
    np.testing.assert_allclose(rates, 2.0 * np.array(etas), rtol=1e-6, atol=1e-6)


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
    schedule = CosineWarmRestarts(1.0, 1, t_mul=0.5, min_lr_ratio=0.25)
    np.testing.assert_allclose(schedule(np.arange(5)), [1.0, 1.0, 0.25, 0.25, 0.25])
    assert not np.isnan(float(schedule(10**6)))


@pytest.mark.parametrize("mode", ["function", "xla"])
def test_eager_function_and_xla_agree(mode):
    schedule = CosineWarmRestarts(0.1, 3, t_mul=1.5, m_mul=0.7, min_lr_ratio=0.05,
                                  warmup_steps=2)
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
    schedule = CosineWarmRestarts(0.3, 11, t_mul=1.5, m_mul=0.9, min_lr_ratio=0.1,
                                  warmup_steps=5, name="sgdr")
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule))
    assert isinstance(restored, CosineWarmRestarts)
    assert restored.get_config() == schedule.get_config()
    steps = np.arange(200)
    np.testing.assert_array_equal(restored(steps), schedule(steps))


def test_keras_names_are_aliases():
    ours = CosineWarmRestarts(0.5, first_decay_steps=20, alpha=0.1)
    assert ours.first_cycle_steps == 20 and ours.min_lr_ratio == 0.1 == ours.alpha
    assert ours.get_config() == CosineWarmRestarts(0.5, 20, min_lr_ratio=0.1).get_config()


# Cycles in epochs.

def test_batches_per_epoch_counts_as_keras():
    assert keras_adamwr.batches_per_epoch(50_000, 128) == 391
    assert keras_adamwr.batches_per_epoch(50_000, 128, drop_remainder=True) == 390
    assert keras_adamwr.batches_per_epoch(256, 128) == 2
    assert keras_adamwr.batches_per_epoch(256, 128, drop_remainder=True) == 2
    x = np.zeros((50_000, 1), "float32")
    data = tf.data.Dataset.from_tensor_slices(x).batch(128)
    assert int(data.cardinality()) == keras_adamwr.batches_per_epoch(50_000, 128)
    dropped = tf.data.Dataset.from_tensor_slices(x).batch(128, drop_remainder=True)
    assert int(dropped.cardinality()) == keras_adamwr.batches_per_epoch(
        50_000, 128, drop_remainder=True)


def test_readme_example_restarts_at_epochs_1_3_7_15_31_and_ends_at_the_floor():
    # The README's headline: 50,000 examples, batch 128, 31 epochs.
    steps_per_epoch = keras_adamwr.batches_per_epoch(50_000, 128)
    optimizer = keras_adamwr.AdamWR(
        learning_rate=1e-3, first_cycle_epochs=1, steps_per_epoch=steps_per_epoch,
        normalized_weight_decay=0.025, exclude_from_weight_decay=["bias", "gamma", "beta"])
    schedule = optimizer.schedule
    assert schedule.restart_steps(5) == [e * 391 for e in (1, 3, 7, 15, 31)]
    assert schedule.cycle_end_epochs(31) == [1.0, 3.0, 7.0, 15.0, 31.0]
    assert schedule.cycle_end_epochs(40) == [1.0, 3.0, 7.0, 15.0, 31.0]
    last = 31 * 391 - 1  # the last update of a 31-epoch run (0-based)
    # The lowest rate of the last cycle (cos(pi * 6255 / 6256) = -1 + 6e-8):
    # the SGDR floor up to the float32 cosine. The next update would restart.
    assert schedule.multiplier(last) == pytest.approx(schedule.min_lr_ratio, abs=1e-7)
    assert float(schedule.multiplier_tensor(last)) == pytest.approx(0.0, abs=1e-7)
    assert float(optimizer.decay_coefficient(step=last)) == pytest.approx(0.0, abs=1e-10)
    assert schedule.cycle_index(last) == 4 and schedule.multiplier(last + 1) == 1.0
    cycle = np.arange(15 * 391, 31 * 391)
    assert np.argmin(np.asarray(schedule.multiplier_tensor(cycle))) == len(cycle) - 1
    # Counting 390 batches per epoch (50_000 // 128), as the README did,
    # puts the restarts inside epochs 1, 3, 7, 15 and 31 instead.
    drifted = keras_adamwr.CosineWarmRestarts(1e-3, first_cycle_steps=50_000 // 128)
    assert [end / 391 for end in drifted.restart_steps(5)] != [1, 3, 7, 15, 31]


def test_epochs_are_steps_times_steps_per_epoch():
    in_epochs = CosineWarmRestarts(1.0, first_cycle_epochs=2.5, steps_per_epoch=4,
                                   warmup_epochs=0.5, t_mul=1.5)
    in_steps = CosineWarmRestarts(1.0, first_cycle_steps=10, warmup_steps=2, t_mul=1.5)
    assert (in_epochs.first_cycle_steps, in_epochs.warmup_steps) == (10, 2)
    steps = np.arange(300)
    np.testing.assert_array_equal(in_epochs(steps), in_steps(steps))
    # 0.1 epochs is one tenth of an epoch, not the float's binary value.
    assert CosineWarmRestarts(1.0, first_cycle_epochs=0.1, steps_per_epoch=390
                              ).first_cycle_steps == 39
    # Fractional updates per epoch (gradient accumulation): 97.5 * 10 = 975.
    assert CosineWarmRestarts(1.0, first_cycle_epochs=10, steps_per_epoch=97.5
                              ).first_cycle_steps == 975
    assert CosineWarmRestarts(1.0, 10, steps_per_epoch=4, t_mul=1.5).cycle_end_epochs(
        10) == [2.5, 6.25]


# Budgets that end at the floor.

def test_cycle_limit_stays_at_the_floor_like_timm():
    schedule = CosineWarmRestarts(1.0, 5, t_mul=2.0, min_lr_ratio=0.1, cycle_limit=2)
    assert schedule.restart_steps(4) == [5, 15, 15, 15]
    etas, cycles, _ = reference.schedule_reference(40, 5, 2.0, min_lr_ratio=0.1, cycle_limit=2)
    assert etas[15:] == [0.1] * 25 and cycles[15:] == [1] * 25
    np.testing.assert_allclose(schedule(np.arange(15, 10**6, 997)), 0.1, rtol=1e-6)
    assert schedule.multiplier(10**18) == pytest.approx(0.1)
    assert schedule.cycle_end_epochs(100, steps_per_epoch=1) == [5.0, 15.0]
    equal = CosineWarmRestarts(1.0, 4, t_mul=1.0, cycle_limit=3)
    assert equal.restart_steps(5) == [4, 8, 12, 12, 12]
    far = 2**31 - 1 if keras.backend.backend() == "jax" else 10**12  # JAX: int32 counter
    assert float(equal(12)) == 0.0 and float(equal(far)) == 0.0
    assert equal.cycle_index(10**12) == 2


def test_warmup_start_ratio_ramps_from_the_given_fraction():
    schedule = CosineWarmRestarts(2.0, 4, warmup_steps=4, warmup_start_ratio=0.2)
    np.testing.assert_allclose(schedule(np.arange(5)), [0.4, 0.8, 1.2, 1.6, 2.0], rtol=1e-6)
    assert [schedule.multiplier(s) for s in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


# Far steps: the TensorFlow counter is int64.

def _exact_eta(step, first_cycle_steps, t_mul):
    index, fraction = reference.cycle_reference(step, first_cycle_steps, t_mul)
    return index, 0.5 * (1 + math.cos(math.pi * fraction))


def test_step_2_32_is_not_flat():
    schedule = CosineWarmRestarts(1.0, 10)
    index, eta = _exact_eta(2**32, 10, 2.0)
    assert (index, round(eta, 3)) == (28, 0.345)
    assert float(schedule(tf.constant(2**32, "int64"))) == pytest.approx(eta, rel=1e-6)
    assert schedule.cycle_index(2**32) == index
    assert schedule.multiplier(2**32) == pytest.approx(eta, rel=1e-9)
    assert schedule.restart_steps(29) == reference.restart_reference(29, 10, 2.0)


@pytest.mark.parametrize("first_cycle_steps,t_mul", [
    (10, 2.0), (1, 2.0), (3, 1.5), (7, 1.1), (13, 1.25), (1000, 3.0), (5, 1.0)])
def test_every_boundary_past_2_31_up_to_2_63(first_cycle_steps, t_mul):
    count = 200 if t_mul == 1.0 else 5 + int(
        math.log(2**63 * (t_mul - 1) / first_cycle_steps + 1) / math.log(t_mul))
    ends = reference.restart_reference(count, first_cycle_steps, t_mul)
    far = [e for e in ends if 2**31 <= e < 2**63 - 1][::4][:12] + [2**31, 2**40, 2**62]
    steps = sorted({s for e in far for s in (e - 1, e, e + 1)} | {2**63 - 1})
    expected = [reference.cycle_reference(s, first_cycle_steps, t_mul) for s in steps]
    schedule = CosineWarmRestarts(1.0, first_cycle_steps, t_mul=t_mul)
    compiled = tf.function(schedule.cycle_position, jit_compile=True)
    for index, fraction, _ in [schedule.cycle_position(np.array(steps, "int64")),
                               compiled(tf.constant(steps, "int64"))]:
        assert list(np.asarray(index)) == [i for i, _ in expected]
        np.testing.assert_allclose(fraction, [f for _, f in expected], atol=1e-5)
    assert [schedule.cycle_index(s) for s in steps] == [i for i, _ in expected]
    if t_mul != 1.0:
        count = len([e for e in ends if e <= 2**63 - 1]) + 3
        assert schedule.restart_steps(count) == ends[:count]


def test_adamwr_at_iteration_2_40_updates_and_decays():
    step = 2**40
    optimizer = keras_adamwr.AdamWR(1e-2, first_cycle_steps=10, normalized_weight_decay=0.5)
    theta, gradient = np.array([1.0, -2.0], "float32"), np.array([0.5, 0.25], "float32")
    variable = keras.Variable(theta)
    optimizer.build([variable])
    optimizer.iterations.assign(step)
    optimizer.apply([gradient], [variable])
    index, eta = _exact_eta(step, 10, 2.0)
    length = float(10 * 2**index)
    expected = reference.adamw_reference(
        theta, [gradient], [eta], [0.5 / math.sqrt(length)], 1e-2)[0]
    # (t = 1 in the reference; at t = 2**40 + 1 the bias corrections are 1.)
    m_hat, v_hat = 0.1 * gradient, 0.001 * gradient**2
    expected = theta - eta * (1e-2 * m_hat / (np.sqrt(v_hat) + 1e-8)
                              + 0.5 / math.sqrt(length) * theta)
    assert 0.1 < eta < 0.9
    np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-6)
    assert not np.allclose(variable.numpy(), theta)


# Cheap tables for t_mul near 1 (no timing: count the exact-fraction work).

def test_table_near_t_mul_1_is_exact_without_exact_fractions(monkeypatch):
    from keras_adamwr.schedules import _cycle_table

    calls = []
    original = _cycle_table.CycleStarts._exact_start
    monkeypatch.setattr(_cycle_table.CycleStarts, "_exact_start",
                        lambda self, i: calls.append(i) or original(self, i))
    cycles = _cycle_table.CycleStarts(1, 1.0006)
    cycles.extend(60_000)
    assert cycles.starts[-1] > 2**62  # a table to 2**63 - 1 in 60,435 cycles
    assert len(calls) <= 2
    t, total = Fraction(1.0006), Fraction(0)
    for index in range(120):
        assert cycles.starts[index] == math.ceil(total)
        total += t**index
    for index in (1000, 29_999, 59_999):
        exact = (t**index - 1) / (t - 1)
        assert cycles.starts[index] == math.ceil(exact)
        assert cycles.offsets[index] == pytest.approx(float(math.ceil(exact) - exact), abs=1e-12)
    schedule = CosineWarmRestarts(1.0, 1, t_mul=1.0006)
    assert schedule.restart_steps(2048) == cycles.starts[1:2049]


@pytest.mark.parametrize("t_mul", [1.5, 1.1, 0.75, 1.25])
def test_exact_fallback_decides_where_the_interval_cannot(monkeypatch, t_mul):
    from keras_adamwr.schedules import _cycle_table

    # With 4 fraction bits most intervals straddle an integer: the exact
    # closed form then decides, and must agree with the reference.
    monkeypatch.setattr(_cycle_table, "_FRACTION_BITS", 4)
    calls = []
    original = _cycle_table.CycleStarts._exact_start
    monkeypatch.setattr(_cycle_table.CycleStarts, "_exact_start",
                        lambda self, i: calls.append(i) or original(self, i))
    cycles = _cycle_table.CycleStarts(7, t_mul)
    cycles.extend(40)
    assert len(calls) > 5
    assert cycles.starts[1:] == reference.restart_reference(39, 7, t_mul)


def test_restart_steps_far_past_the_int64_counter_return_fast(monkeypatch):
    # Issue 16: t_mul=1.0006 took 1.1 s at n=180,000 and hung at 200,000:
    # past ~2**96 the table's intervals straddled integers at every cycle
    # and each took the exact closed form (t**i as a fraction, ~1 s).
    from keras_adamwr.schedules import _cycle_table

    calls = []
    original = _cycle_table.CycleStarts._exact_start
    monkeypatch.setattr(_cycle_table.CycleStarts, "_exact_start",
                        lambda self, i: calls.append(i) or original(self, i))
    cycles = _cycle_table.CycleStarts(64, 1.0006)
    cycles.extend(200_001)
    assert len(calls) <= 2
    assert cycles.starts[-1].bit_length() > 180
    t = Fraction(1.0006)
    for index in (92_000, 150_000):  # past the first precision increase
        exact = 64 * (t**index - 1) / (t - 1)
        assert cycles.starts[index] == math.ceil(exact)
        assert cycles.offsets[index] == pytest.approx(
            float(math.ceil(exact) - exact), abs=1e-9)
    schedule = CosineWarmRestarts(1e-3, first_cycle_steps=64, t_mul=1.0006)
    ends = schedule.restart_steps(200_000)
    assert ends == cycles.starts[1:200_001]
