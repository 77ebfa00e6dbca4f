"""examples/reproduce_gpu.py: plan, resume, selection, data split, docs; the
--quick run and the augmentation on Keras/JAX (JAX_ONLY in conftest.py)."""

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
sys.path.insert(0, EXAMPLES)

import _gpu_run  # noqa: E402
import reproduce_gpu as rg  # noqa: E402

FULL = rg.FULL


def _row(spec, val, test=0.3, settings=FULL, device="cpu", speed=100.0):
    """A results row as `result_row` writes it (strings, like the CSV)."""
    epochs = spec["epochs"]
    errors = ";".join(["0.5000"] * (epochs - 1) + [f"{val:.4f}"])
    row = {name: "" for name in rg.FIELDS}
    row.update({
        "key": rg.run_key(spec, settings), "phase": spec["phase"],
        "optimizer": spec["optimizer"], "lr": spec["lr"],
        "decay": spec["decay"], "raw_lambda": "0.001", "epochs": epochs,
        "steps": 352 * epochs, "seed": spec["seed"],
        "train_examples": settings["train_examples"],
        "val_examples": settings["val_examples"],
        "test_examples": settings["test_examples"],
        "train_eval_examples": settings["train_eval_examples"],
        "batch_size": settings["batch_size"], "parameters": 273658,
        "eval_epochs": ";".join(str(e) for e in range(1, epochs + 1)),
        "train_errors": errors, "val_errors": errors, "test_errors": errors,
        "final_train_error": "0.1", "final_val_error": f"{val:.4f}",
        "final_test_error": f"{test:.4f}", "wall_seconds": "10",
        "images_per_second": f"{speed}", "device": device})
    return row


def _grid_rows(path, val_of, test_of=lambda spec: 0.3):
    for spec in rg.grid_specs(FULL):
        rg.append_row(path, _row(spec, val_of(spec), test_of(spec)))


def test_plan_without_results_is_the_grid():
    specs = rg.plan([], FULL)
    assert len(specs) == 4 * 4 * 4
    assert {s["phase"] for s in specs} == {"grid"}
    assert {s["epochs"] for s in specs} == {100}
    assert {s["seed"] for s in specs} == {0}
    adamw = [s for s in specs if s["optimizer"] == "adamw"]
    assert sorted({s["decay"] for s in adamw}) == [0.0025, 0.007906, 0.025,
                                                   0.07906]


def test_later_phases_use_the_best_validation_cell_not_the_test_cell(tmp_path):
    path = str(tmp_path / "r.csv")
    lrs, decays = rg.grid_values(FULL, "adamw")
    # Validation prefers (lrs[2], decays[1]); test prefers (lrs[0], decays[0]).
    _grid_rows(path,
               val_of=lambda s: 0.1 if (s["lr"], s["decay"]) == (
                   rg.grid_values(FULL, s["optimizer"])[0][2],
                   rg.grid_values(FULL, s["optimizer"])[1][1]) else 0.2,
               test_of=lambda s: 0.05 if (s["lr"], s["decay"]) == (
                   rg.grid_values(FULL, s["optimizer"])[0][0],
                   rg.grid_values(FULL, s["optimizer"])[1][0]) else 0.3)
    rows = rg.read_rows(path)
    best = rg.best_cells(rows, FULL)
    assert best["adamw"] == (lrs[2], decays[1])
    todo = rg.pending(rows, FULL)
    assert {s["phase"] for s in todo} == {"budget", "restart", "repeat"}
    budget = [s for s in todo if s["phase"] == "budget"]
    assert len(budget) == 2 * 3 * 4
    assert {s["lr"] for s in budget if s["optimizer"] == "adamw"} == {lrs[2]}
    assert {s["epochs"] for s in budget} == {25, 50, 200}
    restart = {s["optimizer"]: s for s in todo if s["phase"] == "restart"}
    assert (restart["adamwr"]["lr"], restart["adamwr"]["decay"]) == best["adamw"]
    assert restart["sgdwr"]["epochs"] == 150
    repeat = [s for s in todo if s["phase"] == "repeat"]
    assert len(repeat) == 2 * 6 and {s["seed"] for s in repeat} == {1, 2}


def test_later_phases_wait_for_the_whole_grid(tmp_path):
    path = str(tmp_path / "r.csv")
    for spec in rg.grid_specs(FULL)[:-1]:
        rg.append_row(path, _row(spec, 0.2))
    rows = rg.read_rows(path)
    assert rg.best_cells(rows, FULL) is None
    todo = rg.pending(rows, FULL)
    assert [rg.run_key(s, FULL) for s in todo] == [
        rg.run_key(rg.grid_specs(FULL)[-1], FULL)]


