"""Study v3: analysis, figures and its section of docs/reproduction.md.

Works on a partial results file: every number says how many runs it rests
on, and the page says which phases are complete; verdicts are provisional
until the runs a claim uses are all done. The rules are those of
docs/study_v3_protocol.md (statistics in `_study_v3_stats`).
"""

import math
import os
import re

import numpy as np

import _study_v3_stats as stats
import study_v3 as study

BEGIN, END = "<!-- study-v3:begin -->", "<!-- study-v3:end -->"
# The protocol's commit: looked up in git by `prereg_commit` (a rebase
# changes it); this value (the branch after its last rebase onto main;
# first committed as d048efa9c1e6, same content and author date) is the
# fallback where there is no git history.
PREREG_COMMIT = "c41596b5537cdbc8e0c07315ab49940ca072a46f"
PREREG_DATE = "2026-12-06 23:07:51 UTC"


TRAINING = ("load_data", "build_model", "make_optimizer", "train")


def _functions(source):
    import ast

    tree = ast.parse(source)
    return {node.name: ast.dump(node) for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name in TRAINING}


def machine_use(rows):
    """How the runs shared the machine, from their rows: threads per run,
    and how many ran while another run of the study ran (start = date -
    wall_seconds; an overlap under 5 s is rounding, as `date` is to the
    second and a run's end includes writing its row)."""
    import datetime

    spans = []
    for row in rows:
        try:
            end = datetime.datetime.strptime(row["date"],
                                             "%Y-%m-%dT%H:%M:%SZ")
            spans.append((end.timestamp() - float(row["wall_seconds"]),
                          end.timestamp()))
        except (KeyError, TypeError, ValueError):
            continue
    spans.sort()
    overlapping, most = set(), 1
    for i, (start, end) in enumerate(spans):
        for j in range(i + 1, len(spans)):
            if spans[j][0] >= end - 5:  # dates are to the second
                break
            overlapping.update((i, j))
        # runs going on at this run's start (sorted by start: i and before)
        most = max(most, sum(e - 5 > start for _, e in spans[:i + 1]))
    threads = sorted({str(row.get("threads", "")) for row in rows} - {""})
    text = (f"{'/'.join(threads) or '?'} thread(s) a run, at low priority "
            "beside other work; ")
    if not overlapping:
        return text + "one run at a time"
    return text + (f"{len(overlapping)} of {len(spans)} runs ran beside "
                   f"another run of the study (up to {most} at once)")


