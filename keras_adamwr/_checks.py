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


# PyTorch / timm argument names and what corresponds here (docs/migration.md).
_CYCLE_STEPS = "`first_cycle_epochs` (with `steps_per_epoch`) or `first_cycle_steps`"
_FOREIGN_NAMES = {
    "lr": "`learning_rate`",
    "betas": "`beta_1` and `beta_2` (betas=(b1, b2) -> beta_1=b1, beta_2=b2)",
    "eps": "`epsilon`",
    "T_0": _CYCLE_STEPS,
    "t_initial": _CYCLE_STEPS,
    "T_mult": "`t_mul`",
    "cycle_mul": "`t_mul`",
    "cycle_decay": "`m_mul`",
    "eta_min": "`min_lr_ratio` (min_lr_ratio = eta_min / learning_rate)",
    "lr_min": "`min_lr_ratio` (min_lr_ratio = lr_min / learning_rate)",
    "warmup_t": "`warmup_epochs` (with `steps_per_epoch`) or `warmup_steps`",
    "warmup_lr_init": "`warmup_start_ratio` (warmup_start_ratio = warmup_lr_init / learning_rate)",
}
_RESTART_NAMES = ("T_0", "t_initial", "T_mult", "cycle_mul", "cycle_decay", "eta_min",
                  "lr_min", "warmup_t", "warmup_lr_init")


def check_foreign_arguments(owner, kwargs, restarts, adam=True):
    """Refuses PyTorch/timm argument names with the name that corresponds.

    `owner` is the class name, `restarts` whether it takes the restart
    arguments, `adam` whether it has Adam's `betas`/`eps`. Raises
    `TypeError` (as Python does for an unknown keyword), with a hint.
    """
    for name, value in kwargs.items():
        hint = _FOREIGN_NAMES.get(name)
        if hint is None:
            continue
        if name == "lr" and owner == "CosineWarmRestarts":
            hint = "`initial_learning_rate`"
        if name in _RESTART_NAMES and not restarts:
            hint = (f"{hint} of keras_adamwr.{owner}R (or of a "
                    "keras_adamwr.CosineWarmRestarts passed as `learning_rate`)")
        elif name in ("betas", "eps") and not adam:
            hint = f"{hint} of keras_adamwr.AdamW ({owner} has none)"
        raise TypeError(
            f"{owner}() got an unexpected keyword argument {name!r}, a PyTorch/"
            f"timm name: the corresponding argument of keras_adamwr is {hint}. "
            f"See docs/migration.md. Received: {name}={value!r}"
        )
