"""examples/reproduce.py: results file, run plan, analysis, page (no training)."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples")
sys.path.insert(0, EXAMPLES)

import _reproduce_v2_stats as stats  # noqa: E402
import reproduce  # noqa: E402

SETTINGS = dict(reproduce.FULL, threads=1)


def _row(spec, error, settings=SETTINGS):
    """A results row as `train` would write it (strings, like the CSV)."""
    epochs = spec["epochs"]
    eval_epochs = list(range(1, epochs + 1))  # every epoch, every run
    errors = [error + 0.1 * (epochs - e) / epochs for e in eval_epochs]
    anytime = [1, 3, 7] if spec["optimizer"] in reproduce.RESTARTS else []
    return {
        "key": reproduce.run_key(spec, settings), "phase": spec["phase"],
        "optimizer": spec["optimizer"], "lr": spec["lr"],
        "decay": spec["decay"],
        "decay_kind": "l2" if spec["optimizer"] in reproduce.L2
        else "normalized", "raw_lambda": "0.001", "epochs": epochs,
        "steps": 16 * epochs,
        "train_examples": settings["train_examples"],
        "test_examples": settings["test_examples"],
        "batch_size": settings["batch_size"], "seed": spec["seed"],
        "model": "small_cnn_16-32-64", "parameters": 24570,
        "eval_epochs": ";".join(map(str, eval_epochs)),
        "test_errors": ";".join(f"{e:.4f}" for e in errors),
        "final_test_error": f"{error:.4f}",
        "anytime_epochs": ";".join(map(str, anytime)),
        "anytime_errors": ";".join(f"{error + 0.01 * (7 - e):.4f}"
                                   for e in anytime),
        "wall_seconds": "40.0", "images_per_second": "180.0",
        "keras_adamwr_version": "0.2.0", "keras_version": "3",
        "backend_version": "2", "backend": "tensorflow", "python": "3.11",
        "hardware": "cpu", "threads": 1, "date": "2026-11-30T11:00:00Z"}


def _error(spec):
    """A smooth synthetic error surface with its optimum at the center."""
    center = SETTINGS["decay_center"].get(spec["optimizer"], 0.025)
    return 0.5 + 0.02 * math.log10(spec["decay"] / center) ** 2


def _fill(path, count, settings=SETTINGS):
    """Append `count` runs in plan order to the results file at `path`."""
    for _ in range(count):
        rows = reproduce.read_rows(path)
        done = {row["key"] for row in rows}
        pending = [s for s in reproduce.plan(rows, settings)
                   if reproduce.run_key(s, settings) not in done]
        if not pending:
            return
        reproduce.append_row(path, _row(pending[0], _error(pending[0]),
                                        settings))


def test_results_file_round_trip(tmp_path):
    path = str(tmp_path / "results.csv")
    spec = dict(phase="repeat", optimizer="adamwr", lr=1e-3, decay=0.025,
                epochs=7, seed=2)
    reproduce.append_row(path, _row(spec, 0.4321))
    reproduce.append_row(path, _row(dict(spec, seed=3), 0.5))
    rows = reproduce.read_rows(path)
    assert [row["seed"] for row in rows] == [2, 3]
    assert rows[0]["final_test_error"] == 0.4321
    assert rows[0]["eval_epochs"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert rows[0]["anytime_epochs"] == [1.0, 3.0, 7.0]
    assert rows[0]["key"] == reproduce.run_key(spec, SETTINGS)
    with open(path) as file:  # one header line, plain CSV
        assert file.read().count("key,phase,") == 1


def test_plan_runs_coarse_grid_then_repeats_then_rest(tmp_path):
    path = str(tmp_path / "results.csv")
    plan = reproduce.plan([], SETTINGS)
    coarse = [s for s in plan[:36]]
    assert {s["phase"] for s in plan} == {"grid"} and len(plan) == 140
    assert {(s["lr"], s["decay"]) for s in coarse if s["optimizer"] == "adamw"
            } == {(lr, d) for lr in (1e-3, 4e-3, 0.016)
                  for d in (0.0003162, 0.01, 0.3162)}
    _fill(path, 36)
    rows = reproduce.read_rows(path)
    pending = [s for s in reproduce.plan(rows, SETTINGS)
               if reproduce.run_key(s, SETTINGS) not in
               {row["key"] for row in rows}]
    assert [s["phase"] for s in pending[:30]] == ["repeat"] * 30
    assert pending[30]["phase"] == "budget"
    assert pending[-1]["phase"] == "grid"
    # Repeats sit at the coarse grid's best cell (the decay center here).
    assert {s["decay"] for s in pending[:30]
            if s["optimizer"] in ("adamw", "adamwr")} == {0.01}


def test_parallel_workers_claim_distinct_runs(tmp_path):
    """examples/_study_common.py's claims, as reproduce.py --claims uses
    them: a run held by a live process is not taken, one of a dead process
    is, and appending a run's row gives up its claim."""
    claims = str(tmp_path / "claims")
    shared = reproduce.results_file(str(tmp_path / "r.csv"), claims)
    assert shared.claim("a|b=1")
    assert shared.claim("a|b=1")  # this process holds it
    with open(os.path.join(claims, "a_b_1"), "w") as file:
        file.write("1")  # held by another live process (init)
    assert not shared.claim("a|b=1")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with open(os.path.join(claims, "a_b_1"), "w") as file:
        file.write(str(dead.pid))  # a worker that died: taken over
    assert shared.claim("a|b=1")
    row = {name: "" for name in reproduce.FIELDS}
    shared.append(dict(row, key="a|b=1", epochs=1, steps=1,
                       train_examples=1, seed=0, test_examples=1,
                       batch_size=1, parameters=1))
    assert not os.path.exists(os.path.join(claims, "a_b_1"))
    assert reproduce.results_file(str(tmp_path / "x.csv")).claim("any")


