"""Look at a schedule before training: a table and a plot, no model needed.

Both read what the optimizer will use, from its public read-outs only:
`optimizer.schedule` (evaluated in-graph, as during training) and
`optimizer.decay_coefficient(step=...)` (the decay factor `c_t`).
"""

import math

import numpy as np
from keras import ops

from keras_adamwr._checks import check_choice
from keras_adamwr._checks import check_number
from keras_adamwr.schedules.cosine_warm_restarts import CosineWarmRestarts

_CHUNK = 1024  # steps evaluated per call (bounds the cycle-table lookup)


def _source(schedule_or_optimizer):
    """`(schedule, optimizer)`; the optimizer is None for a bare schedule."""
    if hasattr(schedule_or_optimizer, "decay_coefficient"):
        return schedule_or_optimizer.schedule, schedule_or_optimizer
    if callable(schedule_or_optimizer):
        return schedule_or_optimizer, None
    raise TypeError(
        "Argument `schedule_or_optimizer` must be a learning-rate schedule or "
        "a keras_adamwr optimizer. Received: schedule_or_optimizer="
        f"{schedule_or_optimizer!r}"
    )


def _evaluate(schedule, optimizer, steps):
    """Column arrays over `steps` (an int64 array), in chunks."""
    columns = {"learning_rate": [], "eta": [], "cycle": [], "decay": []}
    for begin in range(0, len(steps), _CHUNK):
        chunk = steps[begin : begin + _CHUNK]
        if schedule is None:  # a float learning rate
            rate = np.full(len(chunk), float(ops.convert_to_numpy(optimizer.learning_rate)))
            eta = np.ones(len(chunk))
        else:
            rate = np.asarray(ops.convert_to_numpy(schedule(chunk)), "float64")
            rate = np.broadcast_to(rate, chunk.shape)
            if isinstance(schedule, CosineWarmRestarts):
                eta = ops.convert_to_numpy(schedule.multiplier_tensor(chunk))
            else:
                peak = getattr(optimizer, "base_learning_rate", None) or float(rate.max())
                eta = rate / peak
        if isinstance(schedule, CosineWarmRestarts):
            cycle = ops.convert_to_numpy(schedule.cycle_position(chunk)[0])
        else:
            cycle = np.zeros(len(chunk), "int64")
        if optimizer is not None:
            decay = ops.convert_to_numpy(optimizer.decay_coefficient(step=chunk))
            decay = np.broadcast_to(np.asarray(decay, "float64"), chunk.shape)
        else:
            decay = np.full(len(chunk), np.nan)
        for name, values in zip(columns, (rate, eta, cycle, decay)):
            columns[name].append(np.asarray(values))
    return {name: np.concatenate(parts) for name, parts in columns.items()}


def _restarts(schedule, last):
    """Distinct steps <= `last` at which a cycle ends."""
    if not hasattr(schedule, "restart_steps"):
        return []
    count = 16
    while True:
        ends = sorted(set(schedule.restart_steps(count)))
        if ends[-1] > last or len(ends) < count:
            return [end for end in ends if end <= last]
        count *= 2


def _steps_per_epoch(schedule, steps_per_epoch):
    if steps_per_epoch is None:
        steps_per_epoch = getattr(schedule, "steps_per_epoch", None)
    if steps_per_epoch is None:
        raise ValueError(
            "Argument `steps_per_epoch` must be given when the schedule was "
            "not built with it. Received: steps_per_epoch=None")
    return check_number("steps_per_epoch", steps_per_epoch, 0, None, False)


