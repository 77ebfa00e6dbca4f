"""AnytimeRecorder's files on disk: cheap appends, crashes, odd files."""

import csv
import json
import os
import stat

import keras
import numpy as np
import pytest

import keras_adamwr
from keras_adamwr import AnytimeRecorder
from keras_adamwr.callbacks._anytime_files import RecordFiles

from tests.test_callbacks import VALIDATION, _fit, _model


def _row(cycle, **extra):
    return {"cycle": cycle, "step": 4 * (cycle + 1), "epoch": 1.0, "evaluated_step": 4,
            "evaluated_epoch": 1.0, "wall_time": 0.5 * cycle, "learning_rate": 1e-3,
            "eta": 0.0, "weight_decay_effective": 1e-4, "val_loss": 0.25, **extra}


def _strict_load(path):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")
    with open(path) as file:
        return json.load(file, parse_constant=refuse)


def test_appending_a_row_does_not_rewrite_the_file(tmp_path, monkeypatch):
    files = RecordFiles(str(tmp_path))
    records = [_row(0)]
    files.rewrite(records)
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda *a: replaced.append(a) or real_replace(*a))
    for cycle in range(1, 200):
        before = (tmp_path / "anytime.json").read_bytes()
        records.append(_row(cycle))
        files.append(records)
        after = (tmp_path / "anytime.json").read_bytes()
        assert after.startswith(before[:-3])  # only the tail was written
    assert replaced == []
    assert _strict_load(tmp_path / "anytime.json") == records
    assert files.read() == records
    with open(tmp_path / "anytime.csv", newline="") as file:
        assert len(list(csv.DictReader(file))) == 200
    # A row with a new column rewrites both files (atomically).
    records.append(_row(200, val_accuracy=0.5))
    files.append(records)
    assert len(replaced) == 2
    assert files.read() == records


def test_old_indented_files_and_a_row_without_wall_time_still_read(tmp_path):
    rows = [_row(0), _row(1)]
    del rows[1]["wall_time"]
    with open(tmp_path / "anytime.json", "w") as file:
        json.dump(rows, file, indent=1)  # the 0.2.0 layout
    files = RecordFiles(str(tmp_path))
    assert files.read() == rows
    files.rewrite(rows)
    rows.append(_row(2))
    files.append(rows)
    assert _strict_load(tmp_path / "anytime.json") == rows


def test_non_finite_values_are_null_in_json_and_nan_in_csv(tmp_path):
    files = RecordFiles(str(tmp_path))
    records = [_row(0, val_loss=float("nan"))]
    files.rewrite(records)
    records.append(_row(1, val_loss=float("inf")))
    files.append(records)
    loaded = _strict_load(tmp_path / "anytime.json")
    assert [row["val_loss"] for row in loaded] == [None, None]
    with open(tmp_path / "anytime.csv", newline="") as file:
        assert [row["val_loss"] for row in csv.DictReader(file)] == ["nan", "inf"]


def test_a_row_cut_short_by_a_crash_is_dropped(tmp_path):
    files = RecordFiles(str(tmp_path))
    records = [_row(0), _row(1)]
    files.rewrite(records)
    data = (tmp_path / "anytime.json").read_bytes()
    (tmp_path / "anytime.json").write_bytes(data[:-3] + b',\n{"cycle": 2, "st')
    assert files.read() == records


@pytest.mark.parametrize("content, message", [
    (b"{not json", "is not valid JSON"),
    (b'[\n{"cycle": 0, "step": 4},\n{broken},\n{"cycle": 2, "step": 9}\n]\n',
     "is not valid JSON .* at row 1"),
    (b'{"cycle": 0}', "must hold a JSON array"),
    (b'[{"cycle": 0}]', "row 0 must be an object with integer `cycle` and `step`"),
])
def test_unreadable_json_names_the_file(tmp_path, content, message):
    (tmp_path / "anytime.json").write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        RecordFiles(str(tmp_path)).read()
    assert str(tmp_path / "anytime.json") in str(error.value)