def test_plan_is_complete_and_skips_finished_runs(tmp_path):
    path = str(tmp_path / "results.csv")
    _fill(path, 1000)
    rows = reproduce.read_rows(path)
    keys = [row["key"] for row in rows]
    assert len(keys) == len(set(keys))
    assert {row["phase"] for row in rows} == {"grid", "repeat", "budget"}
    assert all(reproduce.run_key(s, SETTINGS) in keys
               for s in reproduce.plan(rows, SETTINGS))


def test_best_decay_interpolates_a_parabola():
    report = pytest.importorskip("_reproduce_report")
    logs = np.log10([1e-3, 1e-2, 1e-1, 1.0, 10.0])
    errors = (logs + 1.3) ** 2
    assert report.best_log_decay(logs, errors) == pytest.approx(-1.3)
    # At the edge of the grid: the edge itself.
    assert report.best_log_decay(logs, (logs - 3) ** 2) == pytest.approx(1.0)


@pytest.mark.parametrize("true_slope", [-1.0, 0.0])
def test_decay_slope_recovers_the_valley(true_slope):
    report = pytest.importorskip("_reproduce_report")
    lrs = 1e-3 * np.array([0.25, 0.5, 1, 2, 4])
    decays = 1e-3 * 10 ** np.linspace(-1, 1, 5)
    best = -3 + true_slope * np.log10(lrs / 1e-3)
    errors = (np.log10(decays)[None, :] - best[:, None]) ** 2
    slope, _, interval = report.decay_slope(
        lrs, decays, errors, 0.0, np.random.default_rng(0))
    assert slope == pytest.approx(true_slope, abs=1e-6)
    assert interval[0] == pytest.approx(true_slope, abs=1e-6)


