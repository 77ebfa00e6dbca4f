"""Argument checks shared by every public constructor.

Kept apart from the maths so that every error reads the same way, in the
Keras wording: "Argument `t_mul` must be > 0. Received: t_mul=-1".
Wrong types raise `TypeError`, wrong values `ValueError`; nothing here uses
`assert`.
"""

import math
import numbers


def _describe_range(minimum, maximum, min_inclusive, max_inclusive):
    if minimum is not None and maximum is not None:
        left = "[" if min_inclusive else "("
        right = "]" if max_inclusive else ")"
        return f"in {left}{minimum}, {maximum}{right}"
    if minimum is not None:
        return f"{'>=' if min_inclusive else '>'} {minimum}"
    if maximum is not None:
        return f"{'<=' if max_inclusive else '<'} {maximum}"
    return "finite"


def check_number(
    name,
    value,
    minimum=None,
    maximum=None,
    min_inclusive=True,
    max_inclusive=True,
    integer=False,
):
    """Validates a real (or integer) argument and returns it as float/int.

    Raises:
        TypeError: if `value` is not a real number (a string, a schedule, a
            tensor, `None`, a bool).
        ValueError: if `value` is not finite, not integral when `integer`,
            or outside the given range. The message names the argument, the
            allowed range and the value received.
    """
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Argument `{name}` must be {kind}. "
            f"Received: {name}={value!r} (of type {type(value).__name__})"
        )
    allowed = _describe_range(minimum, maximum, min_inclusive, max_inclusive)
    if not math.isfinite(value) or (integer and value != int(value)):
        raise ValueError(
            f"Argument `{name}` must be {'an integer' if integer else 'a finite number'} "
            f"{allowed}. Received: {name}={value!r}"
        )
    too_low = minimum is not None and (
        value < minimum or (not min_inclusive and value == minimum)
    )
    too_high = maximum is not None and (
        value > maximum or (not max_inclusive and value == maximum)
    )
    if too_low or too_high:
        raise ValueError(
            f"Argument `{name}` must be {allowed}. Received: {name}={value!r}"
        )
    return int(value) if integer else float(value)


def check_choice(name, value, choices):
    """Validates that `value` is one of `choices` (strings)."""
    if value not in choices:
        allowed = ", ".join(repr(choice) for choice in choices)
        raise ValueError(
            f"Argument `{name}` must be one of {allowed}. "
            f"Received: {name}={value!r}"
        )
    return value
