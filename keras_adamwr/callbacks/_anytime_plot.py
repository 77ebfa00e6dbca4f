"""The anytime-curve figure of `AnytimeRecorder.plot` (matplotlib)."""

import numpy as np
from keras import ops


def plot_anytime(records, schedule, last_step, path, metric=None):
    """Validation error at each cycle end over the learning-rate curve."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("AnytimeRecorder.plot needs matplotlib: "
                          "`pip install matplotlib`.") from None
    if not records:
        raise ValueError("AnytimeRecorder.plot: nothing recorded yet; "
                         "call it after `fit` reached a cycle end.")
    if metric is None:
        metric = "val_accuracy" if "val_accuracy" in records[0] else "val_loss"
    if any(metric not in row for row in records):
        names = sorted(name for name in records[0] if name.startswith("val_"))
        raise ValueError(f"Argument `metric` must be one of the recorded "
                         f"{names}. Received: metric={metric!r}")
    error = "accuracy" in metric
    in_epochs = all(row["epoch"] is not None for row in records)
    scale = records[-1]["epoch"] / records[-1]["step"] if in_epochs else 1.0
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    x = [row["step"] * scale for row in records]
    y = [1 - row[metric] if error else row[metric] for row in records]
    for position in x:
        axes.axvline(position, color="0.6", linestyle=":", linewidth=1)
    axes.plot(x, y, "o-", color="C0")
    axes.set_xlabel("epoch" if in_epochs else "step (weight updates)")
    axes.set_ylabel(f"validation error (1 - {metric})" if error else metric)
    if schedule is not None and max(last_step, records[-1]["step"]) > 0:
        # The rates of the updates made, 0 .. last - 1, held to the last
        # step: `schedule(last)` would be the next update's (after a cycle
        # end, the peak of a restart that never ran).
        last = max(last_step, records[-1]["step"])
        grid = np.unique(np.linspace(0, last - 1, min(last, 2000)).astype("int64"))
        rates = np.broadcast_to(ops.convert_to_numpy(schedule(grid)), grid.shape)
        twin = axes.twinx()
        twin.plot(np.append(grid, last) * scale, np.append(rates, rates[-1]),
                  color="C1", alpha=0.6, linewidth=1)
        twin.set_ylabel("learning rate", color="C1")
        axes.set_zorder(twin.get_zorder() + 1)  # the curve above the rate
        axes.patch.set_visible(False)
    axes.set_title("Anytime performance at the end of each restart cycle")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path
