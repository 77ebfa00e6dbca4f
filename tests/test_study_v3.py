"""Study v3 (examples/study_v3.py): plan, statistics, verdicts, report.

The statistics are checked on constructed data whose answer is known (a
valley slope put in is recovered; noise put in is measured); the report is
built from a constructed complete study (no training). The `--quick` run is
in test_quick_run (tiny real training on synthetic data).
"""

import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
sys.path.insert(0, EXAMPLES)

import _study_v3_stats as stats  # noqa: E402
import study_v3 as study  # noqa: E402

FULL = dict(study.FULL, threads=1)
FAST = dict(FULL, n_boot=300)  # the report's tests: fewer replicates


# -- statistics on constructed data ----------------------------------------
def test_fit_valley_recovers_the_minimum_of_a_quadratic():
    x = np.arange(-3, 4) * 0.5
    x_star, a, ok = stats.fit_valley(x, 0.02 * (x - 0.37) ** 2 + 0.4)
    assert ok and a == pytest.approx(0.02)
    assert x_star == pytest.approx(0.37)


def test_fit_valley_without_a_valley_takes_the_lowest_cell():
    x = np.arange(5.0)
    x_star, _, ok = stats.fit_valley(x, 0.5 - 0.01 * x)  # falls to the edge
    assert not ok and x_star == 4.0


def test_fit_valley_uses_only_cells_near_the_lowest():
    # a cliff far from the valley must not bend the fit
    x = np.arange(-3, 5) * 0.5
    y = 0.02 * (x - 0.1) ** 2 + 0.4
    y[-1] = 0.9  # divergence at the largest decay
    assert stats.fit_valley(x, y)[0] == pytest.approx(0.1)


@pytest.mark.parametrize("slope", [-1.0, 0.0, 0.6])
def test_a_known_valley_slope_is_recovered(slope):
    cells = np.arange(-3, 4) * 0.5
    rows = [(x, cells, 0.03 * (cells - slope * x) ** 2 + 0.45)
            for x in np.log10([0.25, 0.5, 1, 2, 4])]
    est, valleys = stats.valley_slope(rows)
    assert est == pytest.approx(slope, abs=1e-6)
    assert valleys[2] == pytest.approx(0.0, abs=1e-9)


def test_bootstrap_interval_covers_the_true_slope_and_widens_with_noise():
    rng = np.random.default_rng(3)
    cells = np.arange(-3, 4) * 0.5
    rows = [(x, cells, 0.03 * (cells + x) ** 2 + 0.45
             + rng.normal(0, 0.002, 7)) for x in np.log10([0.25, 0.5, 1, 2, 4])]
    est, _ = stats.valley_slope(rows)
    small = stats.bootstrap_slope(rows, 0.001, 300)
    large = stats.bootstrap_slope(rows, 0.006, 300)
    ci, median = stats.interval(est, large)
    assert ci[0] < -1 < ci[1]
    assert ci[0] < est < ci[1]
    assert np.std(large) > 2 * np.std(small)


def test_pair_noise_separates_row_shifts_from_cell_noise():
    rng = np.random.default_rng(0)
    pairs = []
    for shift in (0.03, -0.02, 0.05, 0.0, -0.04, 0.01) * 5:
        e0 = rng.normal(0, 0.004, 5)
        e1 = rng.normal(0, 0.004, 5) + shift
        pairs.append(list(zip(e0, e1)))
    s_ind, s_tot = stats.pair_noise(pairs)
    assert s_ind == pytest.approx(0.004, rel=0.2)
    assert s_tot > 3 * s_ind


def test_paired_t_matches_a_hand_computation():
    d = [0.01, 0.02, 0.03, 0.02]
    mean, (lo, hi), t = stats.paired_t(d)
    se = np.std(d, ddof=1) / 2
    assert mean == pytest.approx(0.02)
    assert t == pytest.approx(0.02 / se)
    assert hi - mean == pytest.approx(2.353363 * se, rel=1e-4)  # t_0.95(3)
    assert lo == pytest.approx(2 * mean - hi)