def test_csv_without_json_is_not_overwritten(tmp_path):
    log_dir = str(tmp_path)
    _fit(_model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4)),
         [AnytimeRecorder(VALIDATION, log_dir=log_dir, verbose=0)], epochs=3)
    os.remove(tmp_path / "anytime.json")
    before = (tmp_path / "anytime.csv").read_bytes()
    model = _model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4))
    with pytest.raises(ValueError, match="holds .*anytime.csv but not .*anytime.json"):
        _fit(model, [AnytimeRecorder(VALIDATION, log_dir=log_dir, verbose=0)], epochs=3)
    assert (tmp_path / "anytime.csv").read_bytes() == before


def test_rewrite_uses_a_unique_temporary_file_and_keeps_the_mode(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    os.symlink(target, tmp_path / "anytime.json.tmp")  # the old fixed name
    files = RecordFiles(str(tmp_path))
    files.rewrite([_row(0)])
    os.chmod(tmp_path / "anytime.json", 0o600)
    os.chmod(tmp_path / "anytime.csv", 0o600)
    files.rewrite([_row(0), _row(1)])
    files.append([_row(0), _row(1), _row(2)])
    assert target.read_text() == "keep me"
    for name in ("anytime.json", "anytime.csv"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == [
        "anytime.csv", "anytime.json", "anytime.json.tmp", "elsewhere.txt"]


class _Crash(Exception):
    pass


def test_resume_cleans_what_a_crash_left(tmp_path):
    log_dir, snapshot_dir = tmp_path / "logs", tmp_path / "snapshots"
    kwargs = dict(log_dir=str(log_dir), snapshot_dir=str(snapshot_dir), verbose=0)
    backup_dir = str(tmp_path / "backup")
    model = _model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4))
    real_save = model.save_weights

    # Cycles end at 4 and 12; a backup at 6; a crash while saving the
    # snapshot of cycle 1 (step 12), a few bytes into the file.
    snapshots = []

    def broken_save(filepath, overwrite=True, **kwargs):
        if os.path.basename(filepath).startswith(".snapshot-"):
            snapshots.append(filepath)
        if len(snapshots) == 2:
            with open(filepath, "wb") as file:
                file.write(b"\x89HDF\r\n")
            raise _Crash()
        return real_save(filepath, overwrite=overwrite, **kwargs)

    model.save_weights = broken_save
    crashed = AnytimeRecorder(VALIDATION, **kwargs)
    with pytest.raises(_Crash):
        _fit(model, [crashed, keras.callbacks.BackupAndRestore(backup_dir)], epochs=3)
    assert [os.path.basename(p) for p in crashed.snapshot_paths] == [
        "snapshot-cycle000.weights.h5"]  # the torn file is not a snapshot
    # ...plus a torn CSV row and leftover temporary files.
    with open(log_dir / "anytime.csv", "a") as file:
        file.write("2,28,4.6")
    (log_dir / ".anytime-x1y2.tmp").write_text("partial")
    (log_dir / "anytime.json.tmp").write_text("partial")

    resumed = AnytimeRecorder(VALIDATION, **kwargs)
    model = _model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4), seed=4)
    _fit(model, [resumed, keras.callbacks.BackupAndRestore(backup_dir)], epochs=3)
    assert int(model.optimizer.iterations) == 18
    assert sorted(os.listdir(log_dir)) == ["anytime-run.json", "anytime.csv", "anytime.json"]
    assert sorted(os.listdir(snapshot_dir)) == [
        "anytime-run.json", "snapshot-cycle000.weights.h5", "snapshot-cycle001.weights.h5"]
    with open(log_dir / "anytime.csv", newline="") as file:
        assert [row["step"] for row in csv.DictReader(file)] == ["4", "12"]
    probe = _model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4))
    probe.load_weights(resumed.snapshot_paths[-1])  # a whole file