def test_page_from_the_csv_alone_without_tensorflow(tmp_path):
    pytest.importorskip("matplotlib")
    path = str(tmp_path / "results.csv")
    _fill(path, 70)  # coarse grid, repeats, part of the budgets
    page, images = tmp_path / "page.md", tmp_path / "img"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import reproduce, "
        "_reproduce_report as r; s = dict(reproduce.FULL, threads=1); "
        "r.write_page(reproduce.read_rows(sys.argv[2]), s, sys.argv[3], "
        "sys.argv[4]); assert 'tensorflow' not in sys.modules, 'TF loaded'; "
        "assert 'keras' not in sys.modules, 'Keras loaded'")
    subprocess.run([sys.executable, "-c", script, EXAMPLES, path, str(page),
                    str(images)], check=True, env={**os.environ,
                                                   "MPLBACKEND": "Agg"})
    text = page.read_text()
    assert sorted(os.listdir(images)) == [
        "reproduction_anytime.png", "reproduction_budgets.png",
        "reproduction_grid.png", "reproduction_seeds.png"]
    assert text.count("**Original rule**") == 3
    assert "Verdict (rule fixed before the data" in text
    assert text.count("#### Corrected reading (post hoc)") == 3
    # Issue 17: there is no validation split, and the page says so.
    assert "never used for anything but" not in text
    assert "No validation split" in text
    assert "70 runs in the results file" in text
    assert "(img/reproduction_grid.png)" in text
    assert "AdamW vs Adam+L2:" in text


def test_quick_page(tmp_path):
    """--quick grids only the Adam family: the page still gets written."""
    pytest.importorskip("matplotlib")
    report = pytest.importorskip("_reproduce_report")
    settings = dict(reproduce.QUICK, threads=1)
    path = str(tmp_path / "results.csv")
    _fill(path, 100, settings)
    rows = reproduce.read_rows(path)
    assert len(rows) == 5
    report.write_page(rows, settings, str(tmp_path / "page.md"),
                      str(tmp_path / "img"))
    assert "5 runs in the results file; complete" in (
        tmp_path / "page.md").read_text()


def test_budget_table_uses_the_full_grids_best_rate(tmp_path):
    """Regression: the budget table read the first budget row's rate (the
    coarse grid's best AdamW rate) after the full grid had found another."""
    pytest.importorskip("matplotlib")
    report = pytest.importorskip("_reproduce_report")
    best_lr = 8e-3  # a fine-grid rate: not among the coarse rates

    def error(spec):  # best at best_lr; the rate is visible in the error
        return _error(spec) + 0.01 * abs(math.log2(spec["lr"] / best_lr))

    path = str(tmp_path / "results.csv")
    for _ in range(1000):
        rows = reproduce.read_rows(path)
        done = {row["key"] for row in rows}
        pending = [s for s in reproduce.plan(rows, SETTINGS)
                   if reproduce.run_key(s, SETTINGS) not in done]
        if not pending:
            break
        reproduce.append_row(path, _row(pending[0], error(pending[0])))
    rows = reproduce.read_rows(path)
    assert {r["lr"] for r in rows if r["phase"] == "budget"} > {best_lr}
    lines, _ = report.claim_budgets(rows, SETTINGS, str(tmp_path / "p.md"),
                                    str(tmp_path / "img"))
    decays = reproduce.budget_decays(SETTINGS)
    for epochs in SETTINGS["budgets"]:
        expected = " / ".join(
            f"{100 * error(dict(optimizer='adamw', lr=best_lr, decay=d)):.1f}"
            for d in decays)
        assert any(line.startswith(f"| {epochs} |") and expected in line
                   for line in lines), (epochs, expected, lines)


# ---------------------------------------------------------------------------
# Issue 17: the corrected reading of the BatchNorm-CNN study
# ---------------------------------------------------------------------------


def test_text_colour_follows_the_cells_luminance():
    """Regression: the grid's labels were white on the light (yellow) best
    cells, as the rule compared the error, not the drawn colour."""
    mpl = pytest.importorskip("matplotlib")
    cmap = mpl.colormaps["viridis_r"]
    assert stats.text_color(cmap(0.0)) == "k"  # the best cells: yellow
    assert stats.text_color(cmap(1.0)) == "w"  # dark purple
    assert stats.text_color((1.0, 1.0, 1.0, 1.0)) == "k"
    assert stats.text_color((0.0, 0.0, 0.0, 1.0)) == "w"
    assert stats.text_color((0.0, 0.0, 1.0, 1.0)) == "w"  # dark blue
    assert stats.text_color((0.0, 1.0, 0.0, 1.0)) == "k"  # bright green