def test_t_quantile_against_known_values():
    assert stats.t_quantile(0.95, 1) == pytest.approx(6.313752, rel=1e-5)
    assert stats.t_quantile(0.95, 7) == pytest.approx(1.894579, rel=1e-5)
    assert stats.t_quantile(0.975, 30) == pytest.approx(2.042272, rel=1e-5)


def test_slope_power_shrinks_with_noise_and_grows_with_flatness():
    rx = np.log10([0.25, 0.5, 1, 2, 4])
    quiet = stats.slope_power(0.001, 0.03, rx, n_sim=200)
    noisy = stats.slope_power(0.004, 0.03, rx, n_sim=200)
    flat = stats.slope_power(0.004, 0.01, rx, n_sim=200)
    assert quiet < noisy < flat
    assert stats.slope_power(0.0, 0.03, rx, n_sim=20) == pytest.approx(
        0.0, abs=1e-9)
    assert stats.detectable_difference(0.1, 0.1) == pytest.approx(
        (1.644854 + 0.841621) * math.sqrt(0.02), rel=1e-5)


# -- verdict rules (docs/study_v3_protocol.md) -----------------------------
@pytest.mark.parametrize("diff, adamw, expected", [
    ((0.4, 1.6), (-0.2, 0.1), "reproduces"),
    ((0.4, 1.6), (0.2, 0.5), "partly"),
    ((-0.9, -0.2), (-0.2, 0.1), "significantly the opposite"),
    ((-0.3, 0.4), (-0.2, 0.1), "does not reproduce"),
    ((-0.3, 1.2), (-0.2, 0.1), "inconclusive"),
])
def test_claim1_rule(diff, adamw, expected):
    assert stats.verdict_claim1(diff, adamw) == expected


@pytest.mark.parametrize("test, val, expected", [
    ((-0.02, -0.01), (-0.02, -0.005), "reproduces"),
    ((-0.02, -0.01), (-0.02, 0.005), "partly"),
    ((-0.01, 0.01), (-0.02, -0.005), "partly"),
    ((0.003, 0.012), (-0.02, 0.005), "significantly the opposite"),
    ((-0.004, 0.004), (-0.01, 0.01), "does not reproduce"),
    ((-0.02, 0.01), (-0.01, 0.01), "inconclusive"),
])
def test_claim2_rule(test, val, expected):
    assert stats.verdict_claim2(test, val) == expected


@pytest.mark.parametrize("ci, expected", [
    ((-0.2, 0.3), "reproduces"),
    ((-0.2, 0.7), "inconclusive"),
    ((0.05, 0.2), "partly"),
    ((0.3, 0.8), "significantly the opposite"),
    ((0.27, 0.45), "significantly the opposite"),
    ((-0.9, -0.4), "does not reproduce"),
])
def test_claim3_rule(ci, expected):
    assert stats.verdict_claim3(ci) == expected


@pytest.mark.parametrize("deltas, expected", [
    ([0.001, -0.01, 0.004], "reproduces"),
    ([0.001, 0.02, 0.03], "partly"),
    ([0.02, 0.011, 0.012], "does not reproduce"),
    ([0.05, 0.04, 0.06], "significantly the opposite"),
    ([0.001], "inconclusive"),
])
def test_claim4_rule(deltas, expected):
    assert stats.verdict_claim4(deltas, 0.01) == expected


# -- the plan ---------------------------------------------------------------
def _simulate(settings, surface, limit=None):
    """Run the plan to the end with `surface(spec) -> (train, val, test)`
    instead of training; return the rows as `read_rows` gives them."""
    rows = []
    while limit is None or len(rows) < limit:
        todo = study.pending(rows, settings)
        if not todo:
            break
        rows.append(_fake_row(todo[0], settings, surface))
    return rows


