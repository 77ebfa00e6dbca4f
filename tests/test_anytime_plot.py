"""`AnytimeRecorder.plot`'s learning-rate curve (issue 18, item 10)."""

import pytest

import keras_adamwr
from keras_adamwr.callbacks._anytime_plot import plot_anytime

pytest.importorskip("matplotlib")


def _drawn_rates(monkeypatch, tmp_path, last_step):
    from matplotlib.figure import Figure

    drawn = []
    monkeypatch.setattr(Figure, "savefig", lambda figure, *a, **k: drawn.append(figure))
    schedule = keras_adamwr.CosineWarmRestarts(1e-2, first_cycle_steps=10)
    records = [{"step": 10, "epoch": 2.0, "val_loss": 0.5}]
    plot_anytime(records, schedule, last_step, tmp_path / "anytime.png")
    (line,) = drawn[0].axes[1].lines
    return schedule, line.get_xdata(), line.get_ydata()


@pytest.mark.parametrize("last_step", [10, 13])
def test_the_rate_curve_ends_at_the_last_trained_step(last_step, monkeypatch, tmp_path):
    schedule, x, rates = _drawn_rates(monkeypatch, tmp_path, last_step)
    assert x[-1] == pytest.approx(last_step * 0.2)  # 5 steps per epoch
    # The rate of the last update made, held to its end: after the cycle
    # end at step 10 no restart to the peak is drawn.
    assert rates[-1] == pytest.approx(float(schedule(last_step - 1)))
    assert rates.max() == pytest.approx(float(schedule(0)))
    if last_step == 10:
        assert rates[-1] < 1e-3
