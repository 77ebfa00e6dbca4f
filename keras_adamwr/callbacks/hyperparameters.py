"""HyperparameterLogger: the schedule's values in every log of `fit`."""

import numbers

import keras

from keras_adamwr.optimizers.base import DecoupledWeightDecay

# The keys added to the logs, in this order.
KEYS = ("learning_rate", "eta", "weight_decay_effective", "cycle")


class HyperparameterLogger(keras.callbacks.Callback):
    """Puts the learning rate, `eta`, decay `c_t` and cycle in `fit`'s logs.

    After every training step the optimizer's current values, those of the
    next weight update, are added to the logs that step returns:

    - `learning_rate`: `optimizer.learning_rate` (with any scaling set by
      callbacks),
    - `eta`: the schedule multiplier `eta_t` (`schedule.multiplier`),
    - `weight_decay_effective`: the factor `c_t` of `theta <- theta - c_t *
      theta` (`optimizer.decay_coefficient()` for this package's
      optimizers, `weight_decay * learning_rate` for Keras ones),
    - `cycle`: the index of the restart cycle (`schedule.cycle_index`).

    A value the optimizer does not have (no schedule: no `eta`, no
    `cycle`) is left out. Because the values are part of the step's own
    logs, before any callback runs, every callback sees them whatever its
    place in the list: `History`, `CSVLogger` and `TensorBoard`'s ordinary
    train run at every epoch end (the values after the epoch's last
    update), and per batch whatever reads batch logs (for example
    `TensorBoard(update_freq="batch")`). No validation data is needed.
    `AnytimeRecorder` adds the same values.

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

    def __init__(self):
        super().__init__()
        self._installed = False

    def on_train_begin(self, logs=None):
        self._installed = install(self.model)

    def on_train_end(self, logs=None):
        if self._installed:
            uninstall(self.model)
            self._installed = False


def current_values(optimizer):
    """The hyperparameters of `optimizer`'s next update, as Python floats."""
    while isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    step = int(optimizer.iterations)
    rate = float(optimizer.learning_rate)
    if isinstance(optimizer, DecoupledWeightDecay):
        schedule = optimizer.schedule
        decay = float(optimizer.decay_coefficient())
    else:
        schedule = getattr(optimizer, "_learning_rate", None)  # Keras: no accessor
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
# per `steps_per_execution` batches and builds each batch's and the epoch's
# logs from what it returns. Pinned by tests/test_keras_hooks.py.

class _Wrapped:
    def __init__(self, model, function):
        self.model, self.function = model, function

    def __call__(self, *args, **kwargs):
        result = self.function(*args, **kwargs)
        optimizer = self.model.optimizer
        if isinstance(result, tuple):  # JAX: (logs, state), state not synced
            logs, state = result
            mapping = list(zip(optimizer.variables, state[2]))
            with keras.StatelessScope(state_mapping=mapping):
                values = current_values(optimizer)
            return {**logs, **values}, state
        return {**result, **current_values(optimizer)}


def install(model):
    """Wraps `model.train_function`; False if already wrapped."""
    function = getattr(model, "train_function", None)
    if function is None or isinstance(function, _Wrapped):
        return False
    model.train_function = _Wrapped(model, function)
    return True


def uninstall(model):
    function = getattr(model, "train_function", None)
    if isinstance(function, _Wrapped):
        model.train_function = function.function