def test_paired_t_removes_the_shared_seed_effect():
    seed_effect = np.array([5.0, -3.0, 0.0, 8.0])
    b = 50 + seed_effect
    a = b + np.array([1.0, 2.0, 3.0, 2.0])
    mean, se, t, df = stats.paired_t(a, b)
    d = np.array([1.0, 2.0, 3.0, 2.0])
    assert mean == pytest.approx(2.0)
    assert se == pytest.approx(d.std(ddof=1) / 2)
    assert t == pytest.approx(2.0 / (d.std(ddof=1) / 2))
    assert df == 3
    assert stats.t_critical(4) == pytest.approx(2.776)
    assert stats.t_critical(100) == pytest.approx(1.96)


def test_paired_t_of_the_study_matches_issue_17():
    """The numbers the corrected claim-2 verdict rests on, from the CSV."""
    rows = reproduce.read_rows(reproduce.RESULTS)
    if not rows:
        pytest.skip("no results file")

    def errors(opt, lr, decay):
        return [r["final_test_error"] for r in sorted(rows, key=lambda r:
                                                      r["seed"])
                if r["phase"] == "repeat" and r["optimizer"] == opt
                and r["lr"] == lr and r["decay"] == decay]

    best = stats.paired_t(errors("adamw", 0.008, 0.003162),
                          errors("adam_l2", 0.004, 0.03162))
    coarse = stats.paired_t(errors("adamw", 0.004, 0.0003162),
                            errors("adam_l2", 0.004, 0.01))
    assert round(best[2], 1) == 3.3 and round(100 * best[0], 2) == 1.22
    assert round(coarse[2], 1) == 5.9 and round(100 * coarse[0], 2) == 1.20


@pytest.mark.parametrize("mean, se, expected", [
    (-0.02, 0.002, "reproduces"),
    (0.012, 0.0037, "significantly the opposite"),
    (-0.001, 0.001, "does not reproduce"),   # [-0.0038, +0.0018]
    (-0.005, 0.01, "inconclusive"),           # reaches a 2% relative gain
])
def test_verdict_paired_has_every_outcome(mean, se, expected):
    assert stats.verdict_paired(mean, se, 4, baseline=0.57) == expected


@pytest.mark.parametrize("low, high, expected", [
    (-1.4, -0.6, "reproduces"),
    (-0.5, -0.1, "partly"),
    (0.1, 0.9, "significantly the opposite"),
    (-0.5, 0.4, "does not reproduce"),
    (-1.4, 1.7, "inconclusive"),
])
def test_verdict_difference_has_every_outcome(low, high, expected):
    assert stats.verdict_difference(low, high) == expected


@pytest.mark.parametrize("low, high, expected", [
    (-0.2, 0.3, "reproduces"),
    (-0.3, 0.9, "inconclusive"),
    (0.3, 0.9, "does not reproduce"),
    (1.4, 3.8, "does not reproduce"),
    (-0.9, -0.1, "significantly the opposite"),
    (0.1, 0.4, "inconclusive"),
])
def test_verdict_budget_has_every_outcome(low, high, expected):
    assert stats.verdict_budget(low, high) == expected


def test_within_row_noise_ignores_the_rows_shared_shift():
    shift = np.array([3.0, -2.0, 0.5, 1.0])  # the seed moves the whole row
    noise = np.array([0.1, -0.1, 0.0, 0.2])
    a, b = 0.6 + shift + noise, 0.58 + shift
    sigma, df = stats.within_row_noise([(a, b)])
    assert df == 3
    assert sigma == pytest.approx(noise.std(ddof=1) / np.sqrt(2))
    assert stats.within_row_noise([]) == (None, 0)


def test_second_difference_noise_is_zero_on_straight_rows():
    grid = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]])
    assert stats.second_difference_noise([grid]) == 0.0


def test_basic_interval_is_centred_on_the_estimate():
    draws = 1.0 + np.linspace(-0.5, 0.5, 1001)  # biased by +1
    low, high, bias = stats.basic_interval(0.0, draws)
    assert bias == pytest.approx(1.0)
    assert (low + high) / 2 == pytest.approx(-1.0)  # bias removed
    assert high - low == pytest.approx(0.9)


