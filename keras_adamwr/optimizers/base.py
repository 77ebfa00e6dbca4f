"""Decoupled and normalized weight decay, shared by AdamW and SGDW.

Everything that is the same for both optimizers lives here once: argument
checks, the two decay conventions, normalized decay, exclusions, counting
real weight updates under gradient accumulation, and computing the
per-step scalars once per step instead of once per variable. Saved state and
the settable learning rate of schedule-built optimizers: `_state.py`.
"""

import math
import os
import re
import sys
import warnings

import keras
from keras import ops

from keras_adamwr.optimizers._checkpoint_tag import CheckpointTag
from keras_adamwr.optimizers._compiled import compiled_update_step
from keras_adamwr.optimizers._compiled import dense_gradients
from keras_adamwr.optimizers._compiled import use_compiled_update
from keras_adamwr._checks import check_bool
from keras_adamwr._checks import check_choice
from keras_adamwr._checks import check_foreign_arguments
from keras_adamwr._checks import check_keras_arguments
from keras_adamwr._checks import check_number
from keras_adamwr.optimizers._state import OptimizerState
from keras_adamwr.schedules.cosine_warm_restarts import CosineWarmRestarts

DECAY_SCALINGS = ("schedule", "learning_rate")
# Version of `get_config`'s format. 2 (0.5.0): `exclude_from_weight_decay`
# patterns match `variable.name`, or `variable.path` if they contain "/";
# 1 (no field, 0.4.0 and older): every pattern matches `variable.path`.
CONFIG_VERSION = 2
_Schedule = keras.optimizers.schedules.LearningRateSchedule

# Largest per-update decay `weight_decay * eta` (at eta = 1) that is not
# reported as a probable Keras/PyTorch value, see `DecayConventionWarning`.
PLAUSIBLE_DECAY = 1e-3


class DecayConventionWarning(UserWarning):
    """A `weight_decay` that looks like a Keras/PyTorch value.

    In the paper's convention (`decay_scaling="schedule"`, the default)
    each update shrinks the weights by `eta_t * weight_decay`: the base
    learning rate does not multiply it. `keras.optimizers.AdamW` and
    `torch.optim.AdamW` shrink by `lr_t * weight_decay`, so their usual
    values (0.004, 0.01, 0.05) mean about 1000x less decay there at
    `learning_rate=1e-3`. The optimizers warn when `weight_decay` is above
    `PLAUSIBLE_DECAY = 1e-3` per update at `eta_t = 1`: the paper's good
    normalized values, 0.025-0.05, are raw values `lambda_norm /
    sqrt(updates)` of at most 1e-3 for any run of 2,500 updates or more
    (6.4 epochs of CIFAR-10 at batch size 128), while Keras' default
    (0.004) and PyTorch's (0.01) are above it. Normalized decay and
    `decay_scaling="learning_rate"` never warn. Silence it with
    `warnings.filterwarnings("ignore", category=keras_adamwr.DecayConventionWarning)`.
    """


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def user_stacklevel():
    """The `stacklevel` of `warnings.warn` that names the first caller
    outside this package (the user's line, not AdamWR's or from_config's)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


def normalized_weight_decay(lambda_norm, batch_size, num_examples, epochs):
    """The raw decay `lambda` for a normalized decay `lambda_norm`.

    `lambda = lambda_norm * sqrt(b / (B * T))` (Loshchilov & Hutter 2019,
    Appendix B.1), with `b = batch_size`, `B = num_examples` and `T =
    epochs`; that is `lambda_norm / sqrt(number of weight updates)`.

    Examples:

        >>> normalized_weight_decay(0.05, batch_size=128, num_examples=50_000,
        ...                         epochs=100)  # doctest: +ELLIPSIS
        0.000252...
    """
    lambda_norm = check_number("lambda_norm", lambda_norm, 0)
    batch_size = check_number("batch_size", batch_size, 1, integer=True)
    num_examples = check_number("num_examples", num_examples, 1, integer=True)
    epochs = check_number("epochs", epochs, 0, None, False)
    return lambda_norm * math.sqrt(batch_size / (num_examples * epochs))


def peak_learning_rate(learning_rate):
    """The base rate `alpha` of a float or a known Keras schedule, or None."""
    if isinstance(learning_rate, float):
        return learning_rate
    if isinstance(learning_rate, CosineWarmRestarts):
        return learning_rate.initial_learning_rate
    if isinstance(learning_rate, keras.optimizers.schedules.PiecewiseConstantDecay):
        return float(max(learning_rate.values))
    peak = getattr(learning_rate, "initial_learning_rate", None)
    if not isinstance(peak, (int, float)):
        return None
    return float(max(peak, getattr(learning_rate, "warmup_target", None) or 0))


def restart_arguments(learning_rate, schedule_arguments, weight_decay,
                      normalized_weight_decay, kwargs, owner):
    """`(schedule, normalized_weight_decay)` for AdamWR and SGDWR.

    `schedule_arguments` holds the `CosineWarmRestarts` keyword
    arguments, `owner` the optimizer being made (for PyTorch/timm name
    hints). Normalized decay at 0.025 is the default unless
    a raw decay is given. `alpha` is refused: the paper's alpha is the
    base rate, Keras' the floor.
    """
    check_foreign_arguments(type(owner).__name__, kwargs, restarts=True,
                            adam=owner._HAS_EPSILON)
    if "alpha" in kwargs:
        raise ValueError(
            "Argument `alpha` is ambiguous here: the paper's alpha is the "
            "base learning rate (pass `learning_rate=`), Keras' alpha is the "
            "floor as a fraction of the peak (pass `min_lr_ratio=`). "
            f"Received: alpha={kwargs['alpha']!r}"
        )
    if weight_decay is None and normalized_weight_decay is None:
        normalized_weight_decay = 0.025
    schedule = CosineWarmRestarts(learning_rate, **schedule_arguments)
    return schedule, normalized_weight_decay


def restart_config(config, schedule):
    """Turns an AdamW/SGDW config into the AdamWR/SGDWR constructor's."""
    schedule = schedule.get_config()
    del config["total_steps"], config["base_learning_rate"], schedule["name"]
    config.update(schedule)
    config["learning_rate"] = config.pop("initial_learning_rate")
    return config