def training_code_as_registered():
    """True if the training functions of examples/study_v3.py are those of
    the protocol's commit (None without git history)."""
    import subprocess

    try:
        old = subprocess.run(
            ["git", "show", f"{prereg_commit()}:examples/study_v3.py"],
            cwd=study.ROOT, capture_output=True, text=True, timeout=30,
            check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    with open(os.path.join(study.ROOT, "examples", "study_v3.py")) as file:
        return _functions(old) == _functions(file.read())


def prereg_commit():
    """The commit that added the protocol file on the current branch (it
    changes when the branch is rebased), else PREREG_COMMIT."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "log", "--diff-filter=A", "--format=%H", "--",
             "docs/study_v3_protocol.md"], cwd=study.ROOT, capture_output=True,
            text=True, timeout=30, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError):
        out = []
    return out[-1] if out else PREREG_COMMIT
NAMES = {"adam_l2": "Adam+L2", "adamw": "AdamW", "sgd_l2": "SGD+L2",
         "sgdw": "SGDW", "adamwr": "AdamWR", "sgdwr": "SGDWR"}
COLORS = {"adam_l2": "#d95f02", "adamw": "#1b9e77", "sgd_l2": "#7570b3",
          "sgdw": "#e7298a", "adamwr": "#1b9e77", "sgdwr": "#e7298a"}
PAIRS = (("adam_l2", "adamw"), ("sgd_l2", "sgdw"))
FIGURES = ("grid", "valleys", "curves", "budgets", "anytime", "seeds")


def pct(x, digits=1):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) \
        else f"{100 * x:.{digits}f}"


def fmt_ci(ci, digits=2, scale=1.0):
    if ci is None or any(math.isnan(v) for v in ci):
        return "n/a"
    return f"[{ci[0] * scale:+.{digits}f}, {ci[1] * scale:+.{digits}f}]"


# ---------------------------------------------------------------------------
# Tables from the rows
# ---------------------------------------------------------------------------
PILOT_SIGMA = 0.0051  # one run, validation; docs/study_v3_protocol.md


def grid_seeds(settings, optimizer, rows=None):
    """The grid seeds of an optimizer's valley fits: the cell value is the
    mean over the grid seeds run there (protocol, Statistics), so for the
    SGD grids also seed 1 of phase 8 (selection stays on seed 0, as
    registered). With `rows`, only seed 0 while the later grid seeds have
    not reached every seed-0 cell (provisional)."""
    seeds = tuple(settings["adam_grid_seeds"]
                  if study.family(optimizer) == "adam"
                  else tuple(settings["sgd_grid_seeds"])
                  + tuple(settings.get("sgd_late_seeds", ())))
    if rows is None or len(seeds) == 1:
        return seeds
    table = cells(rows, optimizer, settings["grid_epochs"])
    if table and all(set(seeds) <= set(runs) for runs in table.values()):
        return seeds
    return (0,)


def cells(rows, optimizer, epochs, lr=None):
    """{(lr, decay): {seed: row}} of an optimizer's runs of `epochs`."""
    out = {}
    for row in rows:
        if (row["optimizer"] == optimizer and row["epochs"] == epochs
                and (lr is None or row["lr"] == lr)):
            out.setdefault((row["lr"], row["decay"]), {})[row["seed"]] = row
    return out


def valley_rows(rows, optimizer, epochs, seeds, lr=None, min_cells=3):
    """[(x_row, log10 decays, mean validation errors, n_seeds)] per row;
    a cell counts once all `seeds` are done; a row once it has
    `min_cells` (a complete row: a partial one could place its valley
    wrongly)."""
    table = cells(rows, optimizer, epochs, lr)
    grouped = {}
    for (r_lr, decay), runs in table.items():
        if not set(seeds) <= set(runs):
            continue
        err = np.mean([runs[s]["final_val_error"] for s in seeds])
        grouped.setdefault(r_lr, []).append((math.log10(decay), err))
    out = []
    for r_lr, pts in sorted(grouped.items()):
        if len(pts) >= max(3, min_cells):
            pts.sort()
            out.append((math.log10(r_lr), [p[0] for p in pts],
                        [p[1] for p in pts], len(seeds)))
    return out


def seed_pairs(rows, optimizers, epochs, a=0, b=1, lr=None):
    """Seed pairs near each row's valley (protocol: within two cells of the
    row's lowest), one list per row, for `pair_noise`."""
    out = []
    for optimizer in optimizers:
        table = cells(rows, optimizer, epochs, lr)
        by_lr = {}
        for (r_lr, decay), runs in table.items():
            if a in runs and b in runs:
                by_lr.setdefault(r_lr, []).append(
                    (decay, runs[a]["final_val_error"],
                     runs[b]["final_val_error"]))
        for pts in by_lr.values():
            pts.sort()
            means = [(x + y) / 2 for _, x, y in pts]
            best = int(np.argmin(means))
            near = pts[max(0, best - 2):best + 3]
            out.append([(x, y) for _, x, y in near])
    return out


def noise(rows, settings):
    """(sigma_independent, sigma_total, pairs) of one run, Adam grids."""
    pairs = seed_pairs(rows, study.ADAM, settings["grid_epochs"])
    n = sum(len(p) for p in pairs)
    s_ind, s_tot = stats.pair_noise(pairs) if n else (float("nan"),) * 2
    return s_ind, s_tot, n


def slope_result(vrows, sigma, n_boot=2000, seed=0):
    """dict: estimate, interval, bootstrap median, valleys, curvatures,
    replicates (sigma = noise of one run)."""
    if len(vrows) < 2 or math.isnan(sigma):
        return None
    fit_rows = [(x, d, e) for x, d, e, _ in vrows]
    est, valleys = stats.valley_slope(fit_rows)
    cell_sigma = sigma / math.sqrt(vrows[0][3])
    reps = stats.bootstrap_slope(fit_rows, cell_sigma, n_boot, seed)
    ci, med = stats.interval(est, reps)
    # per-row valley intervals, for the figures
    rng = np.random.default_rng(seed + 1)
    row_ci, fits = [], []
    for x, d, e in fit_rows:
        fits.append(stats.fit_valley(d, e))
        sims = [stats.fit_valley(d, np.asarray(e) + rng.normal(
            0, cell_sigma, len(e)))[0] for _ in range(min(400, n_boot))]
        row_ci.append(stats.interval(fits[-1][0], np.array(sims))[0])
    return dict(estimate=est, ci=ci, median=med, replicates=reps,
                x=[r[0] for r in fit_rows], valleys=valleys, row_ci=row_ci,
                curvature=[f[1] for f in fits], convex=[f[2] for f in fits])


def family_sigma(rows, settings, optimizers, epochs_list, fallback):
    """Noise of one run from the seed pairs of `optimizers` at `epochs`
    (protocol: SGD grids and budgets use their own pairs once there are at
    least 10, the Adam grids' before)."""
    pairs = []
    for epochs in epochs_list:
        pairs += seed_pairs(rows, optimizers, epochs)
    if sum(len(p) for p in pairs) < 10:
        return fallback
    return stats.pair_noise(pairs)[0]


def claim1(rows, settings, sigma):
    out = {}
    sigmas = {"adamw": sigma, "sgdw": family_sigma(
        rows, settings, study.SGD, [settings["grid_epochs"]], sigma)}
    for l2, dec in PAIRS:
        res = {"sigma": sigmas[dec]}
        for opt in (l2, dec):
            seeds = grid_seeds(settings, opt, rows)
            vr = valley_rows(rows, opt, settings["grid_epochs"], seeds,
                             min_cells=len(settings["decay_index"]))
            # independent noise draws per optimizer (the same draws would
            # correlate the two slopes' replicates and shrink the
            # difference's interval)
            res[opt] = slope_result(vr, sigmas[dec],
                                    settings.get("n_boot", 2000),
                                    seed=sorted(NAMES).index(opt))
            res[opt + "_split"] = []
            for s in seeds if len(seeds) > 1 else ():
                one = valley_rows(rows, opt, settings["grid_epochs"], (s,),
                                  min_cells=len(settings["decay_index"]))
                if len(one) >= 2:
                    res[opt + "_split"].append(stats.valley_slope(
                        [(x, d, e) for x, d, e, _ in one])[0])
        if res[l2] and res[dec]:
            diff = res[dec]["replicates"] - res[l2]["replicates"]
            est = res[dec]["estimate"] - res[l2]["estimate"]
            ci, med = stats.interval(est, diff)
            res["diff"] = dict(estimate=est, ci=ci, median=med)
            res["verdict"] = stats.verdict_claim1(ci, res[dec]["ci"])
            # post hoc (protocol addendum): coupling is |slope|
            absd = (np.abs(res[dec]["replicates"])
                    - np.abs(res[l2]["replicates"]))
            est_abs = abs(res[dec]["estimate"]) - abs(res[l2]["estimate"])
            res["abs_diff"] = dict(estimate=est_abs,
                                   ci=stats.interval(est_abs, absd)[0])
        out[dec] = res
    return out


def final_by_seed(rows, optimizer, cell, epochs, field):
    return {r["seed"]: r[field] for r in rows
            if r["optimizer"] == optimizer and (r["lr"], r["decay"]) == cell
            and r["epochs"] == epochs}


def paired(rows, settings, a, b, cell_a, cell_b, field, seeds=None):
    ea = final_by_seed(rows, a, cell_a, settings["grid_epochs"], field)
    eb = final_by_seed(rows, b, cell_b, settings["grid_epochs"], field)
    common = sorted(s for s in set(ea) & set(eb)
                    if seeds is None or s in seeds)
    diffs = [eb[s] - ea[s] for s in common]
    if len(diffs) < 2:
        return None
    mean, ci, t = stats.paired_t(diffs)
    return dict(mean=mean, ci=ci, t=t, n=len(diffs), seeds=common,
                diffs=diffs, a=[ea[s] for s in common],
                b=[eb[s] for s in common])


def claim2(rows, settings, best):
    out = {}
    if "adam_l2" in best:
        unbiased = tuple(settings["adam_repeat_seeds"])
        out["adam_test"] = paired(rows, settings, "adam_l2", "adamw",
                                  best["adam_l2"], best["adamw"],
                                  "final_test_error")
        out["adam_val"] = paired(rows, settings, "adam_l2", "adamw",
                                 best["adam_l2"], best["adamw"],
                                 "final_val_error", unbiased)
        if out["adam_test"] and out["adam_val"]:
            out["verdict"] = stats.verdict_claim2(out["adam_test"]["ci"],
                                                  out["adam_val"]["ci"])
    if "sgd_l2" in best:
        out["sgd_test"] = paired(rows, settings, "sgd_l2", "sgdw",
                                 best["sgd_l2"], best["sgdw"],
                                 "final_test_error")
        out["adamw_sgdw"] = paired(rows, settings, "sgdw", "adamw",
                                   best["sgdw"], best["adamw"],
                                   "final_test_error")
    return out


def budget_rows(rows, settings, best):
    """{epochs: valley row} of the AdamW budget runs (seeds done at every
    cell of a row: seed 0, or seeds 0 and 1 once phase 9 is complete)."""
    if "adamw" not in best:
        return {}
    lr = best["adamw"][0]
    out = {}
    for epochs in settings["budgets"]:
        for seeds in ((0, 1), (0,)):
            vr = valley_rows(rows, "adamw", epochs, seeds, lr=lr,
                             min_cells=len(settings["budget_index"]))
            if vr and (seeds == (0,) or len(vr[0][1]) >= 5):
                out[epochs] = vr[0]
                break
    return out


def claim3(rows, settings, best, sigma):
    brs = budget_rows(rows, settings, best)
    sigma = family_sigma(rows, settings, ("adamw",),
                         [e for e in settings["budgets"]
                          if e != settings["grid_epochs"]], sigma)
    if len(brs) < 2 or math.isnan(sigma):
        return dict(rows=brs)
    per_epoch = study.steps_per_epoch(settings)
    fit_rows = [(math.log10(e * per_epoch), d, err)
                for e, (_, d, err, _) in sorted(brs.items())]
    n_seeds = min(r[3] for r in brs.values())
    est, valleys = stats.valley_slope(fit_rows)
    n_boot = settings.get("n_boot", 2000)
    reps = stats.bootstrap_slope(fit_rows, sigma / math.sqrt(n_seeds), n_boot)
    ci, med = stats.interval(est, reps)
    rng = np.random.default_rng(7)
    row_ci = []
    for x, d, e in fit_rows:
        sims = [stats.fit_valley(d, np.asarray(e) + rng.normal(
            0, sigma / math.sqrt(n_seeds), len(e)))[0]
            for _ in range(min(400, n_boot))]
        row_ci.append(stats.interval(stats.fit_valley(d, e)[0],
                                     np.array(sims))[0])
    return dict(rows=brs, sigma=sigma, estimate=est, ci=ci, median=med,
                valleys=valleys,
                x=[r[0] for r in fit_rows], row_ci=row_ci, seeds=n_seeds,
                verdict=stats.verdict_claim3(ci))


def best_budget_run(rows, settings, best, epochs):
    """The AdamW budget run (seed 0) of the lowest validation error."""
    lr = best["adamw"][0]
    runs = [r for r in rows if r["optimizer"] == "adamw" and r["lr"] == lr
            and r["epochs"] == epochs and r["seed"] == 0]
    return min(runs, key=lambda r: r["final_val_error"]) if runs else None


def claim4(rows, settings, best):
    out = {}
    restart = {r["optimizer"]: r for r in rows if r["phase"] == "restart"
               and r["seed"] == 0}
    out["runs"] = restart
    if "adamw" not in best:
        return out
    s = final_by_seed(rows, "adamw", best["adamw"], settings["grid_epochs"],
                      "final_test_error")
    sd = float(np.std(list(s.values()), ddof=1)) if len(s) > 2 else float("nan")
    tau = stats.Z90 * math.sqrt(2) * sd
    deltas = {}
    if "adamwr" in restart:
        run = restart["adamwr"]
        for epochs in settings["budgets"]:
            fixed = best_budget_run(rows, settings, best, epochs)
            if fixed is not None and epochs <= len(run["test_errors"]):
                deltas[epochs] = (run["test_errors"][epochs - 1]
                                  - fixed["final_test_error"],
                                  run["test_errors"][epochs - 1],
                                  fixed["final_test_error"], fixed["decay"])
    out.update(tau=tau, sd=sd, n_sd=len(s), deltas=deltas,
               verdict=stats.verdict_claim4([d[0] for d in deltas.values()],
                                            tau))
    return out


def analyse(rows, settings):
    sigma, sigma_tot, n_pairs = noise(rows, settings)
    if n_pairs < 10:  # no seed pairs yet: the pilot's (protocol)
        sigma, sigma_tot = PILOT_SIGMA, PILOT_SIGMA
    best = study.selected_cells(rows, settings)
    return dict(
        sigma=sigma, sigma_total=sigma_tot, n_pairs=n_pairs, best=best,
        c1=claim1(rows, settings, sigma), c2=claim2(rows, settings, best),
        c3=claim3(rows, settings, best, sigma),
        c4=claim4(rows, settings, best))


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------
_NOTE = [""]  # "provisional: ..." while the study runs (write_section)


def _save(fig, path):
    import matplotlib.pyplot as plt

    if _NOTE[0]:
        fig.text(0.005, 1.0, _NOTE[0], ha="left", va="bottom",
                 fontsize=9, color="#b00000", fontweight="bold")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def _legend(ax, **kwargs):
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _text_color(rgba):
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def fig_grid(rows, settings, result, path):
    """Heatmaps of the mean validation error (each panel its own colour
    range: its best cell to +6 points) with the fitted valley per row."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    cmap = plt.get_cmap("viridis_r")
    for ax, opt in zip(axes.flat, ("adam_l2", "adamw", "sgd_l2", "sgdw")):
        seeds = grid_seeds(settings, opt, rows)
        table = cells(rows, opt, settings["grid_epochs"])
        lrs = sorted({lr for lr, _ in table})
        decays = sorted({d for _, d in table})
        if not lrs:
            ax.set_axis_off()
            ax.set_title(f"{NAMES[opt]}: no runs yet")
            continue
        grid = np.full((len(lrs), len(decays)), np.nan)
        for (lr, d), runs in table.items():
            if set(seeds) <= set(runs):
                grid[lrs.index(lr), decays.index(d)] = np.mean(
                    [runs[s]["final_val_error"] for s in seeds])
        lo = np.nanmin(grid) if np.isfinite(grid).any() else 0.4
        norm = matplotlib.colors.Normalize(lo, lo + 0.06)
        ax.imshow(grid, cmap=cmap, norm=norm, aspect="auto", origin="lower")
        for i in range(len(lrs)):
            for j in range(len(decays)):
                v = grid[i, j]
                if np.isfinite(v):
                    ax.text(j, i + 0.2, f"{100 * v:.1f}", ha="center",
                            va="center",
                            fontsize=8, color=_text_color(cmap(norm(v))))
        cell = result["best"].get(opt)
        if cell:
            i, j = lrs.index(cell[0]), decays.index(cell[1])
            ax.add_patch(matplotlib.patches.Rectangle(
                (j - 0.5, i - 0.5), 1, 1, fill=False, lw=2.5, ec="red"))
        res = result["c1"].get("adamw" if opt.startswith("adam") else "sgdw",
                               {}).get(opt)
        if res:
            logd = np.log10(decays)
            step = 0.5  # half decades between columns
            col = [np.interp(v, logd, np.arange(len(decays)))
                   for v in res["valleys"]]
            rowi = [int(np.argmin(np.abs(np.log10(lrs) - x))) - 0.22
                    for x in res["x"]]  # below the cell labels
            err = [[(v - ci[0]) / step for v, ci in zip(res["valleys"],
                                                        res["row_ci"])],
                   [(ci[1] - v) / step for v, ci in zip(res["valleys"],
                                                        res["row_ci"])]]
            ax.errorbar(col, rowi, xerr=np.maximum(err, 0), fmt="o-",
                        color="red", mfc="white", lw=1.5, capsize=3,
                        label="fitted best decay (90% interval)")
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13),
                      fontsize=8, frameon=False)
        ax.set_xticks(range(len(decays)))
        ax.set_xticklabels([f"{d:.2g}" for d in decays], fontsize=8)
        ax.set_yticks(range(len(lrs)))
        ax.set_yticklabels([f"{lr:g}" for lr in lrs], fontsize=8)
        kind = "lambda'" if opt in study.L2 else "lambda_norm"
        ax.set_xlabel(kind, fontsize=9)
        ax.set_ylabel("learning rate", fontsize=9)
        ax.set_title(f"{NAMES[opt]}: validation error % (seeds "
                     f"{', '.join(map(str, seeds))}); colours {100 * lo:.1f}"
                     f"-{100 * lo + 6:.1f}", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def fig_valleys(result, path):
    """The dashboard: best decay per learning rate (fitted valley, 90%
    interval), relative to the middle row, with the paper's expectations."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.6), sharey=True)
    for ax, (l2, dec) in zip(axes, PAIRS):
        res = result["c1"].get(dec, {})
        xs_all = []
        for k, opt in enumerate((l2, dec)):
            r = res.get(opt)
            if not r:
                continue
            x = np.array(r["x"])
            ref = np.interp(np.median(x), x, r["valleys"])
            y = np.array(r["valleys"]) - ref
            lo = y - (np.array([c[0] for c in r["row_ci"]]) - ref)
            hi = (np.array([c[1] for c in r["row_ci"]]) - ref) - y
            shift = (k - 0.5) * 0.02
            ax.errorbar(x + shift, y, yerr=[np.maximum(lo, 0),
                                            np.maximum(hi, 0)],
                        fmt="o-", color=COLORS[opt], capsize=4, lw=2,
                        label=f"{NAMES[opt]}: slope {r['estimate']:+.2f} "
                        f"{fmt_ci(r['ci'])}")
            xs_all.extend(x)
        if xs_all:
            xx = np.linspace(min(xs_all), max(xs_all), 2)
            mid = np.median(xs_all)
            ax.plot(xx, -(xx - mid), ":", color="gray",
                    label="paper, L2: slope -1")
            ax.plot(xx, 0 * xx, "--", color="gray",
                    label="paper, decoupled: slope 0")
            ax.set_xticks(sorted(set(xs_all)))
            ax.set_xticklabels([f"{10 ** v:.2g}" for v in sorted(set(xs_all))])
        if not xs_all:
            ax.text(0.5, 0.5, "no complete grid rows yet", ha="center",
                    transform=ax.transAxes, color="gray")
        d = res.get("diff")
        title = f"{NAMES[l2]} vs {NAMES[dec]}"
        if d:
            title += (f": difference {d['estimate']:+.2f} "
                      f"{fmt_ci(d['ci'])} -> {res['verdict']}")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("learning rate")
        _legend(ax, fontsize=8, loc="upper center", ncol=2,
                bbox_to_anchor=(0.5, -0.14), frameon=False)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("best log10 decay, relative to the middle rate\n"
                       "(error bars: 90% bootstrap interval)")
    fig.tight_layout()
    _save(fig, path)


def fig_curves(rows, settings, result, path):
    """Train-subset / validation / test error per epoch at the selected
    cells (seed 0) and at each row's smallest decay (overfitting)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = dict(result["best"])
    for o in ("adam_l2", "adamw", "sgd_l2", "sgdw"):
        runs = [r for r in rows if r["optimizer"] == o and r["seed"] == 0
                and r["epochs"] == settings["grid_epochs"]]
        if o not in chosen and runs:  # provisional: best seed-0 run so far
            best = min(runs, key=lambda r: r["final_val_error"])
            chosen[o] = (best["lr"], best["decay"])
    opts = [o for o in ("adam_l2", "adamw", "sgd_l2", "sgdw") if o in chosen]
    fig, axes = plt.subplots(1, max(1, len(opts)), figsize=(
        3.6 * max(1, len(opts)), 3.8), sharey=True, squeeze=False)
    for ax, opt in zip(axes[0], opts):
        cell = chosen[opt]
        run = next((r for r in rows if r["optimizer"] == opt and r["seed"] == 0
                    and (r["lr"], r["decay"]) == cell
                    and r["epochs"] == settings["grid_epochs"]), None)
        low = min((r for r in rows if r["optimizer"] == opt and r["seed"] == 0
                   and r["lr"] == cell[0]
                   and r["epochs"] == settings["grid_epochs"]),
                  key=lambda r: r["decay"])
        for r, style, tag in ((run, "-", "selected"),
                              (low, ":", "smallest decay")):
            if r is None:
                continue
            ep = r["eval_epochs"]
            ax.plot(ep, 100 * np.array(r["train_errors"]), style, color="C0",
                    label=f"train subset, {tag}")
            ax.plot(ep, 100 * np.array(r["val_errors"]), style, color="C1",
                    label=f"validation, {tag}")
            ax.plot(ep, 100 * np.array(r["test_errors"]), style, color="C2",
                    alpha=0.6, label=f"test, {tag}")
        tag = "selected" if opt in result["best"] else "best so far"
        ax.set_title(f"{NAMES[opt]} lr {cell[0]:g}, decay {cell[1]:.3g} "
                     f"({tag})\n(dotted: decay {low['decay']:.3g})",
                     fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("error %")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    _save(fig, path)


def fig_budgets(settings, c3, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for k, (epochs, (x, d, e, n)) in enumerate(sorted(c3["rows"].items())):
        a1.plot(10 ** np.array(d), 100 * np.array(e), "o-", color=f"C{k}",
                label=f"{epochs} epochs")
        if "valleys" in c3:
            v = c3["valleys"][k]
            a1.axvline(10 ** v, color=f"C{k}", ls=":", lw=1)
    a1.set_xscale("log")
    a1.set_xlabel("lambda_norm")
    a1.set_ylabel(f"validation error % (AdamW, seeds: "
                  f"{c3.get('seeds', 1)})")
    a1.set_title("error per budget; dotted: fitted best lambda_norm",
                 fontsize=10)
    _legend(a1, fontsize=8)
    a1.grid(alpha=0.3)
    if "valleys" in c3:
        x = np.array(c3["x"])
        v = np.array(c3["valleys"])
        lo = v - np.array([c[0] for c in c3["row_ci"]])
        hi = np.array([c[1] for c in c3["row_ci"]]) - v
        a2.errorbar(10 ** x, v, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)],
                    fmt="o-", color="C0", capsize=4, lw=2,
                    label=f"best log10 lambda_norm (90% interval): slope "
                    f"{c3['estimate']:+.2f} {fmt_ci(c3['ci'])}")
        a2.plot(10 ** x, v[0] + 0 * x, "--", color="gray",
                label="lambda_norm transfers (paper): slope 0")
        a2.plot(10 ** x, v[0] + 0.5 * (x - x[0]), ":", color="gray",
                label="raw lambda transfers: slope +0.5")
        a2.set_xscale("log")
        a2.set_xticks(10 ** x, [f"{10 ** v:,.0f}" for v in x])
        a2.minorticks_off()
        a2.set_title(f"the tested quantity -> {c3['verdict']}", fontsize=10)
        _legend(a2, fontsize=8)
    a2.set_xlabel("weight updates in the run")
    a2.set_ylabel("log10 best lambda_norm")
    a2.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def fig_anytime(rows, settings, c4, best, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4.8))
    styles = {"adamwr": "-", "sgdwr": "--"}
    for opt, run in sorted(c4.get("runs", {}).items()):
        ax.plot(run["eval_epochs"], 100 * np.array(run["test_errors"]),
                styles[opt], color=COLORS[opt], lw=1.8,
                label=f"{NAMES[opt]} test error (restarts)")
    ends, t = [0], settings["first_cycle_epochs"]
    while ends[-1] + t <= settings["restart_epochs"]:
        ends.append(int(ends[-1] + t))
        ax.axvline(ends[-1], color="gray", lw=0.6, ls=":")
        t *= settings["t_mul"]
    for opt, run in sorted(c4.get("runs", {}).items()):
        pts = [e for e in ends[1:] if e <= len(run["test_errors"])]
        ax.plot(pts, [100 * run["test_errors"][e - 1] for e in pts], "o",
                color=COLORS[opt], ms=7,
                label=f"{NAMES[opt]} at its cycle ends")

    if "adamw" in best:
        pts = [(e, best_budget_run(rows, settings, best, e))
               for e in settings["budgets"]]
        pts = [(e, r) for e, r in pts if r]
        if pts:
            ax.plot([e for e, _ in pts],
                    [100 * r["final_test_error"] for _, r in pts], "s",
                    color="black", ms=8, mfc="none", mew=2,
                    label="AdamW fixed budget, best lambda_norm (validation)")
    ax.set_xscale("log")
    ax.set_xticks([1] + ends[1:], ["1"] + [str(e) for e in ends[1:]])
    ax.minorticks_off()
    ax.set_xlabel("epoch (dotted: cycle ends)")
    ax.set_ylabel("test error %")
    ax.set_title("Anytime performance: restart runs vs runs tuned per budget",
                 fontsize=10)
    _legend(ax, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def fig_seeds(c2, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = [(k, c2.get(k)) for k in ("adam_test", "sgd_test", "adamw_sgdw")]
    labels = {"adam_test": "AdamW - Adam+L2", "sgd_test": "SGDW - SGD+L2",
              "adamw_sgdw": "AdamW - SGDW"}
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for i, (k, r) in enumerate(items):
        if not r:
            continue
        ax.plot(100 * np.array(r["diffs"]), [i] * r["n"], "o", color="gray",
                alpha=0.6, label="one seed" if i == 0 else None)
        ax.errorbar([100 * r["mean"]], [i], xerr=[[100 * (r["mean"] -
                                                          r["ci"][0])],
                                                   [100 * (r["ci"][1] -
                                                           r["mean"])]],
                    fmt="D", color="black", capsize=5,
                    label="mean, 90% t interval" if i == 0 else None)
    ax.axvline(0, color="red", lw=1)
    ax.set_yticks(range(len(items)))
    ax.set_yticklabels([labels[k] for k, _ in items])
    ax.set_xlabel("paired difference of final test error (points); "
                  "< 0: the first is better")
    _legend(ax, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2),
            ncol=2, frameon=False)  # below the axes: no point hidden
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    _save(fig, path)


# ---------------------------------------------------------------------------
# Page
# ---------------------------------------------------------------------------
def progress(rows, settings):
    planned_runs, planned_epochs = study.planned_counts(settings)
    todo = study.pending(rows, settings)
    phase = study.plan(rows, settings)[1]
    return dict(done=len(rows), pending_now=len(todo), planned=planned_runs,
                planned_epochs=planned_epochs, phase=phase,
                complete=not todo and phase == 8)


def section(rows, settings, result, images_rel):
    p = progress(rows, settings)
    if not p["complete"]:  # every verdict reads "(provisional)"
        for res in result["c1"].values():
            if "verdict" in res:
                res["verdict"] += " (provisional)"
        for key in ("c2", "c3", "c4"):
            if "verdict" in result[key]:
                result[key]["verdict"] += " (provisional)"
    cpu = sum(r["cpu_seconds"] or 0 for r in rows) / 3600
    wall = sum(r["wall_seconds"] or 0 for r in rows) / 3600
    status = ("complete" if p["complete"] else
              f"**in progress: {p['done']} of about {p['planned']} planned "
              f"runs done; every verdict below is provisional** until the "
              f"runs it uses are complete")
    r0 = rows[0] if rows else {}
    commits, versions = {}, {}
    for row in rows:
        versions[row["keras_adamwr_version"]] = versions.get(
            row["keras_adamwr_version"], 0) + 1
        commits[row["code_commit"]] = commits.get(row["code_commit"], 0) + 1
    lines = [
        "## Study v3: an overfitting MLP on CIFAR-10 at 16x16", "",
        "This study tests the paper's claims where weight decay has work to "
        "do: a model that overfits, trained for thousands of updates on the "
        "full training set, with every choice made on a validation split. "
        "Its design, statistics and verdict rules were fixed before the first "
        f"run in [`docs/study_v3_protocol.md`](study_v3_protocol.md), commit "
        f"`{prereg_commit()[:12]}` ({PREREG_DATE}; first committed as "
        "`d048efa9c1e6`, the same file, before rebases onto main). "
        "Generated by `examples/study_v3.py "
        "--plot-only` from [`docs/data/study_v3.csv`](data/study_v3.csv).", "",
        "| | |", "|---|---|",
        f"| Status | {status} (CPU time "
        f"{'' if p['complete'] else 'so far '}{cpu:.2f} h, wall time "
        f"summed over the runs {wall:.2f} h) |",
        "| Data | CIFAR-10 (TFDS copy; prepared from JPEG images, close to but "
        "not identical with the originals) at 16x16 (2x2 mean pooling): train "
        "= the first 45,000 training images, validation = the last 5,000 "
        "(fixed, TFDS order), test = 10,000, only reported; no augmentation |",
        f"| Model | MLP 768-512-512-10 (ReLU, no BatchNorm), "
        f"{r0.get('parameters', 661514):,} parameters |",
        f"| Budget | batch {settings['batch_size']}, "
        f"{study.steps_per_epoch(settings)} updates per epoch; grid and "
        f"repeat runs {settings['grid_epochs']} epochs "
        f"({settings['grid_epochs'] * study.steps_per_epoch(settings):,} "
        f"updates); budgets {', '.join(map(str, settings['budgets']))} "
        "epochs; cosine annealing over the run |",
        "| Selection | lowest mean final validation error over the grid "
        "seeds (Adam family 0 and 1, SGD family 0) |",
        "| Measured | per epoch: train error (fixed subset: the first 5,000 "
        "training images), validation and test error |",
        "| Software / machine | keras_adamwr " + ", ".join(
            f"{v} ({n} runs)" for v, n in sorted(versions.items())) + "; "
        f"Keras {r0.get('keras_version', '')}, "
        f"{r0.get('backend', '')} {r0.get('backend_version', '')}; "
        f"{r0.get('hardware', '')}; " + machine_use(rows) + " |",
        "| Code | commit of each run in the CSV (`code_commit`): " + (", ".join(
            f"`{c}` ({n})" for c, n in sorted(commits.items())) or "none")
        + ". Hashes no longer on the branch were rewritten by rebases onto "
        "main. The training code (`" + "`, `".join(TRAINING) + "` in "
        "`examples/study_v3.py`) is "
        + {True: "identical to", False: "**not** identical to",
           None: "(no git history to compare) meant to be"}[
               training_code_as_registered()]
        + " the protocol commit's |", ""]
    lines += _glance_lines(result)
    s_ind, s_tot = result["sigma"], result["sigma_total"]
    if result["n_pairs"] >= 10:
        noise_text = (
            f"Noise (seed pairs at {result['n_pairs']} cells near the "
            f"valleys): one run's validation error varies by sd "
            f"{pct(s_ind, 2)} points between seeds once each row's common "
            f"shift is removed ({pct(s_tot, 2)} with it).")
    else:
        noise_text = (
            f"Noise: no seed pairs yet, so the pilot's sd of one run "
            f"({pct(PILOT_SIGMA, 2)} points, 3 pairs, row shift included) "
            "is used; the grids show seed 0 only until seed 1 is done.")
    done = {}
    for row in rows:
        done[row["phase"]] = done.get(row["phase"], 0) + 1
    lines += [
        noise_text + " The intervals below add that noise to every cell and "
        "refit (90%, centred on the estimate; the replicates' median is "
        "given as a check). Runs done by phase: " + (", ".join(
            f"{k} {v}" for k, v in sorted(done.items())) or "none") + ".",
        ""]
    lines += ["### Claim 1: learning rate and decay separable with decoupled "
              "decay", "",
              f"![Fitted best decay per learning rate]({images_rel}/"
              "study_v3_valleys.png)", "",
              f"![Validation error grids]({images_rel}/study_v3_grid.png)", "",
              "| Optimizers | slope of the best log10 decay on log10 lr "
              "(90% interval; median) | per seed | difference (90% interval) "
              "| verdict |", "|---|---|---|---|---|"]
    for l2, dec in PAIRS:
        res = result["c1"].get(dec, {})
        cols = []
        for opt in (l2, dec):
            r = res.get(opt)
            cols.append(f"{NAMES[opt]} {r['estimate']:+.2f} "
                        f"{fmt_ci(r['ci'])}; {r['median']:+.2f}"
                        if r else f"{NAMES[opt]}: too few rows yet")
        split = "; ".join(
            f"{NAMES[o]} " + ", ".join(f"{v:+.2f}" for v in res.get(
                o + "_split", [])) for o in (l2, dec)
            if res.get(o + "_split"))
        d = res.get("diff")
        lines.append(f"| {NAMES[l2]} vs {NAMES[dec]} | {'<br>'.join(cols)} "
                     f"| {split or 'n/a'} | "
                     f"{d['estimate']:+.2f} {fmt_ci(d['ci'])}" if d else
                     f"| {NAMES[l2]} vs {NAMES[dec]} | {'<br>'.join(cols)} "
                     f"| {split or 'n/a'} | n/a")
        lines[-1] += f" | {res.get('verdict', 'not yet')} |"
    flat = [f"{NAMES[o]} lr {10 ** x:.3g}" for dec in ("adamw", "sgdw")
            for o in (d for d in result["c1"].get(dec, {})
                      if d in NAMES)
            for x, ok in zip((result["c1"][dec][o] or {}).get("x", []),
                             (result["c1"][dec][o] or {}).get("convex", []))
            if not ok]
    for l2, dec in PAIRS:
        res = result["c1"].get(dec, {})
        if "abs_diff" in res:
            a_d = res["abs_diff"]
            lines += ["", f"Post hoc, not a registered rule (protocol "
                      f"addendum): the rule compares signed slopes, so a "
                      f"{NAMES[dec]} valley tilted the other way (slope > 0) "
                      f"also gives D > 0. "
                      f"Coupling is the size of the slope: |{NAMES[dec]}| - "
                      f"|{NAMES[l2]}| = {a_d['estimate']:+.2f} "
                      f"{fmt_ci(a_d['ci'])} (below 0: {NAMES[dec]} is the "
                      "less coupled)."]
    scaled = [f"{NAMES[dec]} {res[dec]['estimate'] - 1:+.2f}"
              for dec, res in ((d, result["c1"].get(d, {}))
                               for d in ("adamw", "sgdw")) if res.get(dec)]
    if scaled:
        lines += ["", "Post hoc, arithmetic: in Keras' and PyTorch's "
                  "parameterization the decay is multiplied by the learning "
                  "rate (lambda = lr x lambda_lr, `decay_scaling="
                  "\"learning_rate\"`), so the same valleys have slope one "
                  "less in lambda_lr: " + ", ".join(scaled) + " (0: "
                  "separable in that parameterization)."]
    lines += ["", f"Noise used: Adam grids sd {pct(result['sigma'], 2)} "
              f"points, SGD grids "
              f"{pct(result['c1'].get('sgdw', {}).get('sigma'), 2)} (their "
              "own seed pairs once phase 8 gives 10, the Adam value before). "
              "Cell values are means over the grid seeds run at every cell: "
              + "; ".join(f"{NAMES[o]} seeds " + ", ".join(
                  map(str, grid_seeds(settings, o, rows)))
                  for o in ("adam_l2", "sgd_l2")) + " (the SGD grids' seed "
              "1 is phase 8; their selected cells stay chosen on seed 0, as "
              "registered)."]
    lines += ["", "Paper: Adam+L2's best region is diagonal (slope about "
              "-1), AdamW's axis-aligned (0). Rows without an interior, "
              "convex valley (lowest cell on the row's edge, or not convex): "
              + (", ".join(flat) or "none") + ".", ""]
    c2 = result["c2"]
    lines += ["### Claim 2: AdamW generalizes better than Adam+L2", "",
              f"![Paired seed differences]({images_rel}/study_v3_seeds.png)",
              "", "| Comparison (each at its selected cell) | paired "
              "difference, points (90% t interval) | t | seeds |",
              "|---|---|---|---|"]
    for key, name in (("adam_test", "AdamW - Adam+L2, test"),
                      ("adam_val", "AdamW - Adam+L2, validation, seeds "
                       "not used for selection"),
                      ("sgd_test", "SGDW - SGD+L2, test"),
                      ("adamw_sgdw", "AdamW - SGDW, test")):
        r = c2.get(key)
        lines.append(f"| {name} | {100 * r['mean']:+.2f} "
                     f"{fmt_ci(r['ci'], 2, 100)} | {r['t']:+.1f} | {r['n']} |"
                     if r else f"| {name} | not yet | | |")
    lines += ["", f"Verdict: **{c2.get('verdict', 'not yet')}**. Selected "
              "cells (validation): " + (", ".join(
                  f"{NAMES[o]} lr {c[0]:g} decay {c[1]:.4g}"
                  for o, c in sorted(result["best"].items()))
                  or "none yet (the grids are not complete)") + ".", ""]
    lines += _overfit_lines(rows, settings, result)
    c3 = result["c3"]
    lines += ["### Claim 3: normalized decay transfers across budgets", "",
              f"![Budgets]({images_rel}/study_v3_budgets.png)", ""]
    if "estimate" in c3:
        lines += [f"Slope of the best log10 lambda_norm on log10(updates): "
                  f"{c3['estimate']:+.2f} {fmt_ci(c3['ci'])} (median "
                  f"{c3['median']:+.2f}; budgets "
                  f"{', '.join(map(str, sorted(c3['rows'])))} epochs, "
                  f"{c3['seeds']} seed(s), noise sd "
                  f"{pct(c3['sigma'], 2)} points). 0 if lambda_norm "
                  "transfers, +0.5 "
                  f"if the raw lambda does. Verdict: **{c3['verdict']}**.", ""]
    else:
        lines += ["Not yet: the budget runs have not started.", ""]
    c4 = result["c4"]
    lines += ["### Claim 4: anytime performance of warm restarts", "",
              f"![Anytime]({images_rel}/study_v3_anytime.png)", ""]
    if c4.get("deltas"):
        lines += ["| epoch | AdamWR (cycle end) | AdamW tuned for this "
                  "budget | difference |", "|---|---|---|---|"]
        for e, (d, a, f, lam) in sorted(c4["deltas"].items()):
            lines.append(f"| {e} | {pct(a)} | {pct(f)} (lambda_norm "
                         f"{lam:.3g}) | {100 * d:+.2f} |")
        lines += ["", f"Tolerance {100 * c4['tau']:.2f} points (from AdamW's "
                  f"seed sd {100 * c4['sd']:.2f}, {c4['n_sd']} seeds). "
                  f"Verdict: **{c4['verdict']}**.", ""]
    else:
        lines += ["Not yet: the restart runs have not finished.", ""]
    lines += _power_lines(result)
    lines += [f"Runs: {p['done']} done of about {p['planned']} planned "
              f"({p['planned_epochs']:,} epochs without edge extensions); "
              f"{p['pending_now']} queued in the current phase.", ""]
    return "\n".join(lines)


def _glance_lines(result):
    """The four verdicts (registered rules) in one table, with the one
    number each rests on."""
    c1, c2, c3, c4 = (result[k] for k in ("c1", "c2", "c3", "c4"))
    rows = []
    for l2, dec in PAIRS:
        res = c1.get(dec, {})
        if "diff" in res:
            d = res["diff"]
            rows.append(
                (f"1. separable lr and decay ({NAMES[l2]} vs {NAMES[dec]})",
                 res["verdict"],
                 f"slopes {res[l2]['estimate']:+.2f} ({NAMES[l2]}), "
                 f"{res[dec]['estimate']:+.2f} ({NAMES[dec]}); paper about "
                 f"-1 and 0; difference {d['estimate']:+.2f} "
                 f"{fmt_ci(d['ci'])}" + (
                     f". Post hoc, size of {NAMES[dec]}'s slope minus "
                     f"{NAMES[l2]}'s: {res['abs_diff']['estimate']:+.2f} "
                     f"{fmt_ci(res['abs_diff']['ci'])} (above 0: the "
                     f"decoupled optimum moves *more* with the learning "
                     "rate)" if "abs_diff" in res else "")))
    r = c2.get("adam_test")
    if r and "verdict" in c2:
        rows.append(("2. AdamW generalizes better than Adam+L2",
                     c2["verdict"],
                     f"test error AdamW - Adam+L2 {100 * r['mean']:+.2f} "
                     f"points {fmt_ci(r['ci'], 2, 100)}, {r['n']} seeds"))
    if "verdict" in c3:
        rows.append(("3. lambda_norm transfers across budgets",
                     c3["verdict"],
                     f"slope of the best lambda_norm on updates "
                     f"{c3['estimate']:+.2f} {fmt_ci(c3['ci'])}; paper 0, "
                     "a fixed raw lambda +0.5"))
    if c4.get("deltas"):
        rows.append(("4. anytime performance of warm restarts",
                     c4["verdict"],
                     "AdamWR at its cycle ends minus AdamW tuned for that "
                     "budget: " + ", ".join(
                         f"{100 * d[0]:+.2f}" for _, d in
                         sorted(c4["deltas"].items())) + " points (epochs "
                     + ", ".join(str(e) for e in sorted(c4["deltas"]))
                     + ")"))
    if not rows:
        return []
    return ["Verdicts by the registered rules (each claim's section has "
            "the details and the post hoc readings):", "",
            "| claim | verdict | what it rests on |", "|---|---|---|"] + [
        f"| {c} | **{v}** | {w} |" for c, v, w in rows] + [""]


def _power_lines(result):
    """What the design could detect, from the realized spread (the
    protocol's power table was model-based, from the pilot)."""
    out = []
    for l2, dec in PAIRS:
        res = result["c1"].get(dec, {})
        if not (res.get(l2) and res.get(dec)):
            continue
        sd_l2, sd_dec = (float(np.std(res[o]["replicates"]))
                         for o in (l2, dec))
        curv = [100 * c for o in (l2, dec) for c in res[o]["curvature"]]
        out.append(
            f"- Claim 1, {NAMES[l2]} vs {NAMES[dec]}: the slopes' sd "
            f"{sd_l2:.2f} and {sd_dec:.2f} (replicates); a slope difference "
            f"of {stats.detectable_difference(sd_l2, sd_dec):.2f} would be "
            "detected with 80% power (90% interval excluding 0), against "
            "the paper's about 1. Row curvatures (points per decade^2): "
            f"median {np.median(curv):.1f}, range {min(curv):.1f} to "
            f"{max(curv):.1f}.")
    r = result["c2"].get("adam_test")
    if r and r["n"] >= 2 and math.isfinite(r["ci"][0]):
        half = (r["ci"][1] - r["ci"][0]) / 2
        q90 = stats.t_quantile(0.95, r["n"] - 1)
        q80 = stats.t_quantile(0.80, r["n"] - 1)
        out.append(
            f"- Claim 2: {r['n']} paired seeds, 90% half-width "
            f"{100 * half:.2f} points; a test-error difference of "
            f"{100 * half * (q90 + q80) / q90:.2f} points would be detected "
            "with 80% power; the paper's gain, up to 15% relative, would be "
            f"up to {15 * np.mean(r['a']):.1f} points at Adam+L2's "
            f"{100 * np.mean(r['a']):.1f}% test error here.")
    c3 = result["c3"]
    if "ci" in c3:
        half = (c3["ci"][1] - c3["ci"][0]) / 2
        out.append(
            f"- Claim 3: the slope's 90% half-width is {half:.2f}; the two "
            "hypotheses (0: lambda_norm transfers, +0.5: raw lambda does) "
            f"are {'separable' if half < 0.25 else 'not separable'} at "
            "this precision (separable needs a half-width under 0.25).")
    if not out:
        return []
    return ["### What this design could detect (realized)", "",
            "From the spread the runs actually show (the protocol's power "
            "table was computed before the runs, from the pilot):", ""] + \
        out + [""]


def _overfit_lines(rows, settings, result):
    """Per grid row (seed 0): train-subset and validation error of the run
    with the smallest decay, i.e. nearly without decay."""
    out = ["Overfitting check: train-subset / validation error (%) of each "
           "grid row's smallest decay, seed 0; gaps under 5 points marked "
           "with *. Learning rate = "
           f"{settings['lr_center']['adam']:g} (Adam) or "
           f"{settings['lr_center']['sgd']:g} (SGD) x the column's factor.",
           "", "| optimizer | " + " | ".join(
               f"lr x{f:g}" for f in settings["lr_factors"]) + " |",
           "|---|" + "---|" * len(settings["lr_factors"])]
    for opt in ("adam_l2", "adamw", "sgd_l2", "sgdw"):
        cols = []
        for lr in study.lr_values(settings, study.family(opt)):
            runs = [r for r in rows if r["optimizer"] == opt
                    and r["seed"] == 0 and r["lr"] == lr
                    and r["epochs"] == settings["grid_epochs"]]
            if not runs:
                cols.append("")
                continue
            r = min(runs, key=lambda r: r["decay"])
            gap = r["final_val_error"] - r["final_train_error"]
            cols.append(f"{pct(r['final_train_error'])} / "
                        f"{pct(r['final_val_error'])}"
                        + ("*" if gap < 0.05 else ""))
        out.append(f"| {NAMES[opt]} | " + " | ".join(cols) + " |")
    return out + [""]


def replace_region(page_text, body):
    """The page with the study-v3 region replaced by `body` (markers added
    after the page's intro, the paragraphs under the title, if absent)."""
    block = f"{BEGIN}\n{body.rstrip()}\n{END}"
    if BEGIN in page_text and END in page_text:
        return re.sub(re.escape(BEGIN) + ".*?" + re.escape(END),
                      lambda _: block, page_text, flags=re.S)
    lines = page_text.split("\n")
    i = 1 if lines and lines[0].startswith("# ") else 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    while i < len(lines) and lines[i].strip() and not lines[i].startswith(
            ("#", "```", "|", "!!!", "<!--")):
        i += 1
    return "\n".join(lines[:i] + ["", block, ""] + lines[i:]).replace(
        "\n\n\n", "\n\n")


def write_section(rows, settings, page, images):
    os.makedirs(images, exist_ok=True)
    p = progress(rows, settings)
    _NOTE[0] = ("" if p["complete"] else
                f"provisional: {p['done']} of about {p['planned']} runs")
    result = analyse(rows, settings)
    fig_grid(rows, settings, result, os.path.join(images, "study_v3_grid.png"))
    fig_valleys(result, os.path.join(images, "study_v3_valleys.png"))
    fig_curves(rows, settings, result,
               os.path.join(images, "study_v3_curves.png"))
    fig_budgets(settings, result["c3"],
                os.path.join(images, "study_v3_budgets.png"))
    fig_anytime(rows, settings, result["c4"], result["best"],
                os.path.join(images, "study_v3_anytime.png"))
    fig_seeds(result["c2"], os.path.join(images, "study_v3_seeds.png"))
    rel = os.path.relpath(images, os.path.dirname(os.path.abspath(page)))
    body = section(rows, settings, result, rel)
    body = body.replace("### Claim 3", f"![Train, validation and test error "
                        f"per epoch]({rel}/study_v3_curves.png)\n\n### Claim 3",
                        1)
    text = open(page).read() if os.path.exists(page) else \
        "# Reproducing the paper's claims\n"
    with open(page, "w") as file:
        file.write(replace_region(text, body))
    return result
