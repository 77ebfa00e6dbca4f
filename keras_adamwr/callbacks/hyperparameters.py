"""HyperparameterLogger: the schedule's values in the logs of `fit`."""

import math
import numbers
import warnings

import keras

from keras_adamwr._checks import check_choice
from keras_adamwr.optimizers.base import DecoupledWeightDecay
from keras_adamwr.schedules.cosine_warm_restarts import CosineWarmRestarts

# The keys added to the logs, in this order.
KEYS = ("learning_rate", "eta", "weight_decay_effective", "cycle")


class HyperparameterLogger(keras.callbacks.Callback):
    """Puts the learning rate, `eta`, decay `c_t` and cycle in `fit`'s logs.

    The optimizer's values for its next weight update are added to the
    logs of every epoch (and, with `per_batch=True`, of every step):

    - `learning_rate`: `optimizer.learning_rate` (with any scaling set by
      callbacks such as `ReduceLROnPlateau`),
    - `eta`: the schedule multiplier `eta_t` (`schedule.multiplier`),
    - `weight_decay_effective`: the factor `c_t` of `theta <- theta - c_t *
      theta` (`optimizer.decay_coefficient()` for this package's
      optimizers, `weight_decay * learning_rate` for Keras ones),
    - `cycle`: the index of the restart cycle (`schedule.cycle_index`).

    A value the optimizer does not have (no schedule: no `eta`, no
    `cycle`) is left out. The values are computed in Python from the
    update counter (`optimizer.iterations`, read once per log) and the
    schedule's exact restart table: no tensor is evaluated, and without
    `per_batch` the device is not waited for between steps (the cost is
    one counter read per epoch). They are part of the step's own logs,
    before any callback runs, so every callback sees them whatever its
    place in the list: `History`, `CSVLogger` and `TensorBoard` (the values
    after the epoch's last update). When the number of batches of an epoch
    is not known in advance (a dataset of unknown size), callbacks placed
    after this one (and `History`) see them in the first epoch, all from
    the second one on. No validation data is needed. `AnytimeRecorder`
    adds the same values to the epoch logs.

    Args:
        per_batch: Also put the values in every step's logs (what
            `TensorBoard(update_freq=...)` and batch-level loggers read).
            This reads the counter after every `train_function` call, a
            wait for the device at each step. Defaults to `False`.

    How: at `on_train_begin` the model's `train_function` (made by
    `Model.make_train_function` before callbacks start) is wrapped; the
    wrapper is removed at `on_train_end`. Custom `train_step`s are fine;
    a `fit` that replaces `train_function` itself is not seen.

    Example:

        >>> model.fit(x, y, epochs=10, callbacks=[
        ...     keras.callbacks.CSVLogger("log.csv"),
        ...     keras_adamwr.HyperparameterLogger()])
        >>> history.history["eta"]   # also columns of log.csv
    """

    def __init__(self, per_batch=False):
        super().__init__()
        self.per_batch = check_choice("per_batch", per_batch, (False, True))
        self._installed = False

    def on_train_begin(self, logs=None):
        self._installed = install(self.model, self.params, self.per_batch)

    def on_epoch_begin(self, epoch, logs=None):
        epoch_begin(self.model)

    def on_train_batch_begin(self, batch, logs=None):
        # A batch-begin hook keeps Keras' asynchronous batch-end dispatch.
        batch_begin(self.model, batch)

    def on_epoch_end(self, epoch, logs=None):
        epoch_end(self.model, logs)

    def on_train_end(self, logs=None):
        if self._installed:
            uninstall(self.model)
            self._installed = False


def scale_of(optimizer):
    """The scale set through `learning_rate` (ReduceLROnPlateau), a float."""
    variable = getattr(optimizer, "_learning_rate_scale", None)
    if variable is None:
        return float(getattr(getattr(optimizer, "_scratch", None), "pending_scale", 1.0))
    return float(variable)


def schedule_rate(schedule, step):
    """The unscaled rate of `schedule` at `step`, a Python float."""
    if isinstance(schedule, CosineWarmRestarts):  # plain Python, exact
        return schedule.initial_learning_rate * schedule.multiplier(step)
    return float(schedule(step))  # another schedule: evaluated as a tensor


def weight_decay_at(optimizer, step):
    """`optimizer.weight_decay_at(step)` in plain Python."""
    if optimizer.normalized_weight_decay is None:
        return float(optimizer.weight_decay)
    if optimizer.total_steps is not None:
        length = optimizer.total_steps
    else:
        schedule = optimizer.schedule
        length = schedule.cycle_length(schedule.cycle_index(step))
    return optimizer.normalized_weight_decay / math.sqrt(length)


def decay_coefficient(optimizer, step, learning_rate, scale):
    """`optimizer.decay_coefficient(learning_rate, step)` in plain Python
    (`scale`: the optimizer's current learning-rate scale)."""
    decay = weight_decay_at(optimizer, step)
    if optimizer.decay_scaling == "learning_rate":
        decay *= learning_rate
    elif isinstance(optimizer.schedule, CosineWarmRestarts):
        decay *= scale * optimizer.schedule.multiplier(step)
    elif learning_rate != optimizer.base_learning_rate:
        decay *= learning_rate / optimizer.base_learning_rate
    return min(decay, 1.0)