def _path(variable):
    """`variable.path`, or the name of a raw `tf.Variable` (as Keras)."""
    path = getattr(variable, "path", None)
    return path if isinstance(path, str) else variable.name


def _name(variable):
    """`variable.name`, without the ":0" of a raw `tf.Variable`."""
    return re.sub(r":\d+$", "", variable.name)


def restart_from_config(config):
    """A saved AdamWR/SGDWR config for the constructor: 0.2.0 configs name
    the floor `alpha`."""
    config = dict(config)
    if "alpha" in config:
        config["min_lr_ratio"] = config.pop("alpha")
    return config


def compute_dtype(variable):
    """The dtype an update of `variable` is computed in: float32 for
    float16/bfloat16 variables (their own precision loses small decays and
    underflows epsilon), else the variable's."""
    dtype = keras.backend.standardize_dtype(variable.dtype)
    return "float32" if dtype in ("float16", "bfloat16") else dtype


def _to_dtype(value, dtype):
    """Casts a tensor; converts a Python number directly (no float32 hop)."""
    if isinstance(value, (int, float)):
        return ops.convert_to_tensor(value, dtype)
    return ops.cast(value, dtype)


def _torch_compiling():
    """Whether torch.compile is tracing this call (torch backend only)."""
    if keras.backend.backend() != "torch":
        return False
    import torch

    return torch.compiler.is_compiling()


class _Scratch:
    """Per-step scalars and state loaded before `build`. A plain object, so
    Keras/TF do not track it."""

    def __init__(self):
        self.entries = {}
        self.pending_state = None  # (values, tagged) loaded before `build`
        self.slot_dtype = None  # set while `add_slots` creates a slot
        self.owners = {}  # id(slot) -> "model variable path:slot name"
        self.pending_scale = 1.0  # `learning_rate` set before `build`
        self.compiled = {}  # XLA update functions, see `_compiled.py`