def test_rows_round_trip_and_are_skipped(tmp_path):
    path = str(tmp_path / "r.csv")
    spec = rg.grid_specs(FULL)[0]
    rg.append_row(path, _row(spec, 0.25))
    rg.append_row(path, _row(rg.grid_specs(FULL)[1], 0.25))
    rows = rg.read_rows(path)
    assert [r["key"] for r in rows] == [rg.run_key(s, FULL)
                                        for s in rg.grid_specs(FULL)[:2]]
    assert rows[0]["val_errors"][-1] == 0.25 and len(rows[0]["val_errors"]) == 100
    assert rows[0]["epochs"] == 100 and rows[0]["lr"] == spec["lr"]
    assert len(rg.pending(rows, FULL)) == 64 - 2
    with open(path) as file:
        assert file.readline().strip().split(",") == rg.FIELDS  # one header


def test_a_budget_run_equal_to_a_grid_run_is_planned_once(tmp_path):
    settings = dict(FULL, budgets=(25, 100))
    path = str(tmp_path / "r.csv")
    for spec in rg.grid_specs(settings):
        rg.append_row(path, _row(spec, 0.2, settings=settings))
    specs = rg.plan(rg.read_rows(path), settings)
    keys = [rg.run_key(s, settings) for s in specs]
    assert len(keys) == len(set(keys))
    assert not [s for s in rg.pending(rg.read_rows(path), settings)
                if s["phase"] == "budget" and s["epochs"] == 100]


def test_plan_hours_use_measured_gpu_rows(tmp_path):
    path = str(tmp_path / "r.csv")
    for speed, spec in zip((1000.0, 3000.0, 2000.0), rg.grid_specs(FULL)):
        rg.append_row(path, _row(spec, 0.2, device="gpu: H100 x1",
                                 speed=speed))
    rg.append_row(path, _row(rg.grid_specs(FULL)[3], 0.2, speed=5.0))  # cpu
    rows = rg.read_rows(path)
    assert rg.measured_speed(rows) == 2000.0
    text = rg.plan_text(rows, FULL)
    assert "2,000 training images/s (median of this file's GPU rows)" in text
    grid = text.splitlines()[1].split()
    assert grid[:3] == ["grid", "64", "4"] and int(grid[3]) == 60 * 100
    hours = 6000 * rg.epoch_images(FULL) / 2000 / 3600
    assert float(grid[4]) == pytest.approx(hours, abs=0.05)


def test_docs_show_the_plan_and_the_measured_rate():
    """docs/reproduction_gpu.md quotes `--plan` for an empty CSV verbatim."""
    with open(os.path.join(ROOT, "docs", "reproduction_gpu.md")) as file:
        page = file.read()
    assert rg.plan_text([], FULL) in page
    assert f"{rg.ASSUMED_GPU_IMAGES_PER_SECOND:,}" in page
    assert "- Reproducing the paper on a GPU: reproduction_gpu.md" in open(
        os.path.join(ROOT, "mkdocs.yml")).read()


def test_cycle_ends():
    assert _gpu_run.cycle_ends(FULL, FULL["restart_epochs"]) == [10, 30, 70,
                                                                 150]
    assert _gpu_run.cycle_ends(rg.QUICK, rg.QUICK["restart_epochs"]) == [1, 3]


def test_npz_split_is_the_tail_of_the_training_images(tmp_path):
    settings = dict(rg.QUICK, train_examples=6, val_examples=3, test_examples=2)
    path = str(tmp_path / "d.npz")
    x = np.zeros((10, 32, 32, 3), "uint8")
    np.savez(path, x_train=x, y_train=np.arange(10), x_test=x[:4],
             y_test=np.arange(4))
    _, y_train, _, y_val, x_test, y_test = _gpu_run.load_npz(path, settings)
    assert list(y_train) == [0, 1, 2, 3, 4, 5] and list(y_val) == [6, 7, 8]
    assert list(y_test) == [0, 1] and x_test.dtype == np.float32
    with pytest.raises(ValueError, match="need 8 \\+ 3"):
        _gpu_run.load_npz(path, dict(settings, train_examples=8))
    with pytest.raises(FileNotFoundError, match="--convert"):
        _gpu_run.load_npz(str(tmp_path / "none.npz"), settings)