def _fake_row(s, settings, surface):
    """The row `train` would write for spec `s`, errors from `surface`."""
    tr, va, te = surface(s)
    n = s["epochs"]
    curve = [0.1 * (n - k) / n for k in range(1, n + 1)]
    row = dict(
        key=study.run_key(s, settings), phase=s["phase"],
        optimizer=s["optimizer"], lr=s["lr"], decay=s["decay"],
        decay_kind="l2" if s["optimizer"] in study.L2 else "normalized",
        raw_lambda=s["decay"], epochs=n,
        steps=n * study.steps_per_epoch(settings), schedule="cosine",
        batch_size=settings["batch_size"], seed=s["seed"],
        data=settings["data"], train_examples=settings["train_examples"],
        val_examples=settings["val_examples"],
        test_examples=settings["test_examples"],
        train_eval_examples=settings["train_eval_examples"],
        model="mlp_768-512-512-10", parameters=661514,
        eval_epochs=[float(k) for k in range(1, n + 1)],
        train_errors=[tr + c for c in curve],
        val_errors=[va + c for c in curve],
        test_errors=[te + c for c in curve], final_train_error=tr,
        final_val_error=va, final_test_error=te, final_train_loss=1.0,
        wall_seconds=10.0, cpu_seconds=5.0, images_per_second=1.0,
        code_commit="x", keras_adamwr_version="0.4.0",
        keras_version="3", backend="tensorflow", backend_version="2",
        python="3", hardware="cpu", threads="1", date="d")
    return row


def paper_surface(settings, noise=0.0, seed=0, coupling=-1.0):
    """Validation error with the paper's shape: the best L2 decay falls as
    1/lr (slope -1), the best lambda_norm does not move with lr or budget;
    AdamW 1 point better than Adam+L2."""
    rng = np.random.default_rng(seed)

    def surface(s):
        opt = study.RESTARTS.get(s["optimizer"], s["optimizer"])
        fam = study.family(opt)
        x_lr = math.log10(s["lr"] / settings["lr_center"][fam])
        x_d = math.log10(s["decay"] / settings["decay_center"][opt])
        best = coupling * x_lr if opt in study.L2 else 0.0
        base = 0.44 if opt in study.L2 else 0.43
        val = base + 0.03 * (x_d - best) ** 2 + 0.01 * x_lr ** 2 \
            + rng.normal(0, noise)
        return val - 0.1, val, val + 0.002
    return surface


def test_plan_runs_the_phases_in_order_and_extends_edges():
    rows = _simulate(FULL, paper_surface(FULL, coupling=-3.0))
    phases = [r["phase"] for r in rows]
    assert phases[:140] == ["grid"] * 140
    assert [r["seed"] for r in rows[:70]] == [0] * 70
    assert {r["optimizer"] for r in rows[:140]} == {"adam_l2", "adamw"}
    assert phases.index("restart") > phases.index("budget")
    # Adam+L2's best decay moves 3.6 decades over the rates: rows extend
    ext = [r for r in rows if r["optimizer"] == "adam_l2" and r["seed"] == 0
           and r["epochs"] == 8 and study.decay_index(
               FULL, "adam_l2", r["decay"]) not in range(-3, 4)]
    assert ext
    runs, epochs = study.planned_counts(FULL)
    assert runs == 328 and epochs == 4128
    assert abs(len(rows) - runs) < 40
    budgets = {r["epochs"] for r in rows if r["phase"] == "budget"}
    assert budgets == {24, 120}
    assert max(FULL["budgets"]) * 1.0 / min(FULL["budgets"]) >= 15
    assert min(r["steps"] for r in rows) >= 2000


def test_selection_uses_validation_not_test():
    def surface(s):
        val = 0.4 + 0.01 * abs(math.log10(s["decay"]) + 1.5)
        return 0.3, val, 0.9 - val  # test prefers the opposite cell
    rows = _simulate(FULL, surface, limit=140)
    cell = study.selected_cell(rows, FULL, "adamw", (0, 1))
    assert cell[1] == 0.03  # the cell nearest 10**-1.5; test would pick 0.95


