"""AnytimeRecorder in real `model.fit` runs: rows checked one by one."""

import csv
import json
import math
import os

import keras
import numpy as np
import pytest

import keras_adamwr
from keras_adamwr import AnytimeRecorder
from keras_adamwr.callbacks._anytime_files import FIELDS
from keras_adamwr import snapshot_ensemble_predict

BATCH = 16


def _data(samples=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, 4)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int32")
    return x, y


VALIDATION = _data(64, seed=1)


def _model(optimizer, seed=0, **compile_kwargs):
    keras.utils.set_random_seed(seed)
    output_dtype = "float32" if keras.config.dtype_policy().name != "float32" else None
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.Dense(2, activation="softmax", dtype=output_dtype),
    ])
    model.compile(optimizer, "sparse_categorical_crossentropy",
                  metrics=["accuracy"], **compile_kwargs)
    return model


def _fit(model, callbacks, epochs, samples=96, **kwargs):
    x, y = _data(samples)
    return model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False,
                     verbose=0, callbacks=callbacks, **kwargs)


def _rate(schedule, step):
    # The callbacks compute rates in Python (float64) from the restart table;
    # the schedule's tensor is float32: equal to float32 rounding (near the
    # floor `1 + cos` cancels in float32: abs).
    return pytest.approx(float(schedule(step)), rel=1e-6, abs=1e-9)


def _column(records, name):
    return [row[name] for row in records]


def _read_csv(log_dir):
    with open(os.path.join(log_dir, "anytime.csv"), newline="") as file:
        return list(csv.DictReader(file))


def _assert_files_match(log_dir, records):
    """anytime.json equals `records`; anytime.csv holds the same values."""
    with open(os.path.join(log_dir, "anytime.json")) as file:
        assert json.load(file) == records
    rows = _read_csv(log_dir)
    assert len(rows) == len(records)
    for row, record in zip(rows, records):
        assert list(row) == list(FIELDS) + [n for n in record if n not in FIELDS]
        for name, value in record.items():
            expected = "" if value is None else str(value)
            assert row[name] == expected, (name, row[name], value)


def test_restarts_at_epoch_ends_and_mid_epoch(tmp_path):
    # 6 batches per epoch; cycles of 6, 9, 13.5 updates end at 6, 15, 29.
    schedule_kwargs = dict(first_cycle_steps=6, t_mul=1.5)
    optimizer = keras_adamwr.AdamWR(1e-2, **schedule_kwargs)
    model = _model(optimizer)
    recorder = AnytimeRecorder(VALIDATION, log_dir=str(tmp_path), verbose=0)
    csv_logger = keras.callbacks.CSVLogger(str(tmp_path / "epochs.csv"))
    history = _fit(model, [csv_logger, recorder], epochs=5)  # any order

    schedule = optimizer.schedule
    ends = schedule.restart_steps(3)
    assert ends == [6, 15, 29]
    rows = recorder.records
    assert _column(rows, "cycle") == [0, 1, 2]
    assert _column(rows, "step") == ends
    assert _column(rows, "epoch") == [1.0, 2.5, 29 / 6]
    assert _column(rows, "evaluated_step") == ends
    assert _column(rows, "evaluated_epoch") == [1.0, 2.5, 29 / 6]
    walls = _column(rows, "wall_time")
    assert 0 < walls[0] < walls[1] < walls[2]
    for row in rows:
        last_update = row["step"] - 1
        eta = schedule.multiplier(last_update)
        assert row["eta"] == eta
        assert eta < 0.1  # the end of a cycle, not the next peak
        assert row["learning_rate"] == pytest.approx(1e-2 * eta, rel=1e-5)
        length = schedule.cycle_length(schedule.cycle_index(last_update))
        assert row["weight_decay_effective"] == pytest.approx(
            eta * 0.025 / math.sqrt(length), rel=1e-5)
        assert set(row) == set(FIELDS) | {"val_loss", "val_accuracy"}
        assert 0.0 <= row["val_accuracy"] <= 1.0
    _assert_files_match(str(tmp_path), rows)

    # Epoch logs: the next update's rate, seen by History and CSVLogger.
    epoch_ends = [6 * (epoch + 1) for epoch in range(5)]
    assert history.history["learning_rate"] == [_rate(schedule, s) for s in epoch_ends]
    assert history.history["eta"] == [schedule.multiplier(s) for s in epoch_ends]
    with open(tmp_path / "epochs.csv", newline="") as file:
        logged = list(csv.DictReader(file))
    assert [float(row["eta"]) for row in logged] == history.history["eta"]
    assert [float(row["weight_decay_effective"]) for row in logged] == (
        history.history["weight_decay_effective"])

    # Mid-epoch evaluation must not disturb fit's running training metrics.
    baseline = _fit(_model(keras_adamwr.AdamWR(1e-2, **schedule_kwargs)), [], epochs=5)
    assert history.history["loss"] == baseline.history["loss"]
    assert history.history["accuracy"] == baseline.history["accuracy"]