@pytest.mark.parametrize("true_slope", [-1.0, -0.3, 0.0])
def test_quadratic_valley_recovers_its_slope(true_slope):
    x = np.log10(1e-3 * np.array([0.25, 0.5, 1, 2, 4]))
    y = np.linspace(-4, -1, 7)
    valley = -2.5 + true_slope * (x + 3)
    errors = 0.5 + 0.03 * (y[None, :] - valley[:, None]) ** 2 \
        + 0.01 * (x[:, None] + 3) ** 2
    slope, _, fitted, residuals = stats.quadratic_valley(x, y, errors)
    assert slope == pytest.approx(true_slope, abs=1e-9)
    assert np.abs(residuals).max() < 1e-9
    draws = stats.quadratic_valley_draws(x, y, errors,
                                         np.random.default_rng(0), 20)[1]
    assert np.allclose(draws, true_slope)


def test_upper_edge_interpolates_the_rise():
    logs = np.array([-4.0, -3.0, -2.0, -1.0, 0.0])
    # Rises from 0.60 to 0.64 between -2 and -1: crosses 0.62 half way.
    assert stats.upper_edge(logs, [0.6, 0.6, 0.6, 0.64, 0.7], 0.02) == \
        pytest.approx(-1.5)
    assert np.isnan(stats.upper_edge(logs, [0.6] * 5, 0.02))
    # Edges moving by -1 decade per decade of lr: slope -1.
    x = np.array([-3.0, -2.0, -1.0])
    grid = np.array([[0.6, 0.6, 0.6, 0.6, 0.7], [0.6, 0.6, 0.6, 0.7, 0.8],
                     [0.6, 0.6, 0.7, 0.8, 0.9]])
    slope, edges = stats.edge_slope(x, logs, grid, 0.05)
    assert slope == pytest.approx(-1.0)


def test_leave_one_out_finds_the_row_that_sets_the_slope():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    best = np.array([0.0, 0.0, 0.0, -3.0])  # one row sets the tilt
    loo = stats.leave_one_out(x, best)
    assert loo[3] == pytest.approx(0.0)
    assert all(v < 0 for v in loo[:3])


def test_grid_colour_is_the_excess_over_the_rows_best():
    report = pytest.importorskip("_reproduce_report")
    errors = np.array([[0.60, 0.61, 0.65], [0.55, 0.54, np.nan]])
    excess = report.above_row_best(errors)
    assert np.allclose(excess[0], [0.0, 0.01, 0.05])
    assert np.allclose(excess[1, :2], [0.01, 0.0])
    assert np.isnan(excess[1, 2])


def test_page_region_is_replaced_and_the_rest_kept(tmp_path):
    """docs/reproduction.md holds two studies; the generator rewrites only
    the study-v2 region, and creates the layout where it is missing."""
    report = pytest.importorskip("_reproduce_report")
    page = tmp_path / "page.md"
    text = report._splice(str(page), ["old study body"])
    assert text.startswith("# Reproducing the paper's claims")
    assert (text.index(report.V3_BEGIN) < text.index(report.V3_END)
            < text.index(report.HEADING) < text.index(report.BEGIN)
            < text.index("old study body") < text.index(report.END))
    page.write_text(text.replace("is being added here", "NEW STUDY TEXT"))
    again = report._splice(str(page), ["second body"])
    assert "NEW STUDY TEXT" in again and "second body" in again
    assert "old study body" not in again
    assert again.count(report.BEGIN) == 1 and again.count(report.HEADING) == 1


def test_every_run_of_the_csv_is_accounted_for(tmp_path):
    report = pytest.importorskip("_reproduce_report")
    path = str(tmp_path / "results.csv")
    _fill(path, 1000)
    rows = reproduce.read_rows(path)
    accounting = report.run_accounting(rows, SETTINGS)
    assert sum(count for _, count, _ in accounting) == len(rows)
    assert not any(where == "not shown" for _, _, where in accounting)


