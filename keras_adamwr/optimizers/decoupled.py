"""`decoupled(optimizer_class)`: the paper's weight decay for any Keras optimizer."""

import inspect

import keras
from keras import ops

from keras_adamwr.optimizers.base import DecoupledWeightDecay
from keras_adamwr.optimizers.base import compute_dtype

# The Keras optimizers with a `weight_decay` argument whose decayed classes
# are made (and registered) when keras_adamwr is imported, so that
# `load_model` finds them in a new process. Muon exists from Keras 3.10 on.
KERAS_OPTIMIZERS = ("Adadelta", "Adafactor", "Adagrad", "Adam", "Adamax", "Ftrl",
                    "Lamb", "Lion", "Muon", "Nadam", "RMSprop", "SGD")
_REFUSED = {
    "AdamW": "it is Adam with Keras' own decay: use "
             "decoupled(keras.optimizers.Adam) or keras_adamwr.AdamW",
    "LossScaleOptimizer": "it wraps another optimizer: wrap the decoupled one "
                          "instead, LossScaleOptimizer(decoupled(...)(...))",
    "MultiOptimizer": "it dispatches to other optimizers: decouple those",
    "ScheduleFreeAdamW": "its weights are an average of its slot variables, "
                         "which a decay outside its update would break",
}
_CLASSES = {}  # base class -> decoupled class


class DecoupledOptimizer(DecoupledWeightDecay):
    """Base of the classes `decoupled` makes: `DecoupledWeightDecay` around
    another optimizer's `update_step`. See `decoupled` for the arguments."""

    _UNTAGGED_NAMES = ()  # no release wrote untagged state for these

    def __init__(self, learning_rate=None, weight_decay=None, normalized_weight_decay=None,
                 total_steps=None, decay_scaling="schedule", exclude_from_weight_decay=None,
                 base_learning_rate=None, jit_compile=True, name=None, **kwargs):
        base = self.base_optimizer_class
        parameters = inspect.signature(base.__init__).parameters
        if learning_rate is None:
            learning_rate = getattr(parameters.get("learning_rate"), "default", None)
            if not isinstance(learning_rate, (int, float)):
                raise ValueError(
                    f"Argument `learning_rate` must be given: {base.__name__} has "
                    "no default learning rate. Received: learning_rate=None")
        for key in [key for key in parameters if key.endswith("_weight_decay")]:
            # Muon's `adam_weight_decay`: our decay covers every variable.
            if kwargs.get(key) is not None:
                raise ValueError(
                    f"Argument `{key}` of {base.__name__} is Keras' own decay, which "
                    f"{type(self).__name__} replaces: use `weight_decay` (and "
                    f"`exclude_from_weight_decay`). Received: {key}={kwargs[key]!r}")
            kwargs[key] = None
        super().__init__(
            learning_rate=learning_rate, weight_decay=weight_decay,
            normalized_weight_decay=normalized_weight_decay, total_steps=total_steps,
            decay_scaling=decay_scaling, exclude_from_weight_decay=exclude_from_weight_decay,
            base_learning_rate=base_learning_rate, default_weight_decay=1e-4,
            jit_compile=jit_compile, name=name, **kwargs)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._restore_pending_state()

    def _update_scalars(self, learning_rate, step, dtype):
        return {}  # the base optimizer computes its own

    def update_step(self, gradient, variable, learning_rate):
        """`theta_t = base_update(theta_{t-1}) - c_t * theta_{t-1}`."""
        index = self._get_variable_index(variable)
        if index not in self._decayed_indices:
            return super().update_step(gradient, variable, learning_rate)
        dtype = compute_dtype(variable)
        # A new tensor, computed before the base update writes `variable`.
        decay = self._step_scalars(learning_rate, dtype)["decay"] * ops.cast(variable, dtype)
        super().update_step(gradient, variable, learning_rate)
        if keras.backend.standardize_dtype(variable.dtype) == dtype:
            self.assign_sub(variable, decay)
        else:  # float16/bfloat16: subtract in float32, round once
            self.assign(variable, ops.cast(ops.cast(variable, dtype) - decay, variable.dtype))