def test_steps_per_execution_records_every_crossed_boundary():
    # Polls every 3 updates; cycles end at 1, 3, 7, 15, 31.
    optimizer = keras_adamwr.AdamWR(1e-2, first_cycle_steps=1, t_mul=2.0)
    model = _model(optimizer, steps_per_execution=3)
    evaluations = []
    evaluate = model.evaluate
    model.evaluate = lambda *a, **k: evaluations.append(1) or evaluate(*a, **k)
    recorder = AnytimeRecorder(VALIDATION, verbose=0)
    _fit(model, [recorder], epochs=5)

    rows = recorder.records
    assert _column(rows, "step") == optimizer.schedule.restart_steps(4) == [1, 3, 7, 15]
    assert _column(rows, "cycle") == [0, 1, 2, 3]
    assert _column(rows, "epoch") == [1 / 6, 0.5, 7 / 6, 2.5]
    assert _column(rows, "evaluated_step") == [3, 3, 9, 15]
    assert _column(rows, "evaluated_epoch") == [0.5, 0.5, 1.5, 2.5]
    # Cycles 0 and 1 both ended before the first poll: one evaluation.
    assert len(evaluations) == 3
    assert rows[0]["val_loss"] == rows[1]["val_loss"]
    assert rows[0]["eta"] != rows[1]["eta"]
    assert int(optimizer.iterations) == 30


def test_gradient_accumulation_counts_weight_updates():
    # 8 micro-batches = 4 weight updates per epoch; cycles end at 3, 9, 21.
    optimizer = keras_adamwr.AdamWR(1e-2, first_cycle_steps=3,
                                    gradient_accumulation_steps=2)
    model = _model(optimizer)
    recorder = AnytimeRecorder(VALIDATION, verbose=0)
    history = _fit(model, [recorder], epochs=6, samples=128)

    assert int(optimizer.iterations) == 24
    rows = recorder.records
    assert _column(rows, "step") == optimizer.schedule.restart_steps(3) == [3, 9, 21]
    assert _column(rows, "epoch") == [0.75, 2.25, 5.25]
    assert _column(rows, "evaluated_step") == [3, 9, 21]
    assert _column(rows, "evaluated_epoch") == [0.75, 2.25, 5.25]
    for row in rows:
        assert row["learning_rate"] == _rate(optimizer.schedule, row["step"] - 1)
    assert history.history["learning_rate"][-1] == _rate(optimizer.schedule, 24)


def test_mixed_float16_skipped_steps_do_not_shift_restarts():
    keras.config.set_dtype_policy("mixed_float16")  # conftest restores float32
    inner = keras_adamwr.AdamWR(1e-2, first_cycle_steps=5)
    # A huge initial scale overflows the first gradients: those steps skip.
    optimizer = keras.optimizers.LossScaleOptimizer(inner, initial_scale=2.0**24)
    model = _model(optimizer)
    recorder = AnytimeRecorder(VALIDATION, verbose=0)
    _fit(model, [recorder], epochs=6, samples=128)

    skipped = 6 * 8 - int(inner.iterations)
    assert skipped > 0
    rows = recorder.records
    ends = [end for end in inner.schedule.restart_steps(10) if end <= 48 - skipped]
    assert ends == [5, 15, 35]
    assert _column(rows, "step") == ends
    assert _column(rows, "evaluated_step") == ends
    assert _column(rows, "epoch") == [end / 8 for end in ends]
    # The data position is later by the skipped batches (all at the start).
    assert _column(rows, "evaluated_epoch") == [(end + skipped) / 8 for end in ends]