def test_grid_labels_are_dark_on_the_light_best_cells(tmp_path, monkeypatch):
    """Regression (issue 17): the best cells (light yellow in viridis_r)
    had white labels, as the rule compared the error, not the colour."""
    pytest.importorskip("matplotlib")
    report = pytest.importorskip("_reproduce_report")
    path = str(tmp_path / "results.csv")
    _fill(path, 1000)
    rows = reproduce.read_rows(path)
    figures = []
    monkeypatch.setattr(report, "_save",
                        lambda figure, *a, **k: figures.append(figure))
    report.claim_grid(rows, SETTINGS, str(tmp_path / "p.md"),
                      str(tmp_path / "img"), np.random.default_rng(0))
    axes = figures[0].axes[0]  # Adam+L2
    image = axes.images[0]
    texts = axes.texts
    assert texts
    for text in texts:
        x, y = text.get_position()
        rgba = image.cmap(image.norm(image.get_array()[round(y), round(x)]))
        luminance = np.dot(rgba[:3], [0.2126, 0.7152, 0.0722])
        if abs(luminance - 0.5) > 0.2:  # clearly light or clearly dark
            assert text.get_color() == ("k" if luminance > 0.5 else "w"), (
                text.get_text(), rgba)
    best = min(texts, key=lambda t: float(t.get_text()))
    assert best.get_color() == "k"


def test_committed_page_is_the_generators_output(tmp_path):
    """docs/reproduction.md's earlier-study region is exactly what
    `reproduce.py --plot-only` writes from the committed CSV, so every
    number and verdict on it comes from the CSV (issue 17's corrected
    readings included)."""
    pytest.importorskip("matplotlib")
    report = pytest.importorskip("_reproduce_report")
    rows = reproduce.read_rows(reproduce.RESULTS)
    if not rows or not os.path.exists(reproduce.PAGE):
        pytest.skip("no results file or page")
    with open(reproduce.PAGE) as file:
        committed = file.read()
    page = tmp_path / "docs" / "reproduction.md"
    page.parent.mkdir()
    page.write_text(committed)
    report.write_page(rows, SETTINGS, str(page), str(tmp_path / "docs" / "img"))
    assert page.read_text() == committed
    region = committed.split(report.BEGIN)[1].split(report.END)[0]
    assert "AdamW significantly *worse* than Adam+L2" in region
    assert "| 1. separable lr and decay |" in region


def test_results_read_where_no_lock_can_be_created(tmp_path):
    """Reading a results file needs no write access: where the lock file
    cannot be created (a read-only copy; here a folder in its place, which
    stops root too) a read goes on without it, a write does not; a missing
    file reads as empty."""
    path = str(tmp_path / "r.csv")
    row = {name: "" for name in reproduce.FIELDS}
    row = dict(row, key="k", epochs=1, steps=1, train_examples=1, seed=0,
               test_examples=1, batch_size=1, parameters=1)
    reproduce.append_row(path, row)
    os.remove(path + ".lock")
    os.mkdir(path + ".lock")
    assert [r["key"] for r in reproduce.read_rows(path)] == ["k"]
    with pytest.raises(OSError):
        reproduce.append_row(path, row)
    assert reproduce.read_rows(str(tmp_path / "none.csv")) == []
    assert not os.path.exists(str(tmp_path / "none.csv.lock"))


def test_claimed_runs_wait_while_every_run_left_is_claimed(tmp_path):
    """A worker whose runs left are all claimed by another live process
    waits and looks again (a later phase may depend on them) instead of
    stopping; it stops when none is left or after `max_runs`."""
    claims = str(tmp_path / "claims")
    shared = reproduce.results_file(str(tmp_path / "r.csv"), claims)
    os.makedirs(claims)
    with open(os.path.join(claims, "a"), "w") as file:
        file.write("1")  # run "a" held by another live process (init)
    calls = []

    def pending(rows):
        calls.append(len(calls))
        return ["a"] if len(calls) < 3 else ["a", "b", "c"]

    got = list(shared.claimed_runs(pending, str, max_runs=2, wait=0))
    assert got == [("b", 3), ("b", 3)]  # b stays pending: nobody appended
    assert len(calls) == 4  # twice nothing free, then b twice
    assert list(shared.claimed_runs(lambda rows: [], str, wait=0)) == []