# -- the report on a constructed complete study -----------------------------
def test_report_recovers_the_paper_shape_and_writes_the_region(tmp_path):
    import _study_v3_report as report

    rows = _simulate(FULL, paper_surface(FULL, noise=0.001, seed=1))
    result = report.analyse(rows, FAST)
    adam = result["c1"]["adamw"]
    assert adam["adam_l2"]["estimate"] == pytest.approx(-1.0, abs=0.15)
    assert adam["adamw"]["estimate"] == pytest.approx(0.0, abs=0.15)
    assert adam["verdict"] == "reproduces"
    # post hoc: sizes of the slopes (AdamW the less coupled by about 1)
    assert adam["abs_diff"]["estimate"] == pytest.approx(-1.0, abs=0.2)
    assert adam["abs_diff"]["ci"][1] < 0
    assert result["c2"]["verdict"] == "reproduces"
    assert result["c3"]["verdict"] == "reproduces"
    page = tmp_path / "reproduction.md"
    page.write_text("# Reproducing the paper's claims\n\nIntro.\n\n"
                    "## Earlier study\n\n<!-- study-v2:begin -->\nold\n"
                    "<!-- study-v2:end -->\n")
    report.write_section(rows, FAST, str(page), str(tmp_path / "img"))
    text = page.read_text()
    assert text.index("Intro.") < text.index(report.BEGIN) \
        < text.index(report.END) < text.index("## Earlier study")
    assert "provisional" not in text and "Status | complete" in text
    assert report.prereg_commit()[:12] in text
    # the verdicts at a glance, before the details
    glance = text[text.index("Verdicts by the registered rules"):
                  text.index("### Claim 1")]
    assert glance.count("| **reproduces** |") == 4  # 2 pairs, claims 2, 3
    assert "| 4. anytime performance of warm restarts |" in glance
    # realized power: near-noiseless data detect small differences, and
    # claim 3's two hypotheses are separable
    power = text[text.index("What this design could detect"):]
    detect = [float(v) for v in re.findall(
        r"slope difference of ([\d.]+) would be detected", power)]
    assert len(detect) == 2 and max(detect) < 0.5
    assert "are separable at this precision" in power
    # a second run replaces the region, never duplicates it
    report.write_section(rows[:100], FAST, str(page), str(tmp_path / "img"))
    text = page.read_text()
    assert text.count(report.BEGIN) == 1 and "old" in text
    assert "provisional" in text and "100 of about 328" in text
    for name in ("grid", "valleys", "curves", "budgets", "anytime", "seeds"):
        assert (tmp_path / "img" / f"study_v3_{name}.png").stat().st_size > 0


def test_report_finds_no_separation_when_both_are_diagonal():
    import _study_v3_report as report

    base = paper_surface(FULL, noise=0.001, seed=2)

    def surface(s):  # AdamW coupled like Adam+L2
        if s["optimizer"] in ("adamw", "adamwr"):
            x_lr = math.log10(s["lr"] / 1e-3)
            x_d = math.log10(s["decay"] / 0.03)
            val = 0.43 + 0.03 * (x_d + x_lr) ** 2 + 0.01 * x_lr ** 2
            return val - 0.1, val, val
        return base(s)
    rows = _simulate(FULL, surface, limit=140)
    result = report.analyse(rows, FAST)
    assert result["c1"]["adamw"]["adamw"]["estimate"] == pytest.approx(
        -1.0, abs=0.15)
    assert result["c1"]["adamw"]["verdict"] in ("does not reproduce",
                                                "inconclusive")