def test_cycles_shorter_than_a_step_give_one_row_per_step():
    # t_mul=0.5: cycles 8, 4, 2, 1, 0.5, ... end at 8, 12, 14, 15, 16, 16, ...
    optimizer = keras_adamwr.AdamWR(1e-2, first_cycle_steps=8, t_mul=0.5)
    recorder = AnytimeRecorder(VALIDATION, verbose=0)
    _fit(_model(optimizer), [recorder], epochs=4)
    assert _column(recorder.records, "step") == [8, 12, 14, 15, 16]
    assert _column(recorder.records, "cycle") == [0, 1, 2, 3, 4]


def test_keras_optimizer_with_restart_schedule():
    schedule = keras_adamwr.CosineWarmRestarts(1e-2, first_cycle_steps=4, warmup_steps=2)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=0.01)
    recorder = AnytimeRecorder(VALIDATION, verbose=0)
    _fit(_model(optimizer), [recorder], epochs=3)
    rows = recorder.records
    assert _column(rows, "step") == schedule.restart_steps(2) == [6, 14]
    for row in rows:
        rate = float(schedule(row["step"] - 1))
        assert row["learning_rate"] == _rate(schedule, row["step"] - 1)
        assert row["weight_decay_effective"] == pytest.approx(0.01 * row["learning_rate"])
        assert row["eta"] == schedule.multiplier(row["step"] - 1)


class _Crash(Exception):
    pass


class _CrashAt(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise _Crash()


def test_resume_after_crash_backup_and_restore_and_load_model(tmp_path):
    log_dir, backup_dir = str(tmp_path / "logs"), str(tmp_path / "backup")

    def optimizer():  # cycles end at 4, 12, 28, 60; 6 updates per epoch
        return keras_adamwr.AdamWR(1e-2, first_cycle_steps=4)

    # Run 1 crashes in epoch 4 at step 29, after recording the end at 28;
    # the last backup holds step 24.
    first = AnytimeRecorder(VALIDATION, log_dir=log_dir, verbose=0)
    with pytest.raises(_Crash):
        _fit(_model(optimizer()), [first, keras.callbacks.BackupAndRestore(backup_dir),
                                   _CrashAt(4, 4)], epochs=6)
    assert _column(first.records, "step") == [4, 12, 28]
    _assert_files_match(log_dir, first.records)  # nothing lost in the crash
    crashed_row = first.records[2]

    # Run 2: a new process would build a new model and recorder; the backup
    # rolls the optimizer back to 24, so the row for 28 is written again.
    model = _model(optimizer(), seed=5)
    second = AnytimeRecorder(VALIDATION, log_dir=log_dir, verbose=0)
    _fit(model, [keras.callbacks.BackupAndRestore(backup_dir), second], epochs=6)
    assert int(model.optimizer.iterations) == 36
    assert _column(second.records, "step") == [4, 12, 28]
    assert second.records[:2] == first.records[:2]
    assert second.records[2] != crashed_row
    assert second.records[2]["evaluated_step"] == 28
    assert second.records[2]["wall_time"] >= first.records[1]["wall_time"]
    _assert_files_match(log_dir, second.records)

    # Run 3: from a saved model, on to the end at 60 (epoch 10).
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    third = AnytimeRecorder(VALIDATION, log_dir=log_dir, verbose=0)
    _fit(loaded, [third], epochs=10, initial_epoch=6)
    assert _column(third.records, "step") == [4, 12, 28, 60]
    assert third.records[:3] == second.records
    assert third.records[3]["epoch"] == 10.0
    _assert_files_match(log_dir, third.records)


def _snapshots(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith("snapshot-"))


def test_fresh_run_in_old_dirs_is_refused_and_deletes_nothing(tmp_path):
    log_dir, snapshot_dir = str(tmp_path / "logs"), str(tmp_path / "snapshots")
    kwargs = dict(log_dir=log_dir, snapshot_dir=snapshot_dir, verbose=0)
    old = AnytimeRecorder(VALIDATION, **kwargs)
    _fit(_model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4)), [old], epochs=3)
    assert _column(old.records, "step") == [4, 12]
    assert _snapshots(snapshot_dir) == ["snapshot-cycle000.weights.h5",
                                        "snapshot-cycle001.weights.h5"]
    files = {path: open(path, "rb").read() for path in (
        os.path.join(log_dir, "anytime.json"), os.path.join(log_dir, "anytime.csv"))}
    # A fresh model (step 0) pointed at the old folders: an error, nothing lost.
    for folders in (kwargs, dict(log_dir=str(tmp_path / "new"), snapshot_dir=snapshot_dir),
                    dict(log_dir=log_dir)):
        new = AnytimeRecorder(VALIDATION, **{**folders, "verbose": 0})
        model = _model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=5))
        name = "log_dir" if folders.get("log_dir") == log_dir else "snapshot_dir"
        with pytest.raises(ValueError, match=f"Argument `{name}` holds the results of run "):
            _fit(model, [new], epochs=2)
        assert int(model.optimizer.iterations) == 0  # refused before training
        assert _snapshots(snapshot_dir) == ["snapshot-cycle000.weights.h5",
                                            "snapshot-cycle001.weights.h5"]
        for path, data in files.items():
            assert open(path, "rb").read() == data


