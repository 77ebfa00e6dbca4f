"""Cosine annealing with warm restarts (SGDR), exact at every restart."""

import bisect
import math
import numbers
from fractions import Fraction

import keras
import numpy as np
from keras import ops

from keras_adamwr._checks import check_foreign_arguments
from keras_adamwr._checks import check_number
from keras_adamwr.schedules._cycle_table import MAX_STEP
from keras_adamwr.schedules._cycle_table import cycle_starts
from keras_adamwr.schedules._cycle_table import cycle_table

_INT32_MAX = 2**31 - 1


def batches_per_epoch(num_examples, batch_size, drop_remainder=False):
    """Weight updates per epoch as Keras counts them.

    `ceil(num_examples / batch_size)`: Keras runs a last, smaller batch;
    `floor` with `drop_remainder=True` (`tf.data`'s
    `batch(..., drop_remainder=True)`). Pass it as `steps_per_epoch` (divided
    by `gradient_accumulation_steps` if you accumulate gradients).

    Examples:

        >>> batches_per_epoch(50_000, 128)
        391
        >>> batches_per_epoch(50_000, 128, drop_remainder=True)
        390
    """
    num_examples = check_number("num_examples", num_examples, 1, integer=True)
    batch_size = check_number("batch_size", batch_size, 1, integer=True)
    if not isinstance(drop_remainder, (bool, np.bool_)):
        raise TypeError(
            "Argument `drop_remainder` must be a bool. "
            f"Received: drop_remainder={drop_remainder!r}"
        )
    if drop_remainder:
        if num_examples < batch_size:
            raise ValueError(
                "Argument `batch_size` must be <= num_examples with "
                "drop_remainder=True (else an epoch has no batch). "
                f"Received: batch_size={batch_size}, num_examples={num_examples}"
            )
        return num_examples // batch_size
    return -(-num_examples // batch_size)


def _exact(value):
    """The rational a user meant: 0.1 is 1/10, not the float's binary value."""
    return Fraction(repr(float(value))) if isinstance(value, float) else Fraction(value)


def _resolve_steps(kind, steps, epochs, steps_per_epoch, minimum, required):
    """Steps from `<kind>_steps` or `<kind>_epochs * steps_per_epoch`."""
    steps_name, epochs_name = f"{kind}_steps", f"{kind}_epochs"
    if steps is not None and epochs is not None:
        raise ValueError(
            f"Arguments `{steps_name}` and `{epochs_name}` are mutually "
            f"exclusive: give the length in steps or in epochs. Received: "
            f"{steps_name}={steps!r}, {epochs_name}={epochs!r}"
        )
    if epochs is None:
        if steps is None:
            if required:
                raise ValueError(
                    f"Argument `{steps_name}` (or `{epochs_name}` with "
                    f"`steps_per_epoch`) must be given: the length of the "
                    f"first cycle, >= 1. Received: {steps_name}=None, "
                    f"{epochs_name}=None"
                )
            return 0
        return check_number(steps_name, steps, minimum, MAX_STEP, integer=True)
    epochs = check_number(epochs_name, epochs, 0, None, minimum == 0)
    if steps_per_epoch is None:
        raise ValueError(
            f"Argument `steps_per_epoch` must be given with `{epochs_name}` "
            f"(see `keras_adamwr.batches_per_epoch`). Received: "
            f"steps_per_epoch=None, {epochs_name}={epochs!r}"
        )
    exact = _exact(epochs) * _exact(steps_per_epoch)
    if exact.denominator != 1:
        raise ValueError(
            f"Argument `{epochs_name}` times `steps_per_epoch` must be a whole "
            f"number of steps (restarts fall between two updates only at "
            f"whole steps). Received: {epochs_name}={epochs!r}, steps_per_epoch="
            f"{steps_per_epoch!r} ({float(exact)} steps); pass `{steps_name}="
            f"{math.floor(exact)}` or `{math.ceil(exact)}` instead"
        )
    if not minimum <= exact <= MAX_STEP:
        raise ValueError(
            f"Argument `{epochs_name}` times `steps_per_epoch` must be in "
            f"[{minimum}, {MAX_STEP}] steps. Received: {epochs_name}={epochs!r}, "
            f"steps_per_epoch={steps_per_epoch!r}"
        )
    return int(exact)


def _counter_tensor(step):
    """`step` as the backend's counter dtype, and that dtype's largest value
    (JAX's iteration counter is int32, TensorFlow's int64)."""
    jax = keras.backend.backend() == "jax"
    if isinstance(step, (int, np.integer)):  # Keras makes Python ints int32
        step = ops.convert_to_tensor(step, "int32" if jax else "int64")
    step = ops.convert_to_tensor(step)
    if "int" not in keras.backend.standardize_dtype(step.dtype):
        step = ops.floor(step)
    return ops.cast(step, "int32" if jax else "int64"), _INT32_MAX if jax else MAX_STEP


def _number(value):
    """A checked epoch count as a plain float (or None) for the config."""
    return None if value is None else float(value)


def _alias(name, value, alias, alias_value, default):
    if alias_value is not None:
        if value is not None:
            raise ValueError(
                f"Arguments `{name}` and `{alias}` (Keras' name) are the same: "
                f"give one. Received: {name}={value!r}, {alias}={alias_value!r}"
            )
        return alias_value
    return default if value is None else value


@keras.saving.register_keras_serializable(package="keras_adamwr")
class CosineWarmRestarts(keras.optimizers.schedules.LearningRateSchedule):
    """Cosine annealing with warm restarts (SGDR), with optional warm-up.

    After `warmup_steps` steps of linear warm-up, the learning rate follows
    cycles i = 0, 1, 2, ... of length `T_i = first_cycle_steps * t_mul**i`
    steps (floor `r = min_lr_ratio`):

    ```
    eta_t = r + (1 - r) * m_mul**i * 0.5 * (1 + cos(pi * T_cur / T_i))
    lr_t  = initial_learning_rate * eta_t
    ```

    with `T_cur` the steps since the start of cycle i. This is the SGDR
    schedule of Loshchilov & Hutter with `eta_max = initial_learning_rate`,
    `eta_min = min_lr_ratio * initial_learning_rate`; without warm-up it
    equals `keras.optimizers.schedules.CosineDecayRestarts(
    initial_learning_rate, first_cycle_steps, t_mul, m_mul, min_lr_ratio)`,
    except that here every step an int64 counter can hold lands in the
    right cycle (cycle starts are tabulated exactly; Keras uses a float32
    `log`). With `t_mul < 1` the cycles shrink towards step
    `first_cycle_steps / (1 - t_mul)`; from there on the rate stays at the
    floor (Keras returns NaN). After `cycle_limit` cycles it stays at the
    floor too. During warm-up `eta_t = s + (1 - s) * step / warmup_steps`
    with `s = warmup_start_ratio`.

    Lengths are in steps (weight updates), or in epochs with
    `steps_per_epoch`: `first_cycle_epochs * steps_per_epoch` must then be
    a whole number of steps (so is `warmup_epochs * steps_per_epoch`).

    Args:
        initial_learning_rate: The peak rate `alpha` of the paper (the rate
            at the start of the first cycle), a float > 0.
        first_cycle_steps: Length `T_0` of the first cycle in steps, an
            integer in [1, 2**63 - 1]. Give it or `first_cycle_epochs`.
            Keras' name `first_decay_steps` is accepted too.
        t_mul: Factor `T_mult` by which each cycle is longer than the
            last, `> 0`. Defaults to `2.0`.
        m_mul: Factor by which each cycle's peak (above the floor)
            shrinks, in [0, 1] (a growing peak would overflow to an
            infinite rate after finitely many cycles). Defaults to `1.0`.
        min_lr_ratio: Floor of the rate as a fraction of
            `initial_learning_rate`, in [0, 1] (Keras' `alpha`, accepted as
            an alias). Defaults to `0.0`.
        warmup_steps: Steps of linear warm-up before the first cycle, an
            integer in [0, 2**63 - 1]. Defaults to `0`.
        name: Optional name. Defaults to `"CosineWarmRestarts"`.
        steps_per_epoch: Weight updates per epoch, a number > 0 (see
            `batches_per_epoch`). Needed by the `*_epochs` arguments and
            `cycle_end_epochs`. Defaults to `None`.
        first_cycle_epochs: Length of the first cycle in epochs, > 0.
            Defaults to `None`.
        warmup_epochs: Warm-up in epochs, >= 0. Defaults to `None`.
        cycle_limit: Number of cycles, an integer >= 1; after the last one
            the rate stays at the floor (timm's `cycle_limit`). Defaults to
            `None` (no limit).
        warmup_start_ratio: The warm-up's first rate as a fraction of the
            peak, in [0, 1] (timm's `warmup_lr_init / lr`). Defaults to
            `0.0` (the first update then has rate 0).

    Examples:

        >>> steps_per_epoch = keras_adamwr.batches_per_epoch(50_000, 128)  # 391
        >>> schedule = CosineWarmRestarts(1e-3, first_cycle_epochs=1,
        ...                               steps_per_epoch=steps_per_epoch)
        >>> schedule.cycle_end_epochs(31)  # a 31-epoch run ends at the floor
        [1.0, 3.0, 7.0, 15.0, 31.0]
        >>> schedule.restart_steps(3)
        [391, 1173, 2737]
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
        first_cycle_steps=None,
        t_mul=2.0,
        m_mul=1.0,
        min_lr_ratio=None,
        warmup_steps=None,
        name=None,
        steps_per_epoch=None,
        first_cycle_epochs=None,
        warmup_epochs=None,
        cycle_limit=None,
        warmup_start_ratio=0.0,
        *,
        alpha=None,
        first_decay_steps=None,
        **kwargs,
    ):
        check_foreign_arguments("CosineWarmRestarts", kwargs, restarts=True, adam=False)
        if kwargs:
            raise TypeError(
                "CosineWarmRestarts() got an unexpected keyword argument "
                f"{next(iter(kwargs))!r}. Received: {kwargs!r}")
        super().__init__()
        self.initial_learning_rate = check_number(
            "initial_learning_rate", initial_learning_rate, 0, None, False
        )
        first_cycle_steps = _alias(
            "first_cycle_steps", first_cycle_steps, "first_decay_steps",
            first_decay_steps, None)
        min_lr_ratio = _alias("min_lr_ratio", min_lr_ratio, "alpha", alpha, 0.0)
        if steps_per_epoch is not None:
            steps_per_epoch = check_number("steps_per_epoch", steps_per_epoch, 0, None, False)
        self.steps_per_epoch = steps_per_epoch
        self._given = {
            "first_cycle_steps": first_cycle_steps,
            "warmup_steps": 0 if warmup_steps is None and warmup_epochs is None
            else warmup_steps,
        }
        self.first_cycle_steps = _resolve_steps(
            "first_cycle", first_cycle_steps, first_cycle_epochs, steps_per_epoch, 1, True)
        self.warmup_steps = _resolve_steps(
            "warmup", warmup_steps, warmup_epochs, steps_per_epoch, 0, False)
        self.first_cycle_epochs = _number(first_cycle_epochs)
        self.warmup_epochs = _number(warmup_epochs)
        self.t_mul = check_number("t_mul", t_mul, 0, None, False)
        self.m_mul = check_number("m_mul", m_mul, 0, 1)
        self.min_lr_ratio = check_number("min_lr_ratio", min_lr_ratio, 0, 1)
        self.cycle_limit = None if cycle_limit is None else check_number(
            "cycle_limit", cycle_limit, 1, integer=True)
        self.warmup_start_ratio = check_number(
            "warmup_start_ratio", warmup_start_ratio, 0, 1)
        self.name = name or "CosineWarmRestarts"
        if self.t_mul != 1.0:
            self._table = cycle_table(self.first_cycle_steps, self.t_mul, self.cycle_limit)
            # The rows a counter can reach, as Python numbers, for each
            # counter width: computed here, never while tracing (torch.compile
            # turns NumPy inside a compiled function into a graph break).
            starts, offsets, lengths, _ = self._table
            self._reachable = {}
            for largest in (_INT32_MAX, MAX_STEP):
                kept = int(np.searchsorted(starts, largest, side="right"))
                self._reachable[largest] = tuple(
                    column[:kept].tolist() for column in (starts, offsets, lengths))

    @property
    def alpha(self):
        """Keras' name of `min_lr_ratio` (read-only)."""
        return self.min_lr_ratio

    # In-graph evaluation (keras.ops only: eager, tf.function, XLA, JAX).

    def cycle_position(self, step):
        """Tensors `(cycle_index, fraction, cycle_length)` at `step`.

        `fraction` is `T_cur / T_i` in [0, 1]; warm-up steps report cycle 0
        at fraction 0; past the last cycle (`cycle_limit`, or shrinking
        cycles exhausted) the last cycle at fraction 1. Usable inside
        compiled functions; exact for every step of an int64 counter (and
        of JAX's int32 one).
        """
        step, largest = _counter_tensor(step)
        counter = keras.backend.standardize_dtype(step.dtype)
        # Integers as counter tensors, and `where` for a maximum: on torch,
        # int64 with a Python int, or Keras' `maximum` of two int64 tensors,
        # gives int32, which overflows past 2**31.
        def integer(value):
            return ops.convert_to_tensor(value, counter)

        cycle_steps = step - integer(min(self.warmup_steps, largest))
        cycle_steps = ops.where(cycle_steps > integer(0), cycle_steps, integer(0))
        if self.t_mul == 1.0:
            length = ops.full_like(ops.cast(step, "float32"), self.first_cycle_steps)
            if self.first_cycle_steps > largest:  # the counter never gets there
                index = ops.zeros_like(cycle_steps)
                inside = cycle_steps
            else:
                first = integer(self.first_cycle_steps)
                index = ops.floor_divide(cycle_steps, first)
                inside = cycle_steps - index * first
            fraction = ops.cast(inside, "float32") / length
            limit = self.cycle_limit
            if limit is not None and limit * self.first_cycle_steps <= largest:
                over = cycle_steps >= integer(limit * self.first_cycle_steps)
                index = ops.where(over, integer(limit - 1), index)
                fraction = ops.where(over, 1.0, fraction)
            return index, fraction, length
        starts, offsets, lengths = self._reachable[largest]
        end = self._table[3]
        starts = ops.convert_to_tensor(starts, counter)
        index = ops.sum(
            ops.cast(ops.expand_dims(cycle_steps, -1) >= starts, "int32"), -1
        ) - 1
        inside = ops.cast(cycle_steps - ops.take(starts, index), "float32")
        length = ops.take(ops.convert_to_tensor(lengths, "float32"), index)
        offset = ops.take(ops.convert_to_tensor(offsets, "float32"), index)
        fraction = ops.minimum((inside + offset) / length, 1.0)
        if end is not None and end <= largest:
            fraction = ops.where(cycle_steps >= end, 1.0, fraction)
        return index, fraction, length

    def multiplier_tensor(self, step):
        """`eta_t` at `step` as a float32 tensor (`multiplier` in-graph)."""
        index, fraction, _ = self.cycle_position(step)
        peak = ops.power(
            ops.cast(self.m_mul, "float32"), ops.cast(index, "float32")
        )
        cosine = 0.5 * peak * (1.0 + ops.cos(math.pi * fraction))
        eta = (1.0 - self.min_lr_ratio) * cosine + self.min_lr_ratio
        if self.warmup_steps:
            step, largest = _counter_tensor(step)
            start = self.warmup_start_ratio
            ramp = ops.cast(step, "float32") / float(self.warmup_steps)
            warm = start + (1.0 - start) * ramp
            if self.warmup_steps > largest:  # the counter never gets there
                eta = warm
            else:
                eta = ops.where(step < self.warmup_steps, warm, eta)
        return eta

    def __call__(self, step):
        return self.initial_learning_rate * self.multiplier_tensor(step)

    # Plain Python: the same maths for callbacks, examples and plots.

    def _counter(self, step):
        """`step` (an int, or an integral number or scalar) as a checked int."""
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            array = np.asarray(step)
            step = check_number("step", array.item() if array.ndim == 0 else step,
                                integer=True)
        if not 0 <= step <= MAX_STEP:
            raise ValueError(
                f"Argument `step` must be in [0, {MAX_STEP}] (an int64 step "
                f"counter). Received: step={step}"
            )
        return int(step)

    def _position(self, step):
        """Python `(index, fraction)` of `cycle_position`."""
        steps = max(self._counter(step) - self.warmup_steps, 0)
        limit = self.cycle_limit
        if self.t_mul == 1.0:
            index, inside = divmod(steps, self.first_cycle_steps)
            if limit is not None and index >= limit:
                return limit - 1, 1.0
            return index, inside / self.first_cycle_steps
        starts, offsets, lengths, end = self._table
        index = bisect.bisect_right(starts, steps) - 1
        if end is not None and steps >= end:
            return index, 1.0
        inside = steps - int(starts[index]) + float(offsets[index])
        return index, min(inside / float(lengths[index]), 1.0)

    def cycle_index(self, step):
        """Index of the cycle that `step` (an int) belongs to; 0 in warm-up."""
        return self._position(step)[0]

    def cycle_length(self, index):
        """Length `T_i` of cycle `index`, in steps (a float)."""
        return float(self.first_cycle_steps * Fraction(self.t_mul) ** index)

    def restart_steps(self, count):
        """Steps at which the first `count` cycles end, as a list of ints.

        Entry i is the number of weight updates done when cycle i is over
        (and cycle i + 1 starts), warm-up included. Past the last cycle
        (`cycle_limit`, or shrinking cycles exhausted) the list repeats the
        step from which the rate stays at the floor.
        """
        count = check_number("count", count, 0, integer=True)
        real = count if self.cycle_limit is None else min(count, self.cycle_limit)
        if self.t_mul == 1.0:
            ends = [self.first_cycle_steps * (i + 1) for i in range(real)]
        else:
            starts, _, _, end = self._table
            if real < len(starts):
                ends = [int(s) for s in starts[1 : real + 1]]
            elif end is not None:
                ends = [int(s) for s in starts[1:]] + [end] * (real + 1 - len(starts))
            else:  # past an int64 counter: extend the exact table
                cycles = cycle_starts(self.first_cycle_steps, self.t_mul)
                cycles.extend(real + 1)
                ends = cycles.starts[1 : real + 1]
        ends += ends[-1:] * (count - real)
        return [self.warmup_steps + end for end in ends]

    def cycle_end_epochs(self, budget_epochs, steps_per_epoch=None):
        """Epochs (floats, <= `budget_epochs`) at which a cycle ends.

        A run whose epoch count is one of these ends at the floor, the
        moment of the paper's anytime measurement (warm-up included). With
        `t_mul=2`, `first_cycle_epochs=1`: `[1.0, 3.0, 7.0, 15.0, 31.0]`
        for a budget of 40. `steps_per_epoch` defaults to the schedule's.
        """
        steps_per_epoch = steps_per_epoch or self.steps_per_epoch
        if steps_per_epoch is None:
            raise ValueError(
                "Argument `steps_per_epoch` must be given (here or to the "
                "schedule) to count in epochs. Received: steps_per_epoch=None")
        steps_per_epoch = check_number("steps_per_epoch", steps_per_epoch, 0, None, False)
        budget = check_number("budget_epochs", budget_epochs, 0)
        last = math.floor(_exact(budget) * _exact(steps_per_epoch))
        count, ends = 16, []
        while True:
            ends = sorted(set(self.restart_steps(count)))
            if ends[-1] > last or len(ends) < count:
                break
            count *= 2
        spe = _exact(steps_per_epoch)
        return [float(end / spe) for end in ends if end <= last]

    def multiplier(self, step):
        """The schedule multiplier `eta_t` (rate / peak rate) at `step`."""
        step = self._counter(step)
        if step < self.warmup_steps:
            start = self.warmup_start_ratio
            return start + (1.0 - start) * (step / self.warmup_steps)
        index, fraction = self._position(step)
        cosine = 0.5 * self.m_mul**index * (1.0 + math.cos(math.pi * fraction))
        return (1.0 - self.min_lr_ratio) * cosine + self.min_lr_ratio

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_cycle_steps": self._given["first_cycle_steps"],
            "t_mul": self.t_mul,
            "m_mul": self.m_mul,
            "min_lr_ratio": self.min_lr_ratio,
            "warmup_steps": self._given["warmup_steps"],
            "name": self.name,
            "steps_per_epoch": self.steps_per_epoch,
            "first_cycle_epochs": self.first_cycle_epochs,
            "warmup_epochs": self.warmup_epochs,
            "cycle_limit": self.cycle_limit,
            "warmup_start_ratio": self.warmup_start_ratio,
        }