class DecoupledWeightDecay(CheckpointTag, OptimizerState, keras.optimizers.Optimizer):
    """Base class: decoupled decay `theta <- theta - c_t * theta`, fused
    into the subclass's update, with `c_t = eta_t * lambda_t` (paper) or
    `c_t = lr_t * lambda_t` (Keras/PyTorch). See `AdamW` for the arguments.
    """

    # Whether the subclass has Adam's `epsilon`/betas (for PyTorch name hints).
    _HAS_EPSILON = False

    def __init__(
        self,
        learning_rate,
        weight_decay,
        normalized_weight_decay,
        total_steps,
        decay_scaling,
        exclude_from_weight_decay,
        base_learning_rate,
        default_weight_decay,
        jit_compile=True,
        **kwargs,
    ):
        if not isinstance(learning_rate, _Schedule) and not callable(learning_rate):
            learning_rate = check_number("learning_rate", learning_rate, 0, None, False)
        owner = type(self).__name__
        # AdamWR/SGDWR checked their restart arguments before this point.
        check_foreign_arguments(owner, kwargs, restarts=False, adam=self._HAS_EPSILON)
        kwargs = check_keras_arguments(kwargs)
        super().__init__(learning_rate=learning_rate, weight_decay=None, **kwargs)
        self.decay_scaling = check_choice("decay_scaling", decay_scaling, DECAY_SCALINGS)
        if weight_decay is not None and normalized_weight_decay is not None:
            raise ValueError(
                "Arguments `weight_decay` and `normalized_weight_decay` are "
                "mutually exclusive: set at most one. Received: weight_decay="
                f"{weight_decay}, normalized_weight_decay={normalized_weight_decay}"
            )
        if normalized_weight_decay is None:
            if weight_decay is None:
                weight_decay = default_weight_decay
            self.weight_decay = check_number("weight_decay", weight_decay, 0)
            self.normalized_weight_decay = None
        else:
            self.weight_decay = None
            self.normalized_weight_decay = check_number(
                "normalized_weight_decay", normalized_weight_decay, 0
            )
        self.total_steps = self._check_total_steps(total_steps)
        self.base_learning_rate = self._check_base_learning_rate(base_learning_rate)
        if isinstance(exclude_from_weight_decay, str):
            exclude_from_weight_decay = [exclude_from_weight_decay]
        if not isinstance(exclude_from_weight_decay, (list, tuple, type(None))) or not all(
            isinstance(pattern, str) for pattern in exclude_from_weight_decay or ()
        ):
            raise TypeError(
                "Argument `exclude_from_weight_decay` must be None, a string or "
                "a list of strings (regular expressions matched against "
                "variable.name, or variable.path if they contain '/'). "
                "Received: exclude_from_weight_decay="
                f"{exclude_from_weight_decay!r} (of type "
                f"{type(exclude_from_weight_decay).__name__})"
            )
        self.exclude_from_weight_decay_patterns = tuple(exclude_from_weight_decay or ())
        for pattern in self.exclude_from_weight_decay_patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(
                    "Argument `exclude_from_weight_decay` must be a list of "
                    "regular expressions (matched with re.search against "
                    "variable.name, or variable.path if they contain '/'). "
                    f"Received: exclude_from_weight_decay="
                    f"{exclude_from_weight_decay!r} ({error})"
                ) from None
        # True for patterns of a config saved by 0.4.0 or older (see
        # `from_config`): then every pattern is matched against the path.
        self._exclusions_match_path = False
        self.jit_compile = check_bool("jit_compile", jit_compile)
        self._scratch = _Scratch()
        self._decayed_indices = frozenset()
        self._learning_rate_scale = None  # a variable once built, see `learning_rate`
        self._check_decay_factor()

    def _peak_eta(self, scale=1.0):
        """The largest `eta_t` (paper) or `lr_t` (Keras convention) of the
        learning rate, times `scale` (see `learning_rate`), or None if
        unknown (a callable under the Keras convention)."""
        peak = peak_learning_rate(self._learning_rate_argument())
        if self.decay_scaling == "learning_rate":
            peak = self.base_learning_rate if peak is None else peak
            return None if peak is None else peak * scale
        if isinstance(self._learning_rate, CosineWarmRestarts) or peak is None:
            # eta_t is the schedule's multiplier, at most 1; for an unknown
            # peak, `base_learning_rate` is taken to be it.
            return scale
        return peak / self.base_learning_rate * scale

    def _peak_decay_factor(self, scale=1.0):
        """`(argument name, value, raw lambda, largest c_t)`, or None if
        unknown."""
        peak_eta = self._peak_eta(scale)
        if peak_eta is None:
            return None
        if self.normalized_weight_decay is not None:
            name, value = "normalized_weight_decay", self.normalized_weight_decay
            if self.total_steps is not None:
                shortest = self.total_steps
            else:
                shortest = min(self._learning_rate.cycle_length(i) for i in range(2))
            raw = value / math.sqrt(shortest)
        else:
            name, value = "weight_decay", self.weight_decay
            raw = value
        return name, value, raw, raw * peak_eta

    def _check_decay_factor(self):
        """Refuses a decay factor `c_t >= 1` at any step (the weights would
        be zeroed or flip sign) where it is known at construction; warns on
        a Keras/PyTorch-like value."""
        peak = self._peak_decay_factor()
        if peak is None:
            return
        name, value, raw, factor = peak
        if factor >= 1:
            raise ValueError(self._decay_factor_message(name, value, factor))
        if name == "weight_decay" and self.decay_scaling == "schedule" and raw > PLAUSIBLE_DECAY:
            alpha = self.base_learning_rate
            warnings.warn(
                f"{type(self).__name__}(weight_decay={value!r}) shrinks the weights "
                f"by {value:.4g} per update at eta_t = 1 (the paper's convention, "
                "decay_scaling='schedule': theta <- theta - eta_t * weight_decay * "
                "theta, not multiplied by the learning rate). "
                "Keras' and PyTorch's optimizers (keras.optimizers.AdamW, "
                "torch.optim.AdamW, ...) multiply weight_decay by the learning "
                f"rate: there, weight_decay={value!r} at learning_rate={alpha:.4g} "
                f"is a decay of {value * alpha:.3g} per update. For that decay pass "
                f"weight_decay={value * alpha:.3g} (learning_rate * weight_decay) "
                "or decay_scaling='learning_rate'. Values above "
                f"{PLAUSIBLE_DECAY} are rarely meant in the paper's convention; "
                "to silence this warning: warnings.filterwarnings('ignore', "
                "category=keras_adamwr.DecayConventionWarning).",
                DecayConventionWarning,
                stacklevel=user_stacklevel(),
            )

    def _decay_factor_message(self, name, value, factor, scale=None):
        rate = self._learning_rate_argument()
        rate = f"{rate:.6g}" if isinstance(rate, float) else type(rate).__name__
        if self.decay_scaling == "schedule":
            where = (f"learning_rate={rate}, base_learning_rate="
                     f"{self.base_learning_rate!r}, decay_scaling='schedule': "
                     "eta_t = learning rate / base_learning_rate")
        else:
            where = f"learning_rate={rate}, decay_scaling='learning_rate': c_t = lr_t * lambda_t"
        if scale is not None:
            where += f"; the schedule scaled by {scale:.4g} (learning_rate set)"
        return (
            f"Argument `{name}` must give a decay factor c_t < 1 per update "
            "(theta <- theta - c_t * theta; at 1 the weights are zeroed, above "
            f"1 they flip sign). Received: {name}={value!r}, which gives c_t = "
            f"{factor:.4g} at the peak of the learning rate ({where}). Lower "
            f"`{name}`, or the learning rate, or set `base_learning_rate` to "
            "the peak rate."
        )

    def _check_total_steps(self, total_steps):
        restarts = isinstance(self._learning_rate, CosineWarmRestarts)
        if self.normalized_weight_decay is None or restarts:
            if total_steps is not None:
                raise ValueError(
                    "Argument `total_steps` is only used with "
                    "`normalized_weight_decay` and a learning rate that is not "
                    "a CosineWarmRestarts schedule (whose cycle lengths are "
                    f"used instead). Received: total_steps={total_steps}"
                )
            return None
        if total_steps is None:
            raise ValueError(
                "Argument `total_steps` must be an integer >= 1 (the number of "
                "weight updates in the run) when `normalized_weight_decay` is "
                "set and the learning rate is not a CosineWarmRestarts "
                "schedule. Received: total_steps=None"
            )
        return check_number("total_steps", total_steps, 1, integer=True)

    def _check_base_learning_rate(self, base_learning_rate):
        if base_learning_rate is not None:
            return check_number("base_learning_rate", base_learning_rate, 0, None, False)
        peak = peak_learning_rate(self._learning_rate_argument())
        if peak is None and self.decay_scaling == "schedule":
            raise ValueError(
                "Argument `base_learning_rate` must be a float > 0 when the "
                "learning rate is a schedule or callable whose peak cannot be "
                "inferred (decay_scaling='schedule' divides the current rate "
                "by it to get eta_t). Received: base_learning_rate=None"
            )
        return peak

    def _learning_rate_argument(self):
        if isinstance(self._learning_rate, keras.Variable):
            return float(ops.convert_to_numpy(self._learning_rate))
        return self._learning_rate

    @property
    def schedule(self):
        """The learning-rate schedule, or None for a float learning rate."""
        if isinstance(self._learning_rate, _Schedule):
            return self._learning_rate
        return None

    def build(self, var_list):
        """Resolves the decay mask once: pattern exclusions and Keras'."""
        super().build(var_list)
        patterns = self.exclude_from_weight_decay_patterns
        if (self.normalized_weight_decay or self.weight_decay or 0) == 0:
            return  # no decay at all: skip the multiply
        self._decayed_indices = frozenset(
            index
            for index, variable in enumerate(var_list)
            if self._use_weight_decay(variable) and not self._excluded_by_pattern(variable)
        )
        if self._exclusions_match_path:
            self._warn_if_exclusions_changed(var_list)

    def _excluded_by_pattern(self, variable, match_path=None):
        """Whether a pattern of `exclude_from_weight_decay` matches: with
        `re.search`, against `variable.name` (as Keras'
        `exclude_from_weight_decay(var_names=...)`), or `variable.path` for a
        pattern containing "/" (and for every pattern of a 0.4.0 config)."""
        if match_path is None:
            match_path = self._exclusions_match_path
        for pattern in self.exclude_from_weight_decay_patterns:
            target = _path(variable) if match_path or "/" in pattern else _name(variable)
            if re.search(pattern, target):
                return True
        return False

    def _warn_if_exclusions_changed(self, var_list):
        changed = [_path(v) for v in var_list
                   if self._excluded_by_pattern(v, True) != self._excluded_by_pattern(v, False)]
        if changed:
            warnings.warn(
                f"{type(self).__name__} {self.name!r}: its exclude_from_weight_decay="
                f"{list(self.exclude_from_weight_decay_patterns)!r} comes from a "
                "config saved by keras_adamwr 0.4.0 or older, where patterns were "
                "matched against variable.path, and keeps that meaning (saved "
                "again, the config says so: config_version 1). Since 0.5.0 a "
                "pattern without '/' is matched against variable.name, which "
                f"would decay or exclude other variables here: {changed[:5]!r}. "
                "To adopt the new rule, create the optimizer anew with the "
                "patterns you mean (e.g. 'bias$', or 'layer_name/' for a layer).",
                UserWarning, stacklevel=user_stacklevel(),
            )

    def add_slots(self, var_list, names):
        """`add_optimizer_variables` (one slot per variable and name, in
        Keras' order), with float32 slots for float16/bfloat16 variables.

        In their own dtype, Adam's `(1 - beta_2) * g**2` underflows for
        `|g|` below about 7e-3 (float16) and SGDW's `lr * g` for small
        rates: `v` stays 0 and every step is the largest possible one.
        Costs 4 bytes per slot and weight instead of 2 (AdamW: 10 bytes per
        float16 weight instead of 6). Only the dtype differs: names, shapes
        and the order of the slots are Keras'.
        """
        self._scratch.adding_slots = True
        try:
            return self.add_optimizer_variables(var_list, names)
        finally:
            self._scratch.adding_slots = False

    def add_variable_from_reference(self, reference_variable, name=None, initializer="zeros"):
        if getattr(self._scratch, "adding_slots", False):
            self._scratch.slot_dtype = compute_dtype(reference_variable)
        try:
            slot = super().add_variable_from_reference(
                reference_variable, name=name, initializer=initializer)
        finally:
            self._scratch.slot_dtype = None
        # Which model variable a slot belongs to, saved with the state.
        self._scratch.owners[id(slot)] = f"{_path(reference_variable)}:{name or 'var'}"
        return slot

    def add_variable(self, *args, **kwargs):
        scratch = self.__dict__.get("_scratch")
        if scratch is not None and scratch.slot_dtype is not None:
            kwargs["dtype"] = scratch.slot_dtype
        return super().add_variable(*args, **kwargs)

    def uses_weight_decay(self, variable):
        """Whether `variable` (one the optimizer was built with) is decayed."""
        return self._get_variable_index(variable) in self._decayed_indices

    def _apply_weight_decay(self, variables):
        # Keras' own pass (`theta -= lr * wd * theta`, before the update) is
        # switched off: our decay is fused into `update_step`.
        return

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # Keras hook (pinned in tests/test_keras_hooks.py): runs `update_step`
        # for every variable of the step. With `jit_compile`, on TensorFlow,
        # that loop runs as XLA functions (within the bounds of `_compiled`).
        update = super()._backend_update_step
        grads = dense_gradients(grads)
        if not (use_compiled_update(self) and compiled_update_step(
                self, update, grads, trainable_variables, learning_rate)):
            update(grads, trainable_variables, learning_rate)

    def _get_current_learning_rate(self):
        # Keras evaluates schedules at the micro-batch counter; we count
        # weight updates (`iterations` divides by gradient_accumulation_steps).
        if isinstance(self._learning_rate, _Schedule):
            return self._scaled(self._learning_rate(self.iterations))
        return super()._get_current_learning_rate()

    def weight_decay_at(self, step=None, dtype="float32"):
        """Raw `lambda_t` at update `step` (default: the current one).

        With `normalized_weight_decay` this is `lambda_norm / sqrt(T)`, `T`
        being `total_steps` or the length of the restart cycle `step` is in.
        """
        if self.normalized_weight_decay is None:
            return ops.convert_to_tensor(self.weight_decay, dtype)
        if self.total_steps is not None:
            length = ops.convert_to_tensor(self.total_steps, dtype)
        else:
            step = self.iterations if step is None else step
            length = ops.cast(self._learning_rate.cycle_position(step)[2], dtype)
        return self.normalized_weight_decay / ops.sqrt(length)

    def decay_coefficient(self, learning_rate=None, step=None, dtype="float32"):
        """The factor `c_t` of `theta <- theta - c_t * theta` at a step.

        `c_t = (lr_t / base_learning_rate) * lambda_t` with
        `decay_scaling="schedule"`, `lr_t * lambda_t` with "learning_rate".
        Defaults: the current step, and the learning rate at `step` (the
        schedule's value there, times the current scale of the schedule, see
        `learning_rate`; or the current rate). `c_t` is below 1: a factor of
        1 or more (which would zero the weights or flip their sign) is
        refused at construction (at the peak of the rate) and when
        `learning_rate` is set, and capped at 1 where only run time shows
        it (a callable learning rate).
        """
        if learning_rate is None:
            if step is not None and self.schedule is not None:
                learning_rate = self._scaled(self.schedule(step))
            else:
                learning_rate = self.learning_rate
        step = self.iterations if step is None else step
        if self.decay_scaling == "learning_rate":
            decay = self.weight_decay_at(step, dtype) * _to_dtype(learning_rate, dtype)
        else:
            if isinstance(self._learning_rate, CosineWarmRestarts):
                # The multiplier itself: exactly the same for any alpha.
                eta = self._scaled(self._learning_rate.multiplier_tensor(step))
            else:
                learning_rate = ops.convert_to_tensor(learning_rate)
                base = _to_dtype(self.base_learning_rate, learning_rate.dtype)
                # Exactly 1 at the base rate, on every path: XLA rewrites
                # `lambda * (lr / base)` as `lr * (lambda / base)` (two
                # constants folded), which is up to 1 ulp off `lambda`.
                eta = ops.where(ops.equal(learning_rate, base), 1, learning_rate / base)
            decay = self.weight_decay_at(step, dtype) * ops.cast(eta, dtype)
        # `where`, not `minimum`: torch's minimum of float64 tensors is float32.
        return ops.where(ops.greater(decay, 1), ops.ones_like(decay), decay)

    def apply(self, grads, trainable_variables=None):
        self._scratch.entries.clear()
        return super().apply(grads, trainable_variables)

    def _step_scalars(self, learning_rate, dtype):
        """Scalars of this step in compute `dtype`, once per step and dtype.

        `apply` empties the cache; within one step every variable receives
        the same `learning_rate` tensor, so its identity keys the cache.
        While torch.compile traces, the dtype alone keys it: Dynamo would
        guard on the identity of each step's tensor and recompile every
        step (and without a cache every variable's update would repeat the
        schedule's arithmetic, doubling Inductor's compile time).
        """
        if _torch_compiling():
            key = ("torch.compile", dtype)
            hit = self._scratch.entries.get(key)
            if hit is not None:
                return hit[1]
        else:
            key = (id(learning_rate), dtype)
            hit = self._scratch.entries.get(key)
            if hit is not None and hit[0] is learning_rate:
                return hit[1]
        step = self.iterations
        scalars = self._update_scalars(_to_dtype(learning_rate, dtype), step, dtype)
        scalars["decay"] = self.decay_coefficient(learning_rate, step, dtype)
        self._scratch.entries[key] = (learning_rate, scalars)
        return scalars

    def _update_scalars(self, learning_rate, step, dtype):
        """Subclass hook: the per-step scalars of the update rule."""
        raise NotImplementedError

    def _update_variable(self, variable, step, scalars, index, dtype):
        """`theta <- theta - (step + c_t * theta)`, fused, from `theta_{t-1}`.

        One in-place subtraction. float16/bfloat16 variables are updated in
        float32 and rounded once: `1 - c_t` itself is not representable in
        them for small `c_t`, but `c_t * theta` next to the step is.
        """
        decayed = index in self._decayed_indices
        if keras.backend.standardize_dtype(variable.dtype) == dtype:
            if decayed:
                step = step + scalars["decay"] * variable
            self.assign_sub(variable, step)
        else:
            theta = ops.cast(variable, dtype)
            if decayed:
                step = step + scalars["decay"] * theta
            self.assign(variable, ops.cast(theta - step, variable.dtype))

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Configs without `config_version` (0.4.0 and older) matched every
        `exclude_from_weight_decay` pattern against `variable.path`: loaded,
        they keep that meaning (and warn at `build` where it differs)."""
        config = dict(config)
        version = config.pop("config_version", 1)
        if not isinstance(version, int) or version > CONFIG_VERSION:
            raise ValueError(
                f"This {cls.__name__} config has config_version={version!r}; this "
                f"keras_adamwr reads versions up to {CONFIG_VERSION}: it was saved "
                "by a newer keras_adamwr. Received: config_version="
                f"{version!r}")
        optimizer = super().from_config(config, custom_objects)
        optimizer._exclusions_match_path = version < 2 and bool(
            optimizer.exclude_from_weight_decay_patterns)
        return optimizer

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "config_version": 1 if self._exclusions_match_path else CONFIG_VERSION,
                "weight_decay": self.weight_decay,
                "normalized_weight_decay": self.normalized_weight_decay,
                "total_steps": self.total_steps,
                "decay_scaling": self.decay_scaling,
                "exclude_from_weight_decay": list(self.exclude_from_weight_decay_patterns),
                "base_learning_rate": self.base_learning_rate,
                "jit_compile": self.jit_compile,
            }
        )
        return config