def test_resume_of_another_model_is_refused(tmp_path):
    log_dir = str(tmp_path / "logs")
    old = AnytimeRecorder(VALIDATION, log_dir=log_dir, verbose=0)
    _fit(_model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4)), [old], epochs=3)
    # Another model at step 12 (an epoch end the old run recorded).
    other = _model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4), seed=3)
    _fit(other, [], epochs=2)
    with pytest.raises(ValueError, match="the model at step 12 is not the one that run "
                       "saved at step 12"):
        _fit(other, [AnytimeRecorder(VALIDATION, log_dir=log_dir, verbose=0)],
             epochs=4, initial_epoch=2)
    # At a step with no checkpoint, before rows a resume would drop.
    other.optimizer.iterations.assign(10)
    with pytest.raises(ValueError, match="recorded no checkpoint at step 10 to prove"):
        _fit(other, [AnytimeRecorder(VALIDATION, log_dir=log_dir, verbose=0)],
             epochs=4, initial_epoch=2)
    with open(os.path.join(log_dir, "anytime.json")) as file:
        assert json.load(file) == old.records


def test_snapshots_keep_last_k_and_ensemble(tmp_path):
    # Cycles of 2 updates: ends at 2, 4, ..., 12 over two epochs.
    snapshot_dir = tmp_path / "snapshots"
    optimizer = keras_adamwr.AdamWR(1e-2, first_cycle_steps=2, t_mul=1.0)
    model = _model(optimizer)
    recorder = AnytimeRecorder(VALIDATION, snapshot_dir=str(snapshot_dir),
                               keep_snapshots=2, verbose=0)
    _fit(model, [recorder], epochs=2)
    assert _column(recorder.records, "step") == [2, 4, 6, 8, 10, 12]
    assert sorted(os.listdir(snapshot_dir)) == [
        "anytime-run.json", "snapshot-cycle004.weights.h5", "snapshot-cycle005.weights.h5"]
    paths = recorder.snapshot_paths
    assert [os.path.basename(p) for p in paths] == _snapshots(snapshot_dir)

    # A snapshot holds the weights that were evaluated for its row.
    probe = _model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=2, t_mul=1.0), seed=9)
    probe.load_weights(paths[0])
    probe_results = probe.evaluate(*VALIDATION, verbose=0, return_dict=True)
    assert probe_results["loss"] == pytest.approx(recorder.records[4]["val_loss"], rel=1e-6)
    expected = np.mean([_predict_with(probe, p) for p in paths], axis=0)

    model.load_weights(paths[0])  # the ensemble must restore the current state
    model.optimizer.iterations.assign(7)
    before = [v.numpy() for v in model.variables + model.optimizer.variables]
    averaged = snapshot_ensemble_predict(model, paths, VALIDATION[0], batch_size=32)
    np.testing.assert_allclose(averaged, expected, rtol=1e-6)
    after = [v.numpy() for v in model.variables + model.optimizer.variables]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert int(model.optimizer.iterations) == 7
    with pytest.raises(ValueError, match="snapshot_paths"):
        snapshot_ensemble_predict(model, [], VALIDATION[0])


