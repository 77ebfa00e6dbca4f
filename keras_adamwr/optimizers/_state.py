"""Optimizer state beyond Keras': a settable rate with a schedule, and
saved state that names its format.

* `learning_rate = x` on an optimizer built with a `LearningRateSchedule`
  (what `ReduceLROnPlateau` does; `LearningRateScheduler` is refused) scales
  the schedule; the scale is the variable `learning_rate_scale`, created last,
  after every 0.2.0 variable.
* `save_own_variables` writes Keras' keys "0", "1", ... and a format tag;
  `load_own_variables` refuses state of another optimizer class, accepts
  0.2.0 state (untagged, without the scale) and keeps state loaded before
  `build` until `build` (see docs/saving.md).

`OptimizerState` is a mixin of `DecoupledWeightDecay`; it uses its
`schedule`, `name` and `_scratch`.
"""

import json
import sys

import keras
import numpy as np
from keras import ops

from keras_adamwr._checks import check_number

_Schedule = keras.optimizers.schedules.LearningRateSchedule
_KerasOptimizer = keras.optimizers.Optimizer
# Key of the format tag that `save_own_variables` writes beside the
# variables "0", "1", ... (Keras' own keys).
FORMAT_KEY = "keras_adamwr_format"
# Key of the list (JSON) naming, for each saved variable in order, the
# model variable it belongs to ("dense/kernel:momentum") or its own name.
VARIABLES_KEY = "keras_adamwr_variables"


def _saved_optimizer_name(store):
    """The optimizer name Keras' H5 store saved beside the variables
    (`{"name": optimizer.name}` attributes of the "vars" group since Keras
    3.x; pinned in tests/test_keras_hooks.py), or None."""
    group = getattr(store, "_h5_entry_group", None)
    attributes = getattr(group, "attrs", None)
    if attributes is None:
        return None
    name = attributes.get("name")
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return name if isinstance(name, str) else None


def _refuse_learning_rate_scheduler(optimizer, learning_rate):
    """Raises `TypeError` when `keras.callbacks.LearningRateScheduler` sets
    the rate of a schedule-built optimizer.

    Its function returns the absolute rate of an epoch; this optimizer's
    rate is a schedule, which a set rate only scales from this step on
    (for `ReduceLROnPlateau`, whose new rate is a factor of the current
    one). Keras refuses both; we keep the scaling and refuse the absolute
    rate, which would otherwise silently rescale the cosine. Recognised by
    the caller: a `LearningRateScheduler` method a few frames up.
    """
    frame = sys._getframe(2)
    for _ in range(6):
        if frame is None:
            return
        caller = frame.f_locals.get("self")
        if isinstance(caller, keras.callbacks.LearningRateScheduler):
            raise TypeError(
                f"keras.callbacks.LearningRateScheduler cannot set the learning "
                f"rate of {type(optimizer).__name__} {optimizer.name!r}: its "
                "learning rate is a schedule "
                f"({type(optimizer.schedule).__name__}), and a set rate would "
                "only scale that schedule (the rate returned for an epoch "
                "would not be the rate of the epoch). Use either the schedule "
                "(e.g. AdamWR or learning_rate=CosineWarmRestarts(...)) or the "
                "callback with a float learning rate (keras_adamwr.AdamW("
                "learning_rate=<float>), the decay follows it with "
                "decay_scaling='schedule'); to scale the schedule, use "
                "keras.callbacks.ReduceLROnPlateau or set "
                "`optimizer.learning_rate` yourself (docs/algorithms.md). "
                f"Received: learning_rate={learning_rate!r}"
            )
        frame = frame.f_back