def _check_base(optimizer_class):
    if not (isinstance(optimizer_class, type)
            and issubclass(optimizer_class, keras.optimizers.Optimizer)):
        raise TypeError(
            "Argument `optimizer_class` must be a subclass of "
            f"keras.optimizers.Optimizer. Received: optimizer_class={optimizer_class!r}")
    if issubclass(optimizer_class, DecoupledWeightDecay):
        raise ValueError(
            "Argument `optimizer_class` has decoupled weight decay already (a "
            "keras_adamwr optimizer): use it as it is. Received: "
            f"optimizer_class={optimizer_class.__name__}")
    for name, reason in _REFUSED.items():
        keras_class = getattr(keras.optimizers, name, None)
        if keras_class is not None and issubclass(optimizer_class, keras_class):
            raise ValueError(
                f"Argument `optimizer_class` cannot be {name}: {reason}. "
                f"Received: optimizer_class={optimizer_class.__name__}")
    for klass in optimizer_class.__mro__:
        if ("_backend_update_step" in vars(klass)
                and not klass.__module__.startswith("keras.")):
            raise ValueError(
                f"Argument `optimizer_class` overrides `_backend_update_step` (in "
                f"{klass.__name__}), so it may not call `update_step` per "
                "variable, where the decay is added. Received: "
                f"optimizer_class={optimizer_class.__name__}")
    registered = keras.saving.get_registered_name(optimizer_class)
    if (getattr(keras.optimizers, optimizer_class.__name__, None) is not optimizer_class
            and keras.saving.get_registered_object(registered) is not optimizer_class):
        raise ValueError(
            f"Argument `optimizer_class` ({optimizer_class.__module__}."
            f"{optimizer_class.__qualname__}) must be registered for saving before "
            "it is decoupled: decorate it with "
            "`@keras.saving.register_keras_serializable(package=...)`, then call "
            f"decoupled({optimizer_class.__name__}) in the same module, so that "
            "importing that module before `load_model` registers both.")
    return registered


def decoupled(optimizer_class):
    """A subclass of `optimizer_class` with the paper's decoupled weight decay.

    Each weight update is `optimizer_class`'s own update, without Keras'
    weight decay, from `theta_{t-1}`, plus the decay of Loshchilov & Hutter
    (2019), also from `theta_{t-1}`:

    ```
    theta_t = theta_{t-1} - base_update(g_t, state) - c_t * theta_{t-1}
    c_t     = eta_t * lambda_t    (decay_scaling="schedule", the paper)
    c_t     = lr_t * lambda_t     (decay_scaling="learning_rate", Keras/PyTorch)
    ```

    with `eta_t = lr_t / base_learning_rate` and `lambda_t` =
    `weight_decay`, or `normalized_weight_decay / sqrt(T)`: `T` the length
    of the current cycle of a `CosineWarmRestarts` learning rate (so
    `lambda_t` changes at every restart), else `total_steps`. Keras'
    `weight_decay` (`theta -= lr_t * wd * theta` before the update, which
    then sees the decayed weights) is switched off.

    The class takes `optimizer_class`'s arguments and those of
    `keras_adamwr.AdamW` for the decay, with the same checks and defaults:
    `learning_rate` (defaults to `optimizer_class`'s default),
    `weight_decay` (defaults to `1e-4` unless `normalized_weight_decay`
    is given), `normalized_weight_decay` (`None`), `total_steps` (`None`),
    `decay_scaling` (`"schedule"`), `exclude_from_weight_decay` (regular
    expressions matched against `variable.path`, saved in the config;
    `None`), `base_learning_rate` (the float rate or a known schedule's
    peak), `jit_compile` (the update as XLA functions on TensorFlow;
    `True`) and `name` (`None`: made from the class name).

    Calls with the same class return the same class. Those of the Keras
    optimizers are registered as `keras_adamwr>Decoupled<Lion>` (and so
    on) when keras_adamwr is imported; a user's class must be registered
    (`keras.saving.register_keras_serializable`) before it is decoupled,
    and is registered as `keras_adamwr>Decoupled<package>Name>`.

    Args:
        optimizer_class: A subclass of `keras.optimizers.Optimizer`, not
            `AdamW`, `LossScaleOptimizer`, `MultiOptimizer`,
            `ScheduleFreeAdamW` or an optimizer of this package.

    Returns:
        The decoupled class, e.g. `DecoupledLion`.

    Examples:

        >>> LionW = keras_adamwr.decoupled(keras.optimizers.Lion)
        >>> optimizer = LionW(learning_rate=1e-4, weight_decay=1e-4)

    References:
        Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR
        2019, https://arxiv.org/abs/1711.05101.
    """
    cls = _CLASSES.get(optimizer_class)
    if cls is not None:
        return cls
    registered = _check_base(optimizer_class)
    name = f"Decoupled{optimizer_class.__name__}"
    cls = type(name, (DecoupledOptimizer, optimizer_class), {
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": f"`{optimizer_class.__name__}` with decoupled weight decay: "
                   "see `keras_adamwr.decoupled`.",
        "base_optimizer_class": optimizer_class,
        "_STATE_FAMILY": f"Decoupled<{registered}>",
    })
    keras.saving.register_keras_serializable("keras_adamwr", f"Decoupled<{registered}>")(cls)
    _CLASSES[optimizer_class] = cls
    return cls


for _name in KERAS_OPTIMIZERS:
    if hasattr(keras.optimizers, _name):
        decoupled(getattr(keras.optimizers, _name))
