"""AnytimeRecorder: validation at the end of every warm-restart cycle."""

import inspect
import numbers
import os
import time
import warnings

import keras

from keras_adamwr.callbacks import hyperparameters
from keras_adamwr._checks import check_choice
from keras_adamwr._checks import check_number
from keras_adamwr.callbacks._anytime_files import RecordFiles
from keras_adamwr.callbacks._anytime_lock import FolderLock
from keras_adamwr.callbacks._anytime_files import remove_temporary_files
from keras_adamwr.callbacks._anytime_plot import plot_anytime
from keras_adamwr.callbacks._anytime_run import RunLedger
from keras_adamwr.optimizers.base import DecoupledWeightDecay
from keras_adamwr.callbacks.snapshots import list_snapshots
from keras_adamwr.callbacks.snapshots import remove_partial_snapshots
from keras_adamwr.callbacks.snapshots import save_snapshot



class AnytimeRecorder(keras.callbacks.Callback):
    """Evaluates the model at the end of every restart cycle (anytime curve).

    Loshchilov & Hutter take the weights at the end of each warm-restart
    cycle, where the schedule multiplier `eta_t` is at its minimum, as the
    optimizer's answer at that time, and compare methods by the validation
    error reached there. This callback records that curve.

    Cycle ends are read off the optimizer's own update counter
    (`optimizer.iterations`, which counts weight updates: skipped
    mixed-precision steps and gradient accumulation are accounted for) and
    the schedule's `restart_steps(n)`, never by counting batches. The
    counter is read at each epoch end, and between `train_function` calls
    (once per `steps_per_execution` batches) only once the next cycle end
    may have been reached (a batch makes at most one update), so the fit
    does not wait for the device at every step; a cycle that ended since
    the last read is evaluated then. When several cycles ended
    since the last poll, the model is evaluated once and one row is written
    per cycle, all with the same metrics and `evaluated_step`. Cycles that
    end on the same step (sub-step cycles with `t_mul < 1`) give one row.

    Each row of `records` (a list of dicts) holds: `cycle` (index i of the
    cycle that ended), `step` (its boundary, `restart_steps(...)[i]`, in
    weight updates), `epoch` (that boundary in epochs: `step *
    gradient_accumulation_steps / batches_per_epoch`, the data position had
    no step been skipped), `evaluated_step` and `evaluated_epoch` (where the
    evaluation actually happened; later than the boundary when polls are
    sparser than updates), `wall_time` (seconds since training began,
    continued across resumed runs), `learning_rate` and `eta` (of the
    cycle's last update, `schedule(step - 1)`), `weight_decay_effective`
    (the factor `c_t` of `theta <- theta - c_t * theta` in that update:
    `optimizer.decay_coefficient` for this package's optimizers,
    `weight_decay * learning_rate` for Keras ones, else None) and the
    validation metrics prefixed `val_`.

    The weights evaluated are those at `evaluated_step`; `evaluate` runs
    with the training metrics' state saved and restored, so `fit`'s epoch
    logs are unaffected. With `log_dir`, rows go to `anytime.csv` and
    `anytime.json` as they come (appended in place and synced; see
    docs/callback.md for the layout): a crash loses no recorded row, and
    what it cut short is repaired when the run resumes.

    Results are never deleted. `log_dir` and `snapshot_dir` also hold
    `anytime-run.json`: a run id and a fingerprint of the weights at every
    epoch end, cycle end and end of `fit`. When the first epoch of a `fit`
    begins (after every callback's `on_train_begin`, so after
    `BackupAndRestore` or `load_model` restored the optimizer), a folder
    holding results is continued only by the same run: a fit at step > 0
    whose weights match that run's fingerprint at that step (at a step
    with no fingerprint, a mid-epoch save, it is accepted with a warning
    if nothing lies past its step). It then
    drops rows and snapshots past its step (a timeline rolled back by
    `BackupAndRestore`) and counts cycles ending at or before it as done.
    Any other fit (a fresh model at step 0, another model) gets a
    `ValueError` naming the folder before training, and nothing is
    deleted.

    `learning_rate`, `eta`, `weight_decay_effective` and `cycle` of the
    next update are added to every epoch's logs, as `HyperparameterLogger`
    does (computed in Python from the counter; add
    `HyperparameterLogger(per_batch=True)` for every step's logs), so
    `History`, `CSVLogger` and `TensorBoard` see them wherever they are in
    the callback list. A warning names a schedule built for another number
    of batches per epoch than `fit` runs. With `verbose=1` each cycle end
    prints one line, on its own line below Keras' progress bar.

    Args:
        validation_data: What `Model.evaluate` takes: `(x, y)`, `(x, y,
            sample_weight)` or a re-iterable dataset (`tf.data.Dataset`,
            `keras.utils.PyDataset`, torch `DataLoader`); a generator or
            iterator is refused (it would be used up by the first cycle
            end). Required.
        log_dir: Folder (`~` expanded) for `anytime.csv`, `anytime.json`, TensorBoard
            scalars (in `log_dir/anytime`) and the default plot. Defaults
            to `None` (records kept in memory only).
        steps_per_epoch: Batches per epoch, as in `Model.fit`. Defaults to
            `None`: Keras' count, or the first epoch's.
        snapshot_dir: Folder (`~` expanded) for the weights at each cycle end,
            `snapshot-cycle{i:03d}.weights.h5`, for snapshot ensembles (see
            `snapshot_ensemble_predict`). Defaults to `None` (no snapshots).
        keep_snapshots: Keep only the last k snapshots, an integer >= 1.
            Defaults to `None` (keep all).
        tensorboard: Also write each row as TensorBoard scalars (step:
            the boundary step), needs `log_dir` and TensorFlow. Defaults to
            `False`.
        verbose: 1 prints one line per cycle end, 0 is silent. Defaults
            to `1`.
        evaluate_kwargs: Extra `Model.evaluate` arguments (`batch_size`,
            `steps`, `callbacks`, `verbose`), e.g. `{"batch_size": 256}`;
            other names are refused at once. Defaults to `None`.

    Examples:

        >>> recorder = keras_adamwr.AnytimeRecorder((x_val, y_val), log_dir="runs/a")
        >>> model.compile(keras_adamwr.AdamWR(1e-3, first_cycle_steps=10 * spe),
        ...               "sparse_categorical_crossentropy", metrics=["accuracy"])
        >>> model.fit(x, y, epochs=70,
        ...           callbacks=[keras.callbacks.CSVLogger("log.csv"), recorder])
        >>> recorder.records[-1]["val_accuracy"], recorder.plot()

    References:
        Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR
        2019, https://arxiv.org/abs/1711.05101; "SGDR: Stochastic Gradient
        Descent with Warm Restarts", ICLR 2017,
        https://arxiv.org/abs/1608.03983.
    """

    def __init__(self, validation_data, log_dir=None, steps_per_epoch=None,
                 snapshot_dir=None, keep_snapshots=None, tensorboard=False,
                 verbose=1, evaluate_kwargs=None):
        super().__init__()
        self.validation_data = _check_validation_data(validation_data)
        self.log_dir = _optional_path("log_dir", log_dir)
        self.steps_per_epoch = _optional_count("steps_per_epoch", steps_per_epoch)
        self.snapshot_dir = _optional_path("snapshot_dir", snapshot_dir)
        self.keep_snapshots = _optional_count("keep_snapshots", keep_snapshots)
        if keep_snapshots is not None and snapshot_dir is None:
            raise ValueError("Argument `keep_snapshots` needs `snapshot_dir`. "
                             f"Received: keep_snapshots={keep_snapshots}, "
                             "snapshot_dir=None")
        self.tensorboard = check_choice("tensorboard", tensorboard, (False, True))
        if tensorboard and log_dir is None:
            raise ValueError("Argument `tensorboard` needs `log_dir`. Received: "
                             "tensorboard=True, log_dir=None")
        self.verbose = check_choice("verbose", verbose, (0, 1))
        allowed = set(inspect.signature(keras.Model.evaluate).parameters) - {
            "self", "x", "y", "sample_weight", "return_dict", "kwargs"}
        if not isinstance(evaluate_kwargs, (dict, type(None))) or (
                set(evaluate_kwargs or {}) - allowed):
            error = ValueError if isinstance(evaluate_kwargs, dict) else TypeError
            raise error("Argument `evaluate_kwargs` must be a dict of "
                        f"Model.evaluate arguments ({', '.join(sorted(allowed))}). "
                        f"Received: evaluate_kwargs={evaluate_kwargs!r}")
        self.evaluate_kwargs = dict(evaluate_kwargs or {})
        self.records = []
        self._schedule, self._writer = None, None
        self._files = RecordFiles(self.log_dir) if self.log_dir else None
        self._ledger = RunLedger([("log_dir", self.log_dir),
                                  ("snapshot_dir", self.snapshot_dir)])
        self._resumed, self._last_step, self._hooked = False, 0, False
        self._lock = FolderLock([("log_dir", self.log_dir),
                                 ("snapshot_dir", self.snapshot_dir)])

    # Training hooks.

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        while isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer = optimizer.inner_optimizer
        self._optimizer, self._schedule = optimizer, _schedule_of(optimizer)
        if not callable(getattr(self._schedule, "restart_steps", None)):
            raise ValueError(
                "AnytimeRecorder needs an optimizer whose learning rate is a "
                "restart schedule with `restart_steps(count)`, such as "
                "keras_adamwr.AdamWR, SGDWR or CosineWarmRestarts. Received: "
                f"learning_rate={self._schedule!r} of optimizer {optimizer.name!r}")
        self._accumulation = optimizer.gradient_accumulation_steps or 1
        if self._accumulation > 1 and not isinstance(optimizer, DecoupledWeightDecay):
            raise ValueError(
                "With `gradient_accumulation_steps`, Keras optimizers evaluate "
                "the schedule at micro-batches, not weight updates; use a "
                "keras_adamwr optimizer. Received: gradient_accumulation_steps="
                f"{self._accumulation} with optimizer {optimizer.name!r}")
        self._lock.acquire()  # one fit per folder (see _anytime_lock.py)
        self._resumed = False
        self._hooked = hyperparameters.install(self.model, self.params)

    def _resume(self):
        """Picks up where the optimizer's counter is; runs when the first
        epoch begins, after every `on_train_begin` (BackupAndRestore's
        restore included, whatever the callback order)."""
        self._resumed = True
        self._cycles, self._ends, self._count, self._complete = [], [], 0, False
        step = self._last_step = self._step()
        self._extend(step)
        if self.log_dir is not None:
            self.records = self._files.read()
        occupied = [name for name, found in (
            ("log_dir", self.log_dir is not None and (
                self.records or self._files.has_results())),
            ("snapshot_dir", self.snapshot_dir is not None
             and list_snapshots(self.snapshot_dir))) if found]
        later = any(row["step"] > step for row in self.records)
        if self.snapshot_dir is not None:
            ends = dict(zip(self._cycles, self._ends))
            later = later or any(ends.get(cycle, step + 1) > step
                                 for cycle, _ in list_snapshots(self.snapshot_dir))
        # Raises, deleting nothing, unless this is the run that wrote them.
        self._ledger.claim(step, self.model, occupied, later)
        kept = {row["step"]: row for row in self.records if row["step"] <= step}
        self.records = sorted(kept.values(), key=lambda row: row["step"])
        # A cycle that ended at the restored step but has no row (a backup
        # taken before the row was written) is evaluated now.
        recorded = {row["step"] for row in self.records}
        self._next = sum(end < step or (end == step and end in recorded)
                         for end in self._ends)
        walls = [row.get("wall_time") for row in self.records]
        self._time_offset = max((w for w in walls if isinstance(w, (int, float))),
                                default=0.0)
        self._start = time.perf_counter()
        self._batches = self.steps_per_epoch or self.params.get("steps")
        self._close_writer()  # a writer left open by a crashed run
        if self.log_dir is not None:
            remove_temporary_files(self.log_dir)
            self._files.rewrite(self.records)
            if self.tensorboard:
                self._writer = _summary_writer(os.path.join(self.log_dir, "anytime"))
        if self.snapshot_dir is not None:
            remove_partial_snapshots(self.snapshot_dir)
            remove_temporary_files(self.snapshot_dir)
            if self._next < len(self._ends):
                for cycle, path in list_snapshots(self.snapshot_dir):  # rolled back
                    if cycle >= self._cycles[self._next]:
                        os.remove(path)
        if self._next < len(self._ends) and self._ends[self._next] <= step:
            self._epoch, self._last_batch = None, -1
            self._poll()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._last_batch, self._bar_drawn = epoch, -1, False
        hyperparameters.epoch_begin(self.model)
        if not self._resumed:
            self._resume()
            self._epoch, self._last_batch = epoch, -1
        self._begin, self._known_batch = None, 0  # `_last_step` is read here

    def on_train_batch_begin(self, batch, logs=None):
        # Polled here, after the previous `train_function` call (its batches
        # end at `batch - 1`), not in `on_train_batch_end`: overriding that
        # hook would make Keras sync every step's logs. The counter is read
        # only once it may have reached the next cycle end: each batch makes
        # at most one weight update.
        hyperparameters.batch_begin(self.model, batch)
        self._begin = batch
        if batch <= 0:
            return
        self._last_batch, self._bar_drawn = batch - 1, True
        reach = self._last_step + batch - self._known_batch
        if self._next < len(self._ends) and self._ends[self._next] <= reach:
            self._poll()
            self._known_batch = batch
        elif self._complete is False and self._ends and self._ends[-1] <= reach:
            self._poll()  # the table must grow first
            self._known_batch = batch

    def on_epoch_end(self, epoch, logs=None):
        last = hyperparameters.last_call_begin(self.model)
        if last >= 0:  # the end of the epoch's last completed call
            spe = getattr(self.model, "steps_per_execution", 1) or 1
            steps = self.params.get("steps")
            self._last_batch, self._bar_drawn = last + spe - 1, True
            if steps:
                self._last_batch = min(self._last_batch, steps - 1)
        if self._batches is None and self._last_batch >= 0 and not self.model.stop_training:
            self._batches = self._last_batch + 1
        self._poll()
        self._ledger.checkpoint(self._last_step, self.model)
        # learning_rate, eta, weight_decay_effective and cycle of the next
        # update, from the counter just read (the epoch's last step logs
        # carry them already when the batch count is known).
        hyperparameters.epoch_end(self.model, logs, self._last_step)

    def on_train_end(self, logs=None):
        if self._hooked:
            hyperparameters.uninstall(self.model)
            self._hooked = False
        if self._resumed:
            self._ledger.checkpoint(self._step(), self.model)
        self._close_writer()
        self._lock.release()

    def _close_writer(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # Detection and recording.

    def _step(self):
        # On JAX, Keras' `model` property first copies the running fit's
        # state into the variables (they hold none mid-epoch otherwise).
        _ = self.model
        return int(self._optimizer.iterations)

    def _extend(self, step):
        """Tabulates the distinct cycle ends until one lies past `step`.

        With `t_mul < 1` the ends pile up on one last step: once doubling
        the count adds no later end, the table is complete.
        """
        while not self._complete and (not self._ends or self._ends[-1] <= step):
            self._count = max(16, 2 * self._count)
            ends = [int(end) for end in self._schedule.restart_steps(self._count)]
            self._complete = bool(self._ends) and ends[-1] == self._ends[-1]
            self._cycles, self._ends = [], []
            for cycle, end in enumerate(ends):
                if not self._ends or end > self._ends[-1]:
                    self._cycles.append(cycle)
                    self._ends.append(end)

    def _poll(self):
        step = self._last_step = self._step()
        self._extend(step)
        crossed = []
        while self._next < len(self._ends) and self._ends[self._next] <= step:
            crossed.append(self._next)
            self._next += 1
        if not crossed:
            return
        metrics = self._evaluate()
        if self._epoch is None:  # at a resume, before the first batch
            evaluated_epoch = self._epoch_of(step)
        elif self._batches and self._last_batch >= 0:
            evaluated_epoch = self._epoch + (self._last_batch + 1) / self._batches
        else:
            evaluated_epoch = None
        for index in crossed:
            end = self._ends[index]
            row = {"cycle": self._cycles[index], "step": end,
                   "epoch": self._epoch_of(end), "evaluated_step": step,
                   "evaluated_epoch": evaluated_epoch,
                   "wall_time": self._time_offset + time.perf_counter() - self._start,
                   **self._rates(end - 1), **metrics}
            self._record(row)
        if self.snapshot_dir is not None:
            save_snapshot(self.model, self.snapshot_dir,
                          self._cycles[crossed[-1]], self.keep_snapshots)
        self._ledger.checkpoint(step, self.model)

    def _epoch_of(self, step):
        return step * self._accumulation / self._batches if self._batches else None

    def _rates(self, step):
        """Rate, `eta` and decay factor of the update made at counter `step`
        (in plain Python from the restart table: no tensor is evaluated)."""
        rate = hyperparameters.schedule_rate(self._schedule, step)
        if callable(getattr(self._schedule, "multiplier", None)):
            eta = float(self._schedule.multiplier(step))
        else:
            base = getattr(self._optimizer, "base_learning_rate", None)
            eta = rate / base if base else None
        if isinstance(self._optimizer, DecoupledWeightDecay):
            decay = hyperparameters.decay_coefficient(
                self._optimizer, step, rate, hyperparameters.scale_of(self._optimizer))
        else:
            weight_decay = getattr(self._optimizer, "weight_decay", None)
            decay = (float(weight_decay) * rate
                     if isinstance(weight_decay, numbers.Real) else None)
        return {"learning_rate": rate, "eta": eta, "weight_decay_effective": decay}

    def _evaluate(self):
        # evaluate() resets the metrics that fit() is still accumulating.
        variables = list(self.model.metrics_variables)
        saved = [variable.numpy() for variable in variables]
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(self.validation_data)
        try:
            results = self.model.evaluate(
                x, y, sample_weight=sample_weight,
                **{"verbose": 0, **self.evaluate_kwargs, "return_dict": True})
        finally:
            for variable, value in zip(variables, saved):
                variable.assign(value)
        return {f"val_{name}": float(value) for name, value in results.items()}

    def _record(self, row):
        self.records.append(row)
        if self.log_dir is not None:
            self._files.append(self.records)
        if self._writer is not None:
            with self._writer.as_default():
                for name, value in row.items():
                    if name not in ("cycle", "step") and value is not None:
                        _tf_scalar(name, value, row["step"])
            self._writer.flush()
        if self.verbose:
            late = (f", evaluated at step {row['evaluated_step']}"
                    if row["evaluated_step"] != row["step"] else "")
            metrics = ", ".join(f"{name} {value:.4g}" for name, value in row.items()
                                if name.startswith("val_"))
            epoch = "" if row["epoch"] is None else f" (epoch {row['epoch']:.4g})"
            # On its own line, not glued onto Keras' progress bar.
            newline = "\n" if self._bar_drawn and self.params.get("verbose") == 1 else ""
            print(f"{newline}AnytimeRecorder: cycle {row['cycle']} ended at step "
                  f"{row['step']}{epoch}{late}: lr {row['learning_rate']:.4g}, "
                  f"{metrics}")

    # Snapshots.

    @property
    def snapshot_paths(self):
        """Paths of the snapshots kept, oldest cycle first."""
        if self.snapshot_dir is None:
            return []
        return [path for _, path in list_snapshots(self.snapshot_dir)]

    def plot(self, path=None, metric=None):
        """Draws the anytime curve as a PNG and returns its path.

        Validation error (`1 - metric` for an accuracy, else the metric) at
        each cycle end against epochs (steps when unknown), restarts marked,
        over the learning rate of every update on a twin axis. `metric`
        defaults to `val_accuracy` if recorded, else `val_loss`; `path` to
        `log_dir/anytime.png` (or `anytime.png`). Needs matplotlib.
        """
        if path is None:
            path = os.path.join(self.log_dir or "", "anytime.png")
        return plot_anytime(self.records, self._schedule, self._last_step, path, metric)


def _schedule_of(optimizer):
    """The learning-rate schedule object (not its current value), or None."""
    if isinstance(optimizer, DecoupledWeightDecay):
        return optimizer.schedule
    # Keras has no public accessor: `optimizer.learning_rate` is the value.
    schedule = getattr(optimizer, "_learning_rate", None)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return schedule
    return None


def _summary_writer(folder):
    """A `tf.summary` writer, or None (with a warning) without TensorBoard."""
    try:
        import tensorboard  # noqa: F401  (tf.summary.scalar needs it)
        import tensorflow as tf
    except ImportError:
        warnings.warn("AnytimeRecorder(tensorboard=True) needs TensorFlow "
                      "and TensorBoard; no TensorBoard scalars are written.",
                      stacklevel=3)
        return None
    return tf.summary.create_file_writer(folder)


def _tf_scalar(name, value, step):
    import tensorflow as tf

    tf.summary.scalar(name, value, step=step)


def _optional_count(name, value):
    if value is None:
        return None
    try:
        return check_number(name, value, 1, integer=True)
    except (TypeError, ValueError) as error:  # the same error, "or None" added
        raise type(error)(f"Argument `{name}` must be an integer >= 1 or None. "
                          f"Received: {name}={value!r}") from None


def _optional_path(name, value):
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"Argument `{name}` must be a folder path or None. "
                        f"Received: {name}={value!r}")
    if value is None:
        return None
    path = os.path.expanduser(os.fspath(value))
    if not path:
        raise ValueError(f"Argument `{name}` must be a non-empty folder path "
                         f"or None (\".\" for the current folder). Received: "
                         f"{name}={value!r}")
    return path


def _check_validation_data(data):
    """`data` if `Model.evaluate` can take it at every cycle end."""
    if isinstance(data, (tuple, list)):
        if not 1 <= len(data) <= 3:
            raise ValueError("Argument `validation_data` must be (x, y), (x, y, "
                             "sample_weight) or a dataset. Received: a "
                             f"{type(data).__name__} of length {len(data)}")
        return tuple(data)
    if isinstance(data, keras.utils.PyDataset):
        return data  # indexable (no `__iter__` before Keras 3.11)
    if data is None or not hasattr(data, "__iter__") or hasattr(data, "shape"):
        error = ValueError if data is None else TypeError
        raise error("Argument `validation_data` must be (x, y), (x, y, "
                    "sample_weight) or a dataset (tf.data.Dataset, "
                    "keras.utils.PyDataset, torch DataLoader). Received: "
                    f"validation_data={data!r}")
    if iter(data) is data:  # a generator or iterator: empty after one pass
        raise TypeError("Argument `validation_data` must be re-iterable: it "
                        "is evaluated at every cycle end, and a generator or "
                        "iterator is used up by the first. Pass a "
                        "tf.data.Dataset, a keras.utils.PyDataset or (x, y) "
                        f"arrays. Received: validation_data={data!r}")
    return data