def _predict_with(model, path):
    model.load_weights(path)
    return model.predict(VALIDATION[0], verbose=0)


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    recorder = AnytimeRecorder(VALIDATION, log_dir=str(tmp_path), verbose=0)
    with pytest.raises(ValueError, match="nothing recorded"):
        recorder.plot()
    _fit(_model(keras_adamwr.SGDWR(0.05, first_cycle_steps=3)), [recorder], epochs=2)
    path = recorder.plot()
    assert path == os.path.join(str(tmp_path), "anytime.png")
    with open(path, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    other = recorder.plot(str(tmp_path / "loss.png"), metric="val_loss")
    assert other == str(tmp_path / "loss.png") and os.path.getsize(other) > 1000
    with pytest.raises(ValueError, match="`metric` must be one of the recorded "
                                         r"\['val_accuracy', 'val_loss'\]"):
        recorder.plot(metric="val_auc")


def test_verbose_prints_one_line_per_cycle_end(capsys):
    recorder = AnytimeRecorder(VALIDATION, verbose=1)
    _fit(_model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4)), [recorder], epochs=2)
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("AnytimeRecorder:")]
    assert len(lines) == 2
    assert lines[0].startswith(
        "AnytimeRecorder: cycle 0 ended at step 4 (epoch 0.6667): lr ")
    assert lines[1].startswith("AnytimeRecorder: cycle 1 ended at step 12 (epoch 2): lr ")
    for line, row in zip(lines, recorder.records):
        assert line.endswith(f"val_accuracy {row['val_accuracy']:.4g}, "
                             f"val_loss {row['val_loss']:.4g}")


def test_tensorboard_scalars(tmp_path):
    recorder = AnytimeRecorder(VALIDATION, log_dir=str(tmp_path), tensorboard=True,
                               verbose=0)
    model = _model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4))
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.warns(UserWarning, match="TensorBoard"):
            _fit(model, [recorder], epochs=2)
        assert _column(recorder.records, "step") == [4, 12]
        assert not os.path.exists(tmp_path / "anytime")
        return
    import tensorflow as tf

    _fit(model, [recorder], epochs=2)
    events = [os.path.join(tmp_path, "anytime", name)
              for name in os.listdir(tmp_path / "anytime")]
    values = {}
    for event in tf.compat.v1.train.summary_iterator(events[0]):
        for value in event.summary.value:
            values[value.tag, event.step] = float(tf.make_ndarray(value.tensor))
    assert sorted({step for _, step in values}) == [4, 12]
    for row in recorder.records:
        assert values["val_loss", row["step"]] == pytest.approx(row["val_loss"])
        assert values["eta", row["step"]] == pytest.approx(row["eta"])
        assert values["learning_rate", row["step"]] == pytest.approx(row["learning_rate"])


