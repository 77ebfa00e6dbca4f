"""Cosine annealing with warm restarts (SGDR), exact at every restart."""

import bisect
import functools
import math
from fractions import Fraction

import keras
import numpy as np
from keras import ops

from keras_adamwr._checks import check_number

# Restart boundaries are tabulated exactly for every step a 32-bit counter
# can hold; the JAX backend's iteration counter is int32.
MAX_EXACT_STEP = 2**31 - 1
_MAX_CYCLES = 20_000


@functools.lru_cache(maxsize=64)
def _cycle_table(first_cycle_steps, t_mul):
    """Exact starts of the cycles that begin at steps <= `MAX_EXACT_STEP`.

    Cycle i starts at the real number S_i = T_0 * (1 + t + ... + t^(i-1)),
    kept as the exact fraction N_i / q^i (t = p / q is the float's exact
    binary value), so no rounding can put a step in the wrong cycle.

    Returns numpy arrays `(starts, offsets, lengths, end)`: `starts[i]` is
    ceil(S_i), the first integer step of cycle i; `offsets[i]` is
    ceil(S_i) - S_i; `lengths[i]` is T_0 * t^i; `end` is the first integer
    step past every cycle (t_mul < 1, where the cycles shrink to a limit),
    else None.
    """
    p, q = Fraction(t_mul).numerator, Fraction(t_mul).denominator
    # Cost grows with the square of the count: refuse hopeless cases early.
    if p < q:
        limit_point = Fraction(first_cycle_steps * q, q - p)  # T_0 / (1 - t)
        end = math.ceil(limit_point)
        limit = end - 1
        # Cycle i starts past `limit` once t^i < (limit_point - limit) / limit_point.
        estimate = math.log(limit_point / (limit_point - limit))
    else:
        end, limit = None, MAX_EXACT_STEP
        estimate = math.log(limit * (t_mul - 1) / first_cycle_steps + 1)
    if estimate / abs(math.log(t_mul)) > _MAX_CYCLES:
        _too_many_cycles(first_cycle_steps, t_mul, limit)
    starts, offsets, lengths = [], [], []
    numerator, p_power, q_power = 0, 1, 1  # S_i = numerator / q_power
    while True:
        start = -((-numerator) // q_power)
        if start > limit:
            break
        if len(starts) == _MAX_CYCLES:
            _too_many_cycles(first_cycle_steps, t_mul, limit)
        starts.append(start)
        offsets.append((start * q_power - numerator) / q_power)
        lengths.append(first_cycle_steps * p_power / q_power)
        numerator = (numerator + first_cycle_steps * p_power) * q
        p_power, q_power = p_power * p, q_power * q
    return (
        np.array(starts, dtype="int64"),
        np.array(offsets, dtype="float64"),
        np.array(lengths, dtype="float64"),
        end,
    )


def _too_many_cycles(first_cycle_steps, t_mul, limit):
    raise ValueError(
        "Argument `t_mul` must be 1, or far enough from 1 that fewer than "
        f"{_MAX_CYCLES} cycles start before step {limit}. Received: "
        f"t_mul={t_mul} (with first_cycle_steps={first_cycle_steps})"
    )


@keras.saving.register_keras_serializable(package="keras_adamwr")
class CosineWarmRestarts(keras.optimizers.schedules.LearningRateSchedule):
    """Cosine annealing with warm restarts (SGDR), with optional warm-up.

    After `warmup_steps` steps of linear warm-up from 0, the learning rate
    follows cycles i = 0, 1, 2, ... of length `T_i = first_cycle_steps *
    t_mul**i` steps:

    ```
    eta_t = alpha + (1 - alpha) * m_mul**i * 0.5 * (1 + cos(pi * T_cur / T_i))
    lr_t  = initial_learning_rate * eta_t
    ```

    with `T_cur` the steps since the start of cycle i. This is the SGDR
    schedule of Loshchilov & Hutter with `eta_max = initial_learning_rate`,
    `eta_min = alpha * initial_learning_rate`, and it equals
    `keras.optimizers.schedules.CosineDecayRestarts(initial_learning_rate,
    first_cycle_steps, t_mul, m_mul, alpha)` shifted by `warmup_steps`,
    except that here every integer step up to 2**31 - 1 lands in the right
    cycle for any `t_mul > 0` (cycle starts are tabulated exactly at
    construction; Keras computes them with a float32 `log`). With
    `t_mul < 1` the cycles shrink towards step `first_cycle_steps / (1 -
    t_mul)`; from there on the rate stays at the floor (Keras returns NaN).
    During warm-up, `lr_t = initial_learning_rate * step / warmup_steps`.

    Steps are counts of weight updates. To think in epochs, pass
    `first_cycle_steps = steps_per_epoch * first_cycle_epochs`.

    Args:
        initial_learning_rate: The peak rate `alpha` of the paper (the rate
            at the start of the first cycle), a float > 0.
        first_cycle_steps: Length `T_0` of the first cycle, an integer >= 1.
        t_mul: Factor `T_mult` by which each cycle is longer than the
            last, `> 0`. Defaults to `2.0`.
        m_mul: Factor by which each cycle's peak (above the floor)
            shrinks, `>= 0`. Defaults to `1.0`.
        alpha: Floor of the rate as a fraction of `initial_learning_rate`,
            in [0, 1]. Defaults to `0.0`.
        warmup_steps: Steps of linear warm-up before the first cycle, an
            integer >= 0. Defaults to `0`.
        name: Optional name. Defaults to `"CosineWarmRestarts"`.

    Examples:

        >>> schedule = CosineWarmRestarts(1e-3, first_cycle_steps=10)
        >>> schedule.restart_steps(4)
        [10, 30, 70, 150]
        >>> optimizer = keras_adamwr.AdamW(learning_rate=schedule)

    References:
        Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm
        Restarts", ICLR 2017, https://arxiv.org/abs/1608.03983; "Decoupled
        Weight Decay Regularization", ICLR 2019,
        https://arxiv.org/abs/1711.05101.
    """

    def __init__(
        self,
        initial_learning_rate,
        first_cycle_steps,
        t_mul=2.0,
        m_mul=1.0,
        alpha=0.0,
        warmup_steps=0,
        name=None,
    ):
        super().__init__()
        self.initial_learning_rate = check_number(
            "initial_learning_rate", initial_learning_rate, 0, None, False
        )
        self.first_cycle_steps = check_number(
            "first_cycle_steps", first_cycle_steps, 1, integer=True
        )
        self.t_mul = check_number("t_mul", t_mul, 0, None, False)
        self.m_mul = check_number("m_mul", m_mul, 0)
        self.alpha = check_number("alpha", alpha, 0, 1)
        self.warmup_steps = check_number(
            "warmup_steps", warmup_steps, 0, integer=True
        )
        self.name = name or "CosineWarmRestarts"
        if self.t_mul != 1.0:
            self._table = _cycle_table(self.first_cycle_steps, self.t_mul)

    # In-graph evaluation (keras.ops only: eager, tf.function, XLA, JAX).

    def cycle_position(self, step):
        """Tensors `(cycle_index, fraction, cycle_length)` at `step`.

        `fraction` is `T_cur / T_i` in [0, 1]; warm-up steps report cycle 0
        at fraction 0. Usable inside compiled functions.
        """
        step = ops.convert_to_tensor(step)
        if "int" not in keras.backend.standardize_dtype(step.dtype):
            step = ops.floor(step)
        if self.t_mul == 1.0:
            step = ops.cast(step, "int32" if _is_jax() else "int64")
            cycle_steps = ops.maximum(step - self.warmup_steps, 0)
            index = ops.floor_divide(cycle_steps, self.first_cycle_steps)
            inside = cycle_steps - index * self.first_cycle_steps
            length = ops.full_like(ops.cast(step, "float32"), self.first_cycle_steps)
            fraction = ops.cast(inside, "float32") / length
            return index, fraction, length
        starts, offsets, lengths, end = self._table
        starts = ops.convert_to_tensor(starts, "int32" if _is_jax() else "int64")
        step = ops.cast(step, starts.dtype)
        cycle_steps = ops.maximum(step - self.warmup_steps, 0)
        index = ops.sum(
            ops.cast(ops.expand_dims(cycle_steps, -1) >= starts, "int32"), -1
        ) - 1
        inside = ops.cast(cycle_steps - ops.take(starts, index), "float32")
        length = ops.take(ops.convert_to_tensor(lengths, "float32"), index)
        offset = ops.take(ops.convert_to_tensor(offsets, "float32"), index)
        fraction = ops.minimum((inside + offset) / length, 1.0)
        if end is not None:
            fraction = ops.where(cycle_steps >= end, 1.0, fraction)
        return index, fraction, length

    def multiplier_tensor(self, step):
        """`eta_t` at `step` as a float32 tensor (`multiplier` in-graph)."""
        index, fraction, _ = self.cycle_position(step)
        peak = ops.power(
            ops.cast(self.m_mul, "float32"), ops.cast(index, "float32")
        )
        cosine = 0.5 * peak * (1.0 + ops.cos(math.pi * fraction))
        eta = (1.0 - self.alpha) * cosine + self.alpha
        if self.warmup_steps:
            float_step = ops.cast(step, "float32")
            warm = float_step / self.warmup_steps
            eta = ops.where(float_step < self.warmup_steps, warm, eta)
        return eta

    def __call__(self, step):
        return self.initial_learning_rate * self.multiplier_tensor(step)

    # Plain Python: the same maths for callbacks, examples and plots.

    def cycle_index(self, step):
        """Index of the cycle that `step` (an int) belongs to; 0 in warm-up."""
        steps = max(int(step) - self.warmup_steps, 0)
        if self.t_mul == 1.0:
            return steps // self.first_cycle_steps
        return bisect.bisect_right(self._table[0], steps) - 1

    def cycle_length(self, index):
        """Length `T_i` of cycle `index`, in steps (a float)."""
        return float(self.first_cycle_steps * Fraction(self.t_mul) ** index)

    def restart_steps(self, count):
        """Steps at which the first `count` cycles end, as a list of ints.

        Entry i is the number of weight updates done when cycle i is over
        (and cycle i + 1 starts), warm-up included.
        """
        count = check_number("count", count, 0, integer=True)
        if self.t_mul == 1.0:
            return [
                self.warmup_steps + self.first_cycle_steps * (i + 1)
                for i in range(count)
            ]
        t_mul, total, ends = Fraction(self.t_mul), Fraction(0), []
        for index in range(count):
            total += self.first_cycle_steps * t_mul**index
            ends.append(self.warmup_steps + math.ceil(total))
        return ends

    def multiplier(self, step):
        """The schedule multiplier `eta_t` (rate / peak rate) at `step`."""
        step = int(step)
        if step < self.warmup_steps:
            return step / self.warmup_steps
        index = self.cycle_index(step)
        steps = step - self.warmup_steps
        if self.t_mul == 1.0:
            fraction = (steps % self.first_cycle_steps) / self.first_cycle_steps
        else:
            starts, offsets, lengths, end = self._table
            inside = steps - int(starts[index]) + float(offsets[index])
            fraction = min(inside / float(lengths[index]), 1.0)
            if end is not None and steps >= end:
                fraction = 1.0
        cosine = 0.5 * self.m_mul**index * (1.0 + math.cos(math.pi * fraction))
        return (1.0 - self.alpha) * cosine + self.alpha

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_cycle_steps": self.first_cycle_steps,
            "t_mul": self.t_mul,
            "m_mul": self.m_mul,
            "alpha": self.alpha,
            "warmup_steps": self.warmup_steps,
            "name": self.name,
        }


def _is_jax():
    return keras.backend.backend() == "jax"