class OptimizerState:
    """Mixin: the settable scaled rate and tagged saved state."""

    @property
    def learning_rate(self):
        """The current rate `lr_t`; settable, also with a schedule.

        With a float learning rate, setting it assigns the rate (as in
        Keras). With a `LearningRateSchedule`, setting it to `x` scales the
        whole schedule by `x / (the schedule's rate at this update)`, so
        that `keras.callbacks.ReduceLROnPlateau` works: the rate is `x` now
        and keeps the schedule's shape (restarts included) from there, and
        with `decay_scaling="schedule"` `eta_t`, hence the decay, is scaled
        alike (as when a float rate is changed). `LearningRateScheduler`,
        whose rates are absolute, raises `TypeError` with a schedule. A
        rate whose decay factor would reach 1 at some step raises
        `ValueError`.
        The scale is optimizer state (`learning_rate_scale`), saved and
        restored with the other variables. Setting a schedule or callable
        replaces the learning rate, as in Keras.
        """
        return self._get_current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        schedule = self.schedule
        if (
            callable(self._learning_rate)
            and schedule is None
            and not isinstance(learning_rate, _Schedule)
            and not callable(learning_rate)
        ):
            raise TypeError(
                "This optimizer's learning rate is a callable: a number cannot "
                "be set (and a callable cannot be scaled). Pass a float or a "
                "`LearningRateSchedule` as `learning_rate` to make it settable. "
                f"Received: learning_rate={learning_rate!r}"
            )
        if (
            schedule is None
            or isinstance(learning_rate, _Schedule)
            or callable(learning_rate)
        ):
            if schedule is None and not callable(learning_rate):
                self._check_scaled_decay(learning_rate, self._learning_rate_argument())
            if self._learning_rate_scale is not None:
                self._learning_rate_scale.assign(1.0)
            self._scratch.pending_scale = 1.0
            _KerasOptimizer.learning_rate.fset(self, learning_rate)
            return
        if ops.is_tensor(learning_rate) or isinstance(learning_rate, np.ndarray):
            learning_rate = float(ops.convert_to_numpy(learning_rate))
        learning_rate = check_number("learning_rate", learning_rate, 0)
        _refuse_learning_rate_scheduler(self, learning_rate)
        unscaled = float(ops.convert_to_numpy(schedule(self.iterations)))
        if unscaled > 0:
            self._check_scaled_decay(learning_rate, unscaled)
            self._set_learning_rate_scale(learning_rate / unscaled)
        elif learning_rate != 0:
            raise ValueError(
                "Argument `learning_rate` cannot be set on this optimizer now: its "
                f"schedule's rate at update {int(self.iterations)} is 0 (e.g. the "
                "start of a warm-up), so no scale of the schedule gives "
                f"learning_rate={learning_rate!r}. Received: "
                f"learning_rate={learning_rate!r}"
            )

    def _check_scaled_decay(self, learning_rate, current):
        """Refuses a rate whose decay factor would reach 1 at some step:
        `learning_rate` replaces the rate `current` (unscaled schedule
        value, or the float rate) now, and so scales the peak."""
        if ops.is_tensor(learning_rate) or isinstance(learning_rate, np.ndarray):
            learning_rate = float(ops.convert_to_numpy(learning_rate))
        if not isinstance(learning_rate, (int, float)) or not current:
            return
        scale = learning_rate / current
        peak = self._peak_decay_factor(scale)
        if peak is not None and peak[3] >= 1:
            name, value, _, factor = peak
            message = self._decay_factor_message(name, value, factor, scale)
            raise ValueError(
                f"Argument `learning_rate` cannot be set to {learning_rate!r}: "
                f"the decay factor would reach c_t = {factor:.4g} >= 1. "
                f"({message}) Received: learning_rate={learning_rate!r}"
            )

    def _set_learning_rate_scale(self, scale):
        if self._learning_rate_scale is None:
            self._scratch.pending_scale = scale
        else:
            self._learning_rate_scale.assign(scale)

    def _scaled(self, rate):
        """`rate` times the schedule's scale (set via `learning_rate`)."""
        scale = self._learning_rate_scale
        if scale is None:
            if self._scratch.pending_scale == 1.0:
                return rate
            scale = self._scratch.pending_scale
        rate = ops.convert_to_tensor(rate)
        return rate * ops.cast(scale, rate.dtype)

    def load_own_variables(self, store):
        """Restores what `save_own_variables` wrote, or raises; never skips.

        Keras' version only warns and keeps the fresh state when the number
        of variables differs. A built optimizer checks count and shapes and
        raises `ValueError` on a mismatch (a file saved with another
        `amsgrad`, `momentum`, a float vs a schedule learning rate, or for
        other variables). An optimizer not built yet keeps the values and
        assigns them when `build` creates its variables, as
        `tf.train.Checkpoint` does, so `load_weights` right after `compile`
        loses nothing.
        """
        keys = set(store.keys())
        tagged = FORMAT_KEY in keys
        if tagged:
            self._check_format_tag(store[FORMAT_KEY])
            keys.discard(FORMAT_KEY)
        else:
            self._check_untagged_state(store)
        owners = None
        if VARIABLES_KEY in keys:  # 0.5.0 and newer
            keys.discard(VARIABLES_KEY)
            owners = json.loads(bytes(np.asarray(store[VARIABLES_KEY], np.uint8)).decode())
        values = [np.asarray(store[str(index)]) for index in range(len(keys))]
        if self.built:
            self._assign_state(values, tagged, owners=owners)
        else:
            self._scratch.pending_state = (values, tagged, owners)

    def save_own_variables(self, store):
        """Keras' keys "0", "1", ... (one per variable, in order) and a
        format tag, `FORMAT_KEY`, naming the state's layout (e.g.
        "keras_adamwr.SGDW/1"): state saved by another optimizer class
        (Keras' `SGD` keeps `-lr * g` in its momentum, `SGDW` `+lr * g`)
        is refused on load instead of being read with the wrong meaning."""
        super().save_own_variables(store)
        store[FORMAT_KEY] = np.frombuffer(self._state_format().encode(), np.uint8)
        owners = json.dumps(self._variable_owners()).encode()
        store[VARIABLES_KEY] = np.frombuffer(owners, np.uint8)

    def _variable_owners(self):
        """For each variable, in order: "<model variable path>:<slot>" for
        a slot, else the variable's own name (`iteration`, ...)."""
        owners = self._scratch.owners
        return [owners.get(id(variable), variable.name) for variable in self.variables]

    def _check_variable_owners(self, saved, restored=False):
        """Refuses state saved for the same model variables in another
        order (layers created in another order): by position, each slot
        would get another variable's moments. Paths cannot settle which
        variable is which (Keras names layers in creation order), so the
        state is refused rather than matched by path. Other differences
        (renamed layers) keep Keras' positional matching."""
        current = self._variable_owners()
        if saved is None or saved == current or sorted(saved) != sorted(current):
            return
        first = next(i for i, (a, b) in enumerate(zip(saved, current)) if a != b)
        raise ValueError(
            f"Optimizer {self.name!r} ({type(self).__name__}) cannot load this "
            "optimizer state: it was saved for the same model variables in "
            f"another order. Its variable {first} belongs to {saved[first]!r}, "
            f"this optimizer's variable {first} to {current[first]!r}: the "
            "model's layers were created (or listed) in another order than "
            "when it was saved, and by position each slot would get another "
            "variable's moments. "
            + ("A tf.train.Checkpoint restored before `build` has already "
               "assigned them: do not train with this optimizer. " if restored
               else "Nothing was loaded. ")
            + "Create the layers in the saved order, or load the model weights "
            "only (`skip_mismatch=True` to `load_weights`, or leave the "
            "optimizer out of the `tf.train.Checkpoint`)."
        )

    def _state_format(self):
        return f"keras_adamwr.{self._STATE_FAMILY}/1"

    def _check_format_tag(self, tag):
        tag = bytes(np.asarray(tag, np.uint8)).decode("utf-8", "replace")
        if tag != self._state_format():
            raise ValueError(
                f"Optimizer {self.name!r} ({type(self).__name__}) cannot load "
                f"optimizer state of format {tag!r}: its format is "
                f"{self._state_format()!r}. The state was saved by another "
                "optimizer class (or a newer keras_adamwr); compile with the "
                "optimizer that wrote the file, or pass `skip_mismatch=True` "
                "to `load_weights` to load the model weights only."
            )

    def _check_untagged_state(self, store):
        """State without a tag: keras_adamwr 0.2.0 or another optimizer.

        Their variables cannot be told apart by count or shape (Keras'
        `SGD(momentum=0.9)` has `SGDW`'s layout). Keras stores the saving
        optimizer's name beside them: untagged state loads only when that
        name is a 0.2.0 default name of this family ("adamw"/"adamwr",
        "sgdw"/"sgdwr") or this optimizer's own name, or when the store
        carries no name (then as in 0.2.0, by count and shapes only).
        """
        saved_name = _saved_optimizer_name(store)
        if saved_name is None or saved_name == self.name:
            return
        if saved_name in self._UNTAGGED_NAMES:
            return
        raise ValueError(
            f"Optimizer {self.name!r} ({type(self).__name__}) cannot load this "
            "optimizer state: it carries no keras_adamwr format tag and was "
            f"saved by an optimizer named {saved_name!r}, so it may come from "
            "another optimizer class whose variables mean something else "
            "(keras.optimizers.SGD stores its momentum as -lr * g, SGDW as "
            "+lr * g). If keras_adamwr 0.2.0 wrote it, create the optimizer "
            f"with name={saved_name!r}, as when it was saved; to load the model "
            "weights only, pass `skip_mismatch=True` to `load_weights`."
        )

    def _restore_pending_state(self):
        """Called at the end of every subclass `build`, after its slots."""
        if self.schedule is not None and self._learning_rate_scale is None:
            # Added in 0.3.0, after every 0.2.0 variable: old state still
            # lines up (it just lacks this one, see `_assign_state`).
            self._learning_rate_scale = self.add_variable(
                (), initializer=keras.initializers.Constant(self._scratch.pending_scale),
                dtype="float32", aggregation="only_first_replica",
                name="learning_rate_scale",
            )
        owners = getattr(self._scratch, "pending_owners", None)
        if owners is not None:  # from a tf.train.Checkpoint restored before `build`
            self._scratch.pending_owners = None
            self._check_variable_owners(owners, restored=True)
        pending, self._scratch.pending_state = self._scratch.pending_state, None
        if pending is None:
            return
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # TF's `fit` builds the optimizer while tracing the train step:
            # assign once, eagerly, not as an op of every step.
            with tf.init_scope():
                self._assign_state(*pending, deferred=True)
        else:
            self._assign_state(*pending, deferred=True)

    def _assign_state(self, values, tagged=True, owners=None, deferred=False):
        variables = self.variables
        if (
            not tagged
            and self._learning_rate_scale is not None
            and len(values) == len(variables) - 1
        ):
            # 0.2.0 state: no `learning_rate_scale` yet; its value was 1.
            values = values + [np.ones((), "float32")]
        if len(values) != len(variables):
            when = (
                " (loaded by `load_weights` before the optimizer was built; "
                "to load the model weights only, call "
                "`model.optimizer.build(model.trainable_variables)` first)"
                if deferred else ""
            )
            raise ValueError(
                f"Optimizer {self.name!r} ({type(self).__name__}) has "
                f"{len(variables)} variables but the saved state has "
                f"{len(values)}{when}: it was saved by an optimizer with "
                "other settings (`amsgrad`, `momentum`, a float or a "
                "schedule learning rate) or for other model variables. "
                "Compile with the optimizer that wrote the file, or pass "
                "`skip_mismatch=True` to `load_weights` to load the model "
                "weights only."
            )
        self._check_variable_owners(owners)
        for variable, value in zip(variables, values):
            if value.shape != tuple(variable.shape):
                raise ValueError(
                    f"Optimizer {self.name!r}: variable {variable.path} has "
                    f"shape {tuple(variable.shape)} but the saved state has "
                    f"shape {value.shape} at that position: the file was "
                    "saved for other model variables."
                )
        for variable, value in zip(variables, values):
            variable.assign(value)