def schedule_table(schedule_or_optimizer, epochs, steps_per_epoch=None, per="epoch"):
    """The schedule of a run of `epochs` epochs, as a list of dicts.

    Rows are plain Python values: `epoch`, `step` (the update evaluated,
    0-based: with `per="epoch"` the last update of that epoch, epoch `e`
    ending after `floor(e * steps_per_epoch)` updates), `learning_rate`,
    `eta` (the multiplier), `decay` (the factor `c_t` of `theta <- theta -
    c_t * theta`; None for a bare schedule), `cycle` (index) and
    `cycle_end` (a cycle ends in that epoch, or with that update).

    Args:
        schedule_or_optimizer: A learning-rate schedule (such as
            `CosineWarmRestarts`) or an optimizer of this package.
        epochs: Length of the run in epochs, a number > 0.
        steps_per_epoch: Weight updates per epoch. Defaults to the
            schedule's `steps_per_epoch`.
        per: `"epoch"` (one row per epoch) or `"step"` (one per update).
            Defaults to `"epoch"`.

    Examples:

        >>> schedule = CosineWarmRestarts(1e-3, first_cycle_epochs=1,
        ...                               steps_per_epoch=391)
        >>> [row["cycle_end"] for row in schedule_table(schedule, epochs=4)]
        [True, False, True, False]
    """
    schedule, optimizer = _source(schedule_or_optimizer)
    spe = _steps_per_epoch(schedule, steps_per_epoch)
    epochs = check_number("epochs", epochs, 0, None, False)
    check_choice("per", per, ("epoch", "step"))
    total = max(1, math.floor(epochs * spe))
    restarts = _restarts(schedule, total)
    if per == "step":
        steps = np.arange(total, dtype="int64")
        bounds = [(step, step + 1) for step in steps]
        labels = [(int(step) + 1) / spe for step in steps]
    else:
        labels = list(range(1, math.ceil(epochs) + 1))
        ends = [min(total, math.floor(e * spe)) for e in labels]
        bounds = list(zip([0] + ends[:-1], ends))
        steps = np.array([end - 1 for end in ends], "int64")
    columns = _evaluate(schedule, optimizer, steps)
    rows = []
    for i, (label, (begin, end)) in enumerate(zip(labels, bounds)):
        decay = float(columns["decay"][i])
        rows.append({
            "epoch": label,
            "step": int(steps[i]),
            "learning_rate": float(columns["learning_rate"][i]),
            "eta": float(columns["eta"][i]),
            "decay": None if math.isnan(decay) else decay,
            "cycle": int(columns["cycle"][i]),
            "cycle_end": any(begin < r <= end for r in restarts),
        })
    return rows


def plot_schedule(schedule_or_optimizer, epochs, steps_per_epoch=None, path=None,
                  title=None):
    """Plots the learning rate, `eta_t` and the decay `c_t` over a run.

    Two panels over epochs: the learning rate, and `eta_t` with `c_t` (for
    an optimizer) on its own axis; dotted lines mark cycle ends. Uses
    matplotlib (imported here, not with the package).

    Args:
        schedule_or_optimizer: A `CosineWarmRestarts` (or other
            schedule) or an optimizer, as in `schedule_table`.
        epochs: Length of the run in epochs, as in `schedule_table`.
        steps_per_epoch: Weight updates per epoch, as in `schedule_table`.
            Defaults to `None` (the schedule's own).
        path: Where to save the figure (any format matplotlib knows).
            Defaults to `None` (not saved).
        title: Figure title. Defaults to `None`.

    Returns:
        The `matplotlib.figure.Figure`.
    """
    from matplotlib.figure import Figure

    schedule, optimizer = _source(schedule_or_optimizer)
    spe = _steps_per_epoch(schedule, steps_per_epoch)
    epochs = check_number("epochs", epochs, 0, None, False)
    total = max(1, math.floor(epochs * spe))
    restarts = _restarts(schedule, total)
    # Every jump is drawn: the last update of each cycle and the next one.
    marks = {r + d for r in restarts for d in (-1, 0) if 0 <= r + d < total}
    steps = np.unique(np.concatenate([
        np.linspace(0, total - 1, min(total, 4000)).astype("int64"),
        np.array(sorted(marks), "int64")]))
    columns = _evaluate(schedule, optimizer, steps)
    x = (steps + 1) / spe
    figure = Figure(figsize=(7, 5), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.plot(x, columns["learning_rate"], color="C0")
    top.set_ylabel("learning rate")
    bottom.plot(x, columns["eta"], color="C1", label="eta_t (multiplier)")
    bottom.set_ylabel("eta_t")
    bottom.set_xlabel("epoch")
    if optimizer is not None:
        right = bottom.twinx()
        right.plot(x, columns["decay"], color="C2", linestyle="--",
                   label="c_t (decay factor)")
        right.set_ylabel("c_t")
        figure.legend(loc="outside lower center", ncols=2)
    for axes in (top, bottom):
        for restart in restarts:
            axes.axvline(restart / spe, color="0.6", linestyle=":", linewidth=1)
        axes.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    if path is not None:
        figure.savefig(path, dpi=110)
    return figure