def test_validation_errors_name_the_argument(tmp_path, monkeypatch):
    def generator():
        yield VALIDATION

    for data in (np.float32(1), generator(), iter([VALIDATION]), VALIDATION[0]):
        with pytest.raises(TypeError, match="Argument `validation_data` must be"):
            AnytimeRecorder(data)
    with pytest.raises(ValueError, match=r"`evaluate_kwargs` must be a dict of "
                       r"Model.evaluate arguments \(batch_size, callbacks, steps, "
                       r"verbose\). Received: evaluate_kwargs=\{'batch_sze': 4\}"):
        AnytimeRecorder(VALIDATION, evaluate_kwargs={"batch_sze": 4})
    for name in ("log_dir", "snapshot_dir"):
        with pytest.raises(ValueError, match=f"Argument `{name}` must be a non-empty "
                           f"folder path or None .* Received: {name}=''"):
            AnytimeRecorder(VALIDATION, **{name: ""})
    monkeypatch.setenv("HOME", str(tmp_path))
    recorder = AnytimeRecorder(VALIDATION, log_dir="~/runs", snapshot_dir="~/snaps")
    assert recorder.log_dir == str(tmp_path / "runs")
    assert recorder.snapshot_dir == str(tmp_path / "snaps")
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(VALIDATION).batch(16)
    assert AnytimeRecorder(dataset).validation_data is dataset

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return tuple(part[16 * index:16 * (index + 1)] for part in VALIDATION)

    batches = Batches()
    recorder = AnytimeRecorder(batches, verbose=0)
    _fit(_model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4)), [recorder], epochs=3)
    assert [row["step"] for row in recorder.records] == [4, 12]


def test_resume_from_rows_without_wall_time(tmp_path):
    log_dir = str(tmp_path)
    model = _model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4))
    _fit(model, [AnytimeRecorder(VALIDATION, log_dir=log_dir, verbose=0)], epochs=2)
    rows = RecordFiles(log_dir).read()
    for row in rows:
        del row["wall_time"]
    with open(tmp_path / "anytime.json", "w") as file:
        json.dump(rows, file)
    resumed = AnytimeRecorder(VALIDATION, log_dir=log_dir, verbose=0)
    _fit(model, [resumed], epochs=5, initial_epoch=2)
    assert [row["step"] for row in resumed.records] == [4, 12, 28]
    assert resumed.records[2]["wall_time"] > 0


# Issue 16: anytime-run.json grows by appends, not whole rewrites.

def test_run_file_appends_a_checkpoint_without_rewriting(tmp_path, monkeypatch):
    from keras_adamwr.callbacks import _anytime_run

    writes = []
    original = _anytime_run.write_atomic
    monkeypatch.setattr(_anytime_run, "write_atomic",
                        lambda path, data: writes.append(path) or original(path, data))
    model = _model(keras_adamwr.AdamWR(1e-2, first_cycle_steps=4))
    recorder = AnytimeRecorder(VALIDATION, log_dir=str(tmp_path), verbose=0)
    _fit(model, [recorder], epochs=8)
    run = _anytime_run.read_run(str(tmp_path / "anytime-run.json"))
    assert [step for step, _ in run["checkpoints"]] == [4, 6, 12, 18, 24, 28, 30, 36, 42, 48]
    assert len(writes) == 1  # the claim; 0.4.0 rewrote the file for each of them
    assert _strict_load(tmp_path / "anytime-run.json") == run

    # A crash inside an append leaves a cut line: dropped, and the run resumes.
    path = tmp_path / "anytime-run.json"
    data = path.read_bytes()
    path.write_bytes(data[:-4] + b',\n[54, "0a1')
    cut = _anytime_run.read_run(str(path))
    assert cut["checkpoints"] == run["checkpoints"] and cut["run_id"] == run["run_id"]
    _fit(model, [AnytimeRecorder(VALIDATION, log_dir=str(tmp_path), verbose=0)], epochs=1)
    resumed = _anytime_run.read_run(str(path))
    assert resumed["run_id"] == run["run_id"]
    assert resumed["checkpoints"][:len(run["checkpoints"])] == run["checkpoints"]
    assert [step for step, _ in resumed["checkpoints"][-2:]] == [48, 54]
