"""Exact cycle starts of a warm-restart schedule, cheap to build.

Cycle i of a schedule with first length `T_0` (an integer) and factor `t`
starts at the real number `S_i = T_0 * (1 + t + ... + t**(i-1))`. A step
belongs to the right cycle only if `ceil(S_i)` is exact, so `S_i` is never
rounded blindly: it is carried as an interval `[lo, hi] / 2**F` of integers
(`t` is a float, so `t = p / 2**k` exactly and multiplying by it is a shift
and a multiply, rounded down for `lo` and up for `hi`). When the interval
decides `ceil(S_i)` (almost always), that is the exact answer; when it
straddles an integer (S_i is an integer, or within 2**-90 of one), `S_i` is
computed as an exact fraction from its closed form instead. Each cycle
costs a few multiplications of ~250-bit integers, so 100,000 cycles take a
fraction of a second (the exact fraction of every S_i would cost O(i**2)).
Past ~2**96 steps (beyond any int64 counter; `restart_steps(n)` goes
there) more fraction bits are carried, so that the intervals stay narrow
and the cost per cycle stays that of a few multiplications.
"""

import functools
import math
from fractions import Fraction

import numpy as np

MAX_STEP = 2**63 - 1  # the largest value of an int64 step counter
MAX_CYCLES = 100_000  # cycles that may start in [0, MAX_STEP]
_FRACTION_BITS = 192


class CycleStarts:
    """Cycle starts of `(first_cycle_steps, t_mul)`, extended on demand.

    `starts[i]` is `ceil(S_i)`, `offsets[i]` is `ceil(S_i) - S_i` and
    `lengths[i]` is `T_0 * t**i`, for every cycle computed so far.
    """

    def __init__(self, first_cycle_steps, t_mul):
        self.first_cycle_steps = first_cycle_steps
        self.ratio = Fraction(t_mul)
        p, q = self.ratio.numerator, self.ratio.denominator
        self._p, self._shift = p, q.bit_length() - 1  # q is a power of 2
        length = first_cycle_steps << _FRACTION_BITS
        self._state = [0, 0, length, length]  # S lo, S hi, T_i lo, T_i hi
        self._bits = _FRACTION_BITS  # fraction bits of the state, see `extend`
        self.starts, self.offsets, self.lengths = [], [], []

    def _exact_start(self, index):
        t = self.ratio
        return self.first_cycle_steps * (t**index - 1) / (t - 1)

    def extend(self, count):
        """Computes cycles until `count` of them are known."""
        p, shift = self._p, self._shift
        s_lo, s_hi, l_lo, l_hi = self._state
        bits = self._bits
        one = 1 << bits
        while len(self.starts) < count:
            index = len(self.starts)
            whole = s_hi.bit_length() - bits  # bits of the integer part
            if whole > 96 and whole > bits - 96:
                # Past ~2**96 steps (never for an int64 counter) the
                # rounding of `bits` fraction bits, scaled by the integer
                # part, would make intervals straddle integers and every
                # cycle take the slow exact form: carry more fraction bits.
                # T_i is recomputed at the new precision (its interval's
                # relative width would otherwise carry over).
                s_lo, s_hi = s_lo << _FRACTION_BITS, s_hi << _FRACTION_BITS
                bits += _FRACTION_BITS
                one = 1 << bits
                l_lo, l_hi = _power_bounds(p, shift, index, bits)
                l_lo, l_hi = l_lo * self.first_cycle_steps, l_hi * self.first_cycle_steps
            start = -((-s_lo) >> bits)
            if start != -((-s_hi) >> bits):
                exact = self._exact_start(index)
                start = math.ceil(exact)
                offset = float(start - exact)
            else:
                offset = ((start << bits) - s_lo) / one
            self.starts.append(start)
            self.offsets.append(offset)
            self.lengths.append(l_lo / one)
            s_lo, s_hi = s_lo + l_lo, s_hi + l_hi
            l_lo, l_hi = (l_lo * p) >> shift, -((-l_hi * p) >> shift)
        self._state = [s_lo, s_hi, l_lo, l_hi]
        self._bits = bits

    def extend_past(self, step, limit):
        """Computes cycles until one starts past `step`, at most `limit`."""
        while (not self.starts or self.starts[-1] <= step) and len(self.starts) < limit:
            self.extend(min(limit, max(16, 2 * len(self.starts))))


def _power_bounds(p, shift, n, bits):
    """Integers `lo <= 2**bits * (p / 2**shift)**n <= hi`, by squaring with
    rounding down for `lo` and up for `hi` (`bits >= shift`)."""
    lo = hi = 1 << bits
    base_lo = base_hi = p << (bits - shift)
    while n:
        if n & 1:
            lo, hi = (lo * base_lo) >> bits, -((-hi * base_hi) >> bits)
        n >>= 1
        if n:
            base_lo = (base_lo * base_lo) >> bits
            base_hi = -((-base_hi * base_hi) >> bits)
    return lo, hi


@functools.lru_cache(maxsize=64)
def cycle_starts(first_cycle_steps, t_mul):
    """The shared, growing `CycleStarts` of one `(T_0, t_mul)`."""
    return CycleStarts(first_cycle_steps, t_mul)


def too_many_cycles(first_cycle_steps, t_mul, limit):
    raise ValueError(
        "Argument `t_mul` must be 1, or far enough from 1 that at most "
        f"{MAX_CYCLES} cycles start before step {limit}. Received: "
        f"t_mul={t_mul} (with first_cycle_steps={first_cycle_steps})"
    )


@functools.lru_cache(maxsize=64)
def cycle_table(first_cycle_steps, t_mul, cycle_limit=None):
    """Numpy arrays `(starts, offsets, lengths)` and `end` for the graph.

    Covers every cycle that starts at a step <= `MAX_STEP` (after warm-up),
    at most `cycle_limit` cycles. `end` is the first step at which the rate
    stays at the floor for good: the start of cycle `cycle_limit`, or with
    `t_mul < 1` the first integer past the point `T_0 / (1 - t_mul)` the
    shrinking cycles converge to; None if no such step <= `MAX_STEP`.
    """
    t = Fraction(t_mul)
    limit, end = MAX_STEP, None
    if t < 1 and math.ceil(first_cycle_steps / (1 - t)) <= MAX_STEP:
        end = math.ceil(first_cycle_steps / (1 - t))
        limit = end - 1
    count = MAX_CYCLES if cycle_limit is None else min(cycle_limit, MAX_CYCLES)
    cycles = cycle_starts(first_cycle_steps, t_mul)
    cycles.extend_past(limit, count + 1)
    starts = cycles.starts[: count + 1]
    inside = [start for start in starts if start <= limit]
    if len(inside) > count:
        if cycle_limit is None or cycle_limit > MAX_CYCLES:
            too_many_cycles(first_cycle_steps, t_mul, limit)
        inside, end = inside[:count], starts[count]
        end = end if end <= MAX_STEP else None
    number = len(inside)
    return (
        np.array(inside, dtype="int64"),
        np.array(cycles.offsets[:number], dtype="float64"),
        np.array(cycles.lengths[:number], dtype="float64"),
        end,
    )