def test_no_restart_schedule_raises():
    for optimizer in (
        keras_adamwr.AdamW(1e-3),
        keras.optimizers.Adam(keras.optimizers.schedules.CosineDecayRestarts(1e-3, 4)),
    ):
        model = _model(optimizer)
        with pytest.raises(ValueError, match="restart_steps"):
            _fit(model, [AnytimeRecorder(VALIDATION, verbose=0)], epochs=1)
    schedule = keras_adamwr.CosineWarmRestarts(1e-3, 4)
    model = _model(keras.optimizers.Adam(schedule, gradient_accumulation_steps=2))
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        _fit(model, [AnytimeRecorder(VALIDATION, verbose=0)], epochs=1)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"keep_snapshots": 0, "snapshot_dir": "s"}, ValueError,
     "Argument `keep_snapshots` must be an integer >= 1 or None. "
     "Received: keep_snapshots=0"),
    ({"keep_snapshots": 2.5, "snapshot_dir": "s"}, ValueError,
     "`keep_snapshots` must be an integer >= 1 or None. Received: keep_snapshots=2.5"),
    ({"keep_snapshots": 2}, ValueError, "`keep_snapshots` needs `snapshot_dir`"),
    ({"steps_per_epoch": 0}, ValueError,
     "`steps_per_epoch` must be an integer >= 1 or None. Received: steps_per_epoch=0"),
    ({"steps_per_epoch": "10"}, TypeError,
     "`steps_per_epoch` must be an integer >= 1 or None. Received: steps_per_epoch='10'"),
    ({"tensorboard": True}, ValueError, "`tensorboard` needs `log_dir`"),
    ({"tensorboard": "yes"}, ValueError, "`tensorboard` must be one of"),
    ({"verbose": 2}, ValueError,
     "Argument `verbose` must be one of 0, 1. Received: verbose=2"),
    ({"evaluate_kwargs": {"x": 1}}, ValueError, "`evaluate_kwargs` must be a dict"),
    ({"evaluate_kwargs": [1]}, TypeError, "`evaluate_kwargs` must be a dict"),
    ({"log_dir": 3}, TypeError,
     "Argument `log_dir` must be a folder path or None. Received: log_dir=3"),
    ({"validation_data": None}, ValueError,
     "Argument `validation_data` must be .* Received: validation_data=None"),
])
def test_invalid_arguments(kwargs, error, message):
    kwargs = {"validation_data": VALIDATION, **kwargs}
    with pytest.raises(error, match=message):
        AnytimeRecorder(**kwargs)


def test_epochs_of_a_dataset_of_unknown_size():
    import tensorflow as tf

    x, y = _data()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    dataset = dataset.filter(lambda *batch: True)  # cardinality unknown
    given = AnytimeRecorder(VALIDATION, steps_per_epoch=6, verbose=0)
    inferred = AnytimeRecorder(VALIDATION, verbose=0)
    model = _model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4))
    model.fit(dataset, epochs=3, verbose=0, shuffle=False, callbacks=[given, inferred])
    assert given.params["steps"] is None
    assert _column(given.records, "step") == [4, 12]
    assert _column(given.records, "epoch") == [4 / 6, 2.0]
    # (Keras 3.15 adds an empty step at the end of each epoch of a dataset
    # of unknown size; it counts for the schedule, so later data positions
    # lag the boundaries: only the first is pinned here.)
    assert given.records[0]["evaluated_epoch"] == 4 / 6
    # Without it, the size is learnt when the first epoch ends.
    assert _column(inferred.records, "epoch") == [None, 2.0]
    assert inferred.records[0]["evaluated_epoch"] is None
    assert inferred.records[1]["evaluated_epoch"] == given.records[1]["evaluated_epoch"]


def test_console_line_is_not_glued_onto_the_progress_bar(capsys):
    recorder = AnytimeRecorder(VALIDATION, verbose=1)
    x, y = _data()
    _model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4)).fit(
        x, y, batch_size=BATCH, epochs=2, verbose=1, callbacks=[recorder])
    out = capsys.readouterr().out
    assert out.count("AnytimeRecorder: cycle") == 2
    assert out.count("\nAnytimeRecorder: cycle") == 2  # each at a line start
    assert "loss" in out  # the progress bar was drawn


def test_folder_written_before_run_files_existed(tmp_path):
    log_dir = str(tmp_path)
    model = _model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4))
    first = AnytimeRecorder(VALIDATION, log_dir=log_dir, verbose=0)
    _fit(model, [first], epochs=3)
    os.remove(tmp_path / "anytime-run.json")  # as 0.2.0 left it
    with pytest.raises(ValueError, match="holds the results of another run"):
        _fit(_model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4)),
             [AnytimeRecorder(VALIDATION, log_dir=log_dir, verbose=0)], epochs=1)
    resumed = AnytimeRecorder(VALIDATION, log_dir=log_dir, verbose=0)
    _fit(model, [resumed], epochs=5, initial_epoch=3)  # step 18 > 0: continued
    assert _column(resumed.records, "step") == [4, 12, 28]
    assert resumed.records[:2] == first.records