def current_values(optimizer, step=None):
    """The hyperparameters of `optimizer`'s next update, as Python floats.

    `step` defaults to the optimizer's counter (read once).
    """
    while isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    step = int(optimizer.iterations) if step is None else step
    if isinstance(optimizer, DecoupledWeightDecay):
        schedule = optimizer.schedule
        scale = scale_of(optimizer)
        if schedule is None:
            rate = float(optimizer.learning_rate)
        else:
            rate = scale * schedule_rate(schedule, step)
        decay = decay_coefficient(optimizer, step, rate, scale)
    else:
        schedule = getattr(optimizer, "_learning_rate", None)  # Keras: no accessor
        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            rate = schedule_rate(schedule, step)
        else:
            rate = float(optimizer.learning_rate)
        weight_decay = getattr(optimizer, "weight_decay", None)
        decay = (float(weight_decay) * rate
                 if isinstance(weight_decay, numbers.Real) else None)
    values = {"learning_rate": rate, "eta": None,
              "weight_decay_effective": decay, "cycle": None}
    if callable(getattr(schedule, "multiplier", None)):
        values["eta"] = float(schedule.multiplier(step))
    if callable(getattr(schedule, "cycle_index", None)):
        values["cycle"] = int(schedule.cycle_index(step))
    return {key: value for key, value in values.items() if value is not None}


# The one Keras hook this relies on: `Model.fit` calls `self.train_function`
# (an attribute made by `make_train_function` before `on_train_begin`) once
# per `steps_per_execution` batches and builds each batch's logs from what
# it returns, and the epoch's from the last batch's when their keys differ
# from the metrics'. Pinned by tests/test_keras_hooks.py.

class _Wrapped:
    """Adds the values to the logs of the epoch's last call (every call
    with `per_batch`); the callbacks feed it each batch's index."""

    def __init__(self, model, function, steps, per_batch):
        self.model, self.function = model, function
        self.steps, self.per_batch = steps, per_batch  # steps: None if unknown
        self.begin, self.last_begin, self.added = None, -1, False

    def _last_call(self):
        if self.steps is None or self.begin is None:
            return True  # not known yet: every call (first epoch only)
        spe = getattr(self.model, "steps_per_execution", 1) or 1
        return self.begin + spe >= self.steps

    def __call__(self, *args, **kwargs):
        result = self.function(*args, **kwargs)
        if self.begin is not None:
            self.last_begin = self.begin
        self.added = self.per_batch or self._last_call()
        if not self.added:
            return result
        optimizer = self.model.optimizer
        if isinstance(result, tuple):  # JAX: (logs, state), state not synced
            logs, state = result
            mapping = list(zip(optimizer.variables, state[2]))
            with keras.StatelessScope(state_mapping=mapping):
                values = current_values(optimizer)
            return {**logs, **values}, state
        return {**result, **current_values(optimizer)}


def _wrapper(model):
    function = getattr(model, "train_function", None)
    return function if isinstance(function, _Wrapped) else None


def install(model, params=None, per_batch=False):
    """Wraps `model.train_function`; False if already wrapped (then only
    `per_batch` is switched on if asked)."""
    function = getattr(model, "train_function", None)
    if isinstance(function, _Wrapped):
        function.per_batch = function.per_batch or per_batch
        return False
    if function is None:
        return False
    steps = (params or {}).get("steps")
    model.train_function = _Wrapped(model, function, steps, per_batch)
    check_batches_per_epoch(model.optimizer, steps)
    return True


def check_batches_per_epoch(optimizer, batches):
    """Warns when the schedule counts another number of updates per epoch
    than `fit` runs (`batches`: `fit`'s `params["steps"]`, or None)."""
    while isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    schedule = (optimizer.schedule if isinstance(optimizer, DecoupledWeightDecay)
                else getattr(optimizer, "_learning_rate", None))
    built_for = getattr(schedule, "steps_per_epoch", None)
    if not isinstance(schedule, CosineWarmRestarts) or built_for is None or not batches:
        return
    accumulation = getattr(optimizer, "gradient_accumulation_steps", None) or 1
    updates = batches / accumulation
    if abs(updates - built_for) <= 1e-9 * updates:
        return
    per = f" ({batches} batches / gradient_accumulation_steps={accumulation})" if (
        accumulation > 1) else ""
    ends = [f"{end / updates:.4g}" for end in schedule.restart_steps(3)]
    warnings.warn(
        f"The learning-rate schedule was built with steps_per_epoch={built_for:g}, "
        f"but this fit makes {updates:g} weight updates per epoch{per}: its "
        f"restarts fall at epochs {', '.join(ends)}, ... instead of epoch ends. "
        "Build the schedule with steps_per_epoch=keras_adamwr.batches_per_epoch("
        "num_examples, batch_size) (Keras runs a last, smaller batch: ceil, not "
        "floor).", UserWarning, stacklevel=2)


def epoch_begin(model):
    wrapper = _wrapper(model)
    if wrapper is not None:
        wrapper.begin, wrapper.last_begin, wrapper.added = None, -1, False


def batch_begin(model, batch):
    wrapper = _wrapper(model)
    if wrapper is not None:
        wrapper.begin = batch


def last_call_begin(model):
    """First batch of the epoch's last completed call, or -1."""
    wrapper = _wrapper(model)
    return -1 if wrapper is None else wrapper.last_begin


def epoch_end(model, logs, step=None):
    """Puts the values in the epoch's `logs` (in place) if the last call
    did not; learns the number of batches of an epoch of unknown size."""
    wrapper = _wrapper(model)
    if wrapper is None:
        return
    if wrapper.steps is None and wrapper.last_begin >= 0 and not model.stop_training:
        spe = getattr(model, "steps_per_execution", 1) or 1
        wrapper.steps = wrapper.last_begin + spe
    if logs is not None and not wrapper.added:
        logs.update(current_values(model.optimizer, step))


def uninstall(model):
    function = getattr(model, "train_function", None)
    if isinstance(function, _Wrapped):
        model.train_function = function.function