def test_negative_max_runs_is_refused(capsys):
    with pytest.raises(SystemExit):
        rg.main(["--max-runs", "-1", "--plan"])
    assert "--max-runs must be >= 0; received -1" in capsys.readouterr().err


def test_crop_flip_is_a_window_of_the_padded_image_per_image():
    layer = _gpu_run._augment_layer()(seed=3)
    x = np.random.default_rng(0).random((48, 32, 32, 3)).astype("float32")
    out = np.asarray(layer(x, training=True))
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)))
    found = []
    for b in range(len(x)):
        for dy in range(9):
            for dx in range(9):
                window = padded[b, dy:dy + 32, dx:dx + 32]
                if np.array_equal(window, out[b]):
                    found.append((dy, dx, False))
                elif np.array_equal(window[:, ::-1], out[b]):
                    found.append((dy, dx, True))
    assert len(found) == len(x)            # every image: one crop, maybe flipped
    assert len({f[:2] for f in found}) > 10  # offsets drawn per image
    assert 0 < sum(f[2] for f in found) < len(x)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)


QUICK_SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["tensorflow"] = None            # importing it raises
    sys.modules["tensorflow_datasets"] = None
    sys.path.insert(0, {examples!r})
    import reproduce_gpu
    results = {results!r}
    reproduce_gpu.main(["--quick", "--results", results, "--max-runs", "2"])
    reproduce_gpu.main(["--quick", "--results", results])
    reproduce_gpu.main(["--quick", "--results", results])
    reproduce_gpu.main(["--quick", "--speed", "2"])
""")


def test_quick_run_resumes_records_every_epoch_and_speed_without_tensorflow(tmp_path):
    results = str(tmp_path / "results.csv")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
               PYTHONPATH=ROOT)
    done = subprocess.run(
        [sys.executable, "-c", QUICK_SCRIPT.format(examples=EXAMPLES,
                                                   results=results)],
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = re.findall(r"(\d+) runs done", done.stdout)
    assert counts == ["2", "3", "0"]
    # --speed: images/s and XLA's FLOP count (ResNet-8 of width 4: ~2 MFLOP).
    speed = re.search(r"preact_resnet8_w4 \(5,286 parameters\) on cpu.*: "
                      r"([\d,.]+) training images/s \(([\d,.]+) per CPU-second\); "
                      r"([\d.]+) GFLOP per image",
                      done.stdout)
    assert speed, done.stdout[-2000:]
    assert float(speed.group(1).replace(",", "")) > 0
    assert float(speed.group(2).replace(",", "")) > 0
    assert 1e-4 < float(speed.group(3)) < 0.1
    rows = rg.read_rows(results)
    assert [r["phase"] for r in rows] == ["grid", "grid", "budget", "restart",
                                          "repeat"]
    assert len({r["key"] for r in rows}) == 5
    for row in rows:
        for name in ("train_errors", "val_errors", "test_errors"):
            assert len(row[name]) == row["epochs"]
            assert all(0 <= e <= 1 for e in row[name])
        assert row["final_val_error"] == row["val_errors"][-1]
        assert row["backend"] == "jax" and row["device"].startswith("cpu")
        assert row["val_examples"] == 128 and len(row["data_sha256"]) == 64
    assert [r["schedule"] for r in rows] == [
        "cosine", "cosine", "cosine", "restarts T0=1.0ep Tmul=2", "cosine"]
    assert rows[3]["optimizer"] == "adamwr" and rows[3]["epochs"] == 3
    assert rows[0]["decay_kind"] == "l2" and rows[1]["decay_kind"] == "normalized"
    assert {r["data"] for r in rows} <= {"cifar10_small", "synthetic"}
    assert all(r["final_train_loss"] > 0 for r in rows)


def test_columns_are_study_v3s_then_device_compile_and_data():
    """The GPU rows share the CPU study v3's columns (examples/study_v3.py),
    so one analysis reads both; three columns are added at the end."""
    path = os.path.join(EXAMPLES, "study_v3.py")
    if not os.path.exists(path):
        pytest.skip("examples/study_v3.py is not in this checkout")
    import study_v3

    assert rg.FIELDS == study_v3.FIELDS + ["device", "jit_compile",
                                           "data_sha256"]
    with open(study_v3.RESULTS) as file:  # the CPU rows written so far
        assert file.readline().strip().split(",") == study_v3.FIELDS