def test_resume_from_a_save_mid_epoch_warns_and_continues(tmp_path):
    log_dir, backup_dir = str(tmp_path / "logs"), str(tmp_path / "backup")
    first = AnytimeRecorder(VALIDATION, log_dir=log_dir, verbose=0)
    with pytest.raises(_Crash):  # backups every 5 batches; a crash at step 27
        _fit(_model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4)),
             [first, keras.callbacks.BackupAndRestore(backup_dir, save_freq=5),
              _CrashAt(4, 2)], epochs=6)
    assert _column(first.records, "step") == [4, 12]
    model = _model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4), seed=5)
    second = AnytimeRecorder(VALIDATION, log_dir=log_dir, verbose=0)
    # Restored to step 25: no epoch end, no row after it; continued.
    with pytest.warns(UserWarning, match="recorded no checkpoint at step 25"):
        _fit(model, [keras.callbacks.BackupAndRestore(backup_dir, save_freq=5), second],
             epochs=6)
    assert _column(second.records, "step") == [4, 12, 28]
    assert second.records[:2] == first.records


# Issue 16: no counter read, tensor evaluation or batch hook per step.

def test_counter_read_only_near_cycle_ends_and_rows_unchanged(tmp_path, monkeypatch):
    reads = []
    original = AnytimeRecorder._step
    monkeypatch.setattr(AnytimeRecorder, "_step",
                        lambda self: reads.append(1) or original(self))
    # Cycle ends at 4, 12, 28 (mid-epoch, 6 batches per epoch) and 60, the
    # end of the fit.
    optimizer = keras_adamwr.AdamWR(1e-2, first_cycle_steps=4, normalized_weight_decay=0.025)
    recorder = AnytimeRecorder(VALIDATION, log_dir=str(tmp_path), verbose=0)
    history = _fit(_model(optimizer), [recorder], epochs=10)
    rows = recorder.records
    assert _column(rows, "step") == [4, 12, 28, 60] == _column(rows, "evaluated_step")
    assert _column(rows, "evaluated_epoch") == [4 / 6, 2.0, 28 / 6, 10.0]
    # 0.4.0 read the counter after every one of the 60 steps.
    assert len(reads) <= 10 + 2 + 3
    assert type(recorder).on_train_batch_end is keras.callbacks.Callback.on_train_batch_end
    schedule = optimizer.schedule
    for row in rows:  # as 0.4.0 computed them, from the optimizer's tensors
        step = row["step"] - 1
        rate = float(schedule(step))
        assert row["learning_rate"] == pytest.approx(rate, rel=1e-6, abs=1e-9)
        assert row["weight_decay_effective"] == pytest.approx(float(
            optimizer.decay_coefficient(learning_rate=rate, step=step)), rel=1e-5, abs=1e-10)
        assert row["eta"] == schedule.multiplier(step)
    _assert_files_match(str(tmp_path), rows)
    # Epoch logs: the next update's values (one counter read per epoch).
    steps = [6 * (epoch + 1) for epoch in range(10)]
    assert history.history["learning_rate"] == [_rate(schedule, s) for s in steps]
    assert history.history["cycle"] == [schedule.cycle_index(s) for s in steps]


def test_skipped_updates_near_a_cycle_end_still_give_exact_rows(monkeypatch):
    # The bound "one update per batch" overestimates when updates are
    # skipped (accumulation here): the counter is read until the end is
    # really crossed, and the row is exact.
    optimizer = keras_adamwr.AdamWR(1e-2, first_cycle_steps=3, t_mul=2.0,
                                    gradient_accumulation_steps=2)
    recorder = AnytimeRecorder(VALIDATION, verbose=0)
    _fit(_model(optimizer), [recorder], epochs=6, samples=128)
    assert _column(recorder.records, "evaluated_step") == [3, 9, 21]
    assert _column(recorder.records, "evaluated_epoch") == [0.75, 2.25, 5.25]