def test_quick_run(tmp_path):
    """--quick: a few tiny real runs on synthetic data, then the report on
    the partial results file."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "study_v3.py"), "--quick"],
        capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "wrote" in out.stdout


def test_the_protocols_power_table_follows_from_slope_power():
    """docs/study_v3_protocol.md: sd of an Adam slope 0.05 at curvature 3
    points/decade**2 and 0.11 at 1.5 (pilot sigma 0.51 points, 2 seeds)."""
    rx = np.log10([0.25, 0.5, 1, 2, 4])
    sigma = 0.0051 / math.sqrt(2)
    assert stats.slope_power(sigma, 0.03, rx, n_sim=600) == pytest.approx(
        0.05, abs=0.01)
    assert stats.slope_power(sigma, 0.015, rx, n_sim=600) == pytest.approx(
        0.11, abs=0.02)
    text = open(os.path.join(ROOT, "docs", "study_v3_protocol.md")).read()
    assert "| sd of a slope, Adam (2 seeds) | 0.17 | 0.11 | 0.05 |" in text
    assert "Planned: 328 runs, 4,128 epochs" in text


def test_interval_is_the_basic_bootstrap_interval_around_the_estimate():
    # replicates biased upwards by 2: the basic interval reflects them
    # around the estimate (a percentile interval would be [2.1, 3.9])
    reps = np.linspace(2.0, 4.0, 10001)
    (lo, hi), median = stats.interval(1.0, reps)
    assert (lo, hi) == pytest.approx((-1.9, -0.1))
    assert median == pytest.approx(3.0)


def test_periodic_commit_regenerates_the_page_and_commits_only_its_files(
        tmp_path):
    """--commit-minutes: results, page section and figures are committed
    together; other changes in the work tree are left alone."""
    repo = tmp_path / "repo"
    (repo / "docs" / "img").mkdir(parents=True)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c",
           "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    rows = _simulate(FULL, paper_surface(FULL, noise=0.001), limit=30)
    results = repo / "docs" / "data" / "study_v3.csv"
    for row in rows:
        out = dict(row)
        for name in study.LISTS:
            out[name] = ";".join(str(v) for v in row[name])
        study.append_row(str(results), out)
    page = repo / "docs" / "reproduction.md"
    page.write_text("# Reproducing the paper's claims\n\nIntro.\n")
    other = repo / "other.txt"
    other.write_text("x")
    subprocess.run(git + ["add", "other.txt"], check=True)
    subprocess.run(git + ["commit", "-qm", "base"], check=True)
    other.write_text("changed, not to be committed")
    env_root = study.ROOT
    study.ROOT = str(repo)
    try:
        study.commit_results(str(results), FAST, "study v3 test",
                             str(page), str(repo / "docs" / "img"))
    finally:
        study.ROOT = env_root
    files = subprocess.run(git + ["show", "--name-only", "--format=",
                                  "HEAD"], capture_output=True, text=True,
                           check=True).stdout.split()
    assert "docs/data/study_v3.csv" in files
    assert "docs/reproduction.md" in files
    assert "docs/img/study_v3_grid.png" in files
    assert "other.txt" not in files
    assert "30 of about 328" in page.read_text()


def test_a_partial_row_is_left_out_of_the_valley_fit():
    import _study_v3_report as report

    rows = _simulate(FULL, paper_surface(FULL), limit=31)  # row 5: 3 cells
    full = report.valley_rows(rows, "adam_l2", 8, (0,), min_cells=7)
    assert [len(r[1]) for r in full] == [7, 7]
    assert len(report.valley_rows(rows, "adam_l2", 8, (0,))) == 3


def test_the_named_protocol_commit_holds_the_rules_and_precedes_the_runs():
    import _study_v3_report as report

    commit = report.prereg_commit()
    shown = subprocess.run(
        ["git", "show", f"{commit}:docs/study_v3_protocol.md"], cwd=ROOT,
        capture_output=True, text=True)
    if shown.returncode:
        pytest.skip("no git history here")
    assert "## Verdict rules (fixed here)" in shown.stdout
    date = subprocess.run(["git", "log", "-1", "--format=%ad",
                           "--date=format:%Y-%m-%dT%H:%M:%S", commit],
                          cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    first = min(r["date"] for r in study.read_rows(study.RESULTS))
    assert date < first.rstrip("Z")


def test_training_code_is_the_registered_one():
    import _study_v3_report as report

    same = report.training_code_as_registered()
    if same is None:
        pytest.skip("no git history here")
    assert same
    changed = open(os.path.join(EXAMPLES, "study_v3.py")).read().replace(
        "batch_size=2500", "batch_size=2000")
    assert report._functions(changed) != report._functions(
        open(os.path.join(EXAMPLES, "study_v3.py")).read())


_WORKER = """
import sys, time
sys.path[:0] = [{examples!r}, {tests!r}]
import study_v3 as study
import test_study_v3 as t
settings = dict(study.QUICK, threads=1)
surface = t.paper_surface(settings)

