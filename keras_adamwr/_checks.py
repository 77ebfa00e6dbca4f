"""Argument checks shared by every public constructor.

Kept apart from the maths so that every error reads the same way, in the
Keras wording: "Argument `t_mul` must be > 0. Received: t_mul=-1".
Wrong types raise `TypeError`, wrong values `ValueError`; nothing here uses
`assert`.
"""

import math
import numbers

import numpy as np


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


def check_bool(name, value):
    """Validates a flag and returns it as a Python bool.

    Accepts `True`/`False`, NumPy booleans and the integers 0 and 1 (their
    usual spellings in configs). Anything else is refused instead of being
    read by its truthiness (`"False"` and `"no"` are truthy strings).

    Raises:
        TypeError: if `value` is not a bool or an integer (a string, `None`,
            a float).
        ValueError: for an integer other than 0 and 1.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if not isinstance(value, numbers.Integral):
        raise TypeError(
            f"Argument `{name}` must be a boolean (True or False). "
            f"Received: {name}={value!r} (of type {type(value).__name__})"
        )
    if value not in (0, 1):
        raise ValueError(
            f"Argument `{name}` must be True or False (or 0 or 1). "
            f"Received: {name}={value!r}"
        )
    return bool(value)


def check_optional_number(name, value, *args, **kwargs):
    """`check_number` for an argument that may also be `None` (unset)."""
    if value is None:
        return None
    return check_number(name, value, *args, **kwargs)


def check_keras_arguments(kwargs):
    """Checks the Keras optimizer keywords passed through to Keras.

    Keras tests some of them late or not at all (`clipnorm=-1` silently
    disables clipping, `use_ema="x"` reads as True,
    `gradient_accumulation_steps=inf` fails in the first step). Returns the
    checked keywords; unknown ones are left for Keras to refuse.
    """
    checked = dict(kwargs)
    for key in ("clipnorm", "clipvalue", "global_clipnorm", "loss_scale_factor"):
        if key in checked:
            checked[key] = check_optional_number(key, checked[key], 0, None, False)
    if "use_ema" in checked:
        checked["use_ema"] = check_bool("use_ema", checked["use_ema"])
    if "ema_momentum" in checked:
        checked["ema_momentum"] = check_number("ema_momentum", checked["ema_momentum"], 0, 1)
    if "ema_overwrite_frequency" in checked:
        checked["ema_overwrite_frequency"] = check_optional_number(
            "ema_overwrite_frequency", checked["ema_overwrite_frequency"], 1, integer=True
        )
    if "gradient_accumulation_steps" in checked:
        checked["gradient_accumulation_steps"] = check_optional_number(
            "gradient_accumulation_steps", checked["gradient_accumulation_steps"],
            2, integer=True,
        )
    name = checked.get("name")
    if name is not None and not isinstance(name, str):
        raise TypeError(
            "Argument `name` must be a string or None. "
            f"Received: name={name!r} (of type {type(name).__name__})"
        )
    return checked
