"""schedule_table and plot_schedule: what the optimizer will use, no model."""

import pathlib
import re

import keras
import numpy as np
import pytest

import keras_adamwr
from keras_adamwr import CosineWarmRestarts
from keras_adamwr import plot_schedule
from keras_adamwr import schedule_table
from tests import reference

DOCS = pathlib.Path(__file__).parent.parent / "docs" / "algorithms.md"


def test_epoch_rows_match_the_reference_and_the_optimizer():
    schedule = CosineWarmRestarts(0.1, first_cycle_epochs=1, steps_per_epoch=5, t_mul=1.5,
                                  warmup_epochs=1, min_lr_ratio=0.1, cycle_limit=3)
    optimizer = keras_adamwr.SGDWR(0.1, first_cycle_epochs=1, steps_per_epoch=5, t_mul=1.5,
                                   warmup_epochs=1, min_lr_ratio=0.1, cycle_limit=3,
                                   normalized_weight_decay=0.2)
    etas, cycles, lengths = reference.schedule_reference(
        60, 5, 1.5, min_lr_ratio=0.1, warmup_steps=5, cycle_limit=3)
    rows = schedule_table(optimizer, epochs=12)
    assert [row["epoch"] for row in rows] == list(range(1, 13))
    assert [row["step"] for row in rows] == [5 * e - 1 for e in range(1, 13)]
    steps = [row["step"] for row in rows]
    np.testing.assert_allclose([row["eta"] for row in rows], [etas[s] for s in steps],
                               atol=1e-6)
    np.testing.assert_allclose([row["learning_rate"] for row in rows],
                               [0.1 * etas[s] for s in steps], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(
        [row["decay"] for row in rows],
        [etas[s] * 0.2 / np.sqrt(lengths[s]) for s in steps], rtol=1e-5, atol=1e-9)
    assert [row["cycle"] for row in rows] == [cycles[s] for s in steps]
    # Ends after 5 + 5, + 7.5, + 11.25 updates: in epochs 2, 4 and 6.
    assert [row["epoch"] for row in rows if row["cycle_end"]] == [2, 4, 6]
    bare = schedule_table(schedule, epochs=12)
    assert all(row["decay"] is None for row in bare)
    assert [row["eta"] for row in bare] == [row["eta"] for row in rows]


def test_step_rows_mark_the_last_update_of_each_cycle():
    optimizer = keras_adamwr.AdamWR(1e-3, first_cycle_steps=4, steps_per_epoch=2)
    rows = schedule_table(optimizer, epochs=6, per="step")
    assert [row["step"] for row in rows] == list(range(12))
    assert [row["step"] for row in rows if row["cycle_end"]] == [3, 11]
    assert rows[4]["eta"] == 1.0 and rows[3]["epoch"] == 2.0
    assert all(type(row["epoch"]) is float for row in rows)


def test_other_schedules_and_float_rates():
    decay = keras.optimizers.schedules.CosineDecay(1e-2, 100)
    optimizer = keras_adamwr.AdamW(decay, weight_decay=1e-3)
    rows = schedule_table(optimizer, epochs=10, steps_per_epoch=10)
    assert rows[-1]["eta"] == pytest.approx(float(decay(99)) / 1e-2, rel=1e-5)
    assert rows[-1]["decay"] == pytest.approx(rows[-1]["eta"] * 1e-3, rel=1e-5)
    constant = schedule_table(keras_adamwr.SGDW(0.05, weight_decay=1e-4), 2,
                              steps_per_epoch=3)
    assert [(row["learning_rate"], row["eta"]) for row in constant] == [
        (pytest.approx(0.05), 1.0)] * 2
    with pytest.raises(ValueError, match="`steps_per_epoch`"):
        schedule_table(decay, epochs=3)
    with pytest.raises(TypeError, match="`schedule_or_optimizer`"):
        schedule_table(0.1, epochs=3, steps_per_epoch=3)


def test_docs_table_is_what_schedule_table_gives():
    text = DOCS.read_text()
    block = text.split("<!-- schedule-table")[1].split("<!-- end schedule-table")[0]
    documented = [line for line in block.splitlines() if re.match(r"\| \d", line)]
    spe = keras_adamwr.batches_per_epoch(50_000, 128)
    optimizer = keras_adamwr.AdamWR(1e-3, first_cycle_epochs=1, steps_per_epoch=spe,
                                    normalized_weight_decay=0.025)
    rows = schedule_table(optimizer, epochs=8)
    assert documented == [
        f"| {r['epoch']} | {r['step']} | {r['learning_rate']:.3g} | {r['eta']:.3g} | "
        f"{r['decay']:.3g} | {r['cycle']} | {'yes' if r['cycle_end'] else ''} |"
        for r in rows]
    assert "img/schedule_adamwr.png" in text
    assert (DOCS.parent / "img" / "schedule_adamwr.png").stat().st_size > 10_000


def test_plot_returns_the_figure_and_saves_it(tmp_path):
    pytest.importorskip("matplotlib")  # the `examples` extra, not `test`
    optimizer = keras_adamwr.AdamWR(1e-3, first_cycle_epochs=1, steps_per_epoch=10)
    figure = plot_schedule(optimizer, epochs=7, path=tmp_path / "s.png", title="t")
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    top, bottom, right = figure.axes
    rate = top.lines[0].get_ydata()
    assert max(rate) == pytest.approx(1e-3, rel=1e-6) and min(rate) < 2e-6
    # The restarts at epochs 1 and 3 are drawn as dotted lines, and the
    # jumps are sampled on both sides.
    marks = sorted({line.get_xdata()[0] for line in top.lines[1:]})
    assert marks == [1.0, 3.0, 7.0]
    assert len(right.lines) == 1
    bare = plot_schedule(optimizer.schedule, epochs=3)
    assert len(bare.axes) == 2