def train(s, settings, data, commit=""):
    time.sleep(0.02)
    row = t._fake_row(s, settings, surface)
    for name in study.LISTS:
        row[name] = ";".join(str(v) for v in row[name])
    return row

study.train, study.load_data, study.code_commit = train, lambda s: None, str
print(study.run_study(settings, {results!r}))
"""


def test_parallel_workers_run_every_planned_run_once(tmp_path):
    """run_study in two processes on one results file: every run of the
    plan once (none twice, none missing), each worker did some of them,
    and a claim left by a dead process is taken over."""
    settings = dict(study.QUICK, threads=1)
    results = str(tmp_path / "study_v3.csv")
    dead = subprocess.run([sys.executable, "-c",
                           "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    first = study.pending([], settings)[0]
    shared = study.results_file(results, claims=True)
    os.makedirs(shared.claims)
    with open(shared._claim_path(study.run_key(first, settings)), "w") as f:
        f.write(dead)
    code = _WORKER.format(examples=EXAMPLES, tests=os.path.dirname(
        os.path.abspath(__file__)), results=results)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    workers = [subprocess.Popen([sys.executable, "-c", code], env=env,
                                stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    counts = [int(w.communicate(timeout=600)[0].split()[-1])
              for w in workers]
    assert all(w.returncode == 0 for w in workers)
    rows = study.read_rows(results)
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == sum(counts)
    expected = {r["key"] for r in _simulate(settings,
                                            paper_surface(settings))}
    assert set(keys) == expected
    assert min(counts) > 0
    assert study.run_key(first, settings) in keys


def test_machine_use_counts_runs_that_overlapped():
    import _study_v3_report as report

    def row(end, wall):
        return dict(date=f"2026-12-07T00:{end:02d}:00Z", wall_seconds=wall,
                    threads="1")

    alone = [row(1, 60.4), row(2, 60.0), row(3, 59.0)]  # back to back
    assert report.machine_use(alone).endswith("one run at a time")
    both = alone + [row(5, 30.0), row(5, 90.0)]  # 04:30-05:00 in 03:30-05:00
    assert "2 of 5 runs ran beside another run of the study (up to 2 at once)" \
        in report.machine_use(both)


def test_sgd_valley_fits_use_seed_1_once_phase_8_is_complete():
    """Protocol, Statistics: a cell's value is the mean over the grid seeds
    run there; the SGD grids get seed 1 in phase 8 (selection stays on
    seed 0)."""
    import _study_v3_report as report

    rows = _simulate(FULL, paper_surface(FULL, noise=0.001))
    assert report.grid_seeds(FULL, "sgdw", rows) == (0, 1)
    assert report.grid_seeds(FULL, "adamw", rows) == (0, 1)
    before = [r for r in rows if not (study.family(r["optimizer"]) == "sgd"
                                      and r["seed"] == 1
                                      and r["phase"] == "grid")]
    assert report.grid_seeds(FULL, "sgdw", before) == (0,)
    assert study.selected_cells(rows, FULL)["sgdw"] == \
        study.selected_cells(before, FULL)["sgdw"]
