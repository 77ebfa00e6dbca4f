"""docs/reproduction.md and its figures from the results CSV alone.

Needs NumPy and Matplotlib only (no TensorFlow, no Keras): `write_page(rows,
settings, page, images)` with the rows of `reproduce.read_rows`.
"""

import math
import os

import numpy as np

import reproduce

NAMES = {"adam_l2": "Adam+L2", "adamw": "AdamW", "adamwr": "AdamWR",
         "sgd_l2": "SGD+L2", "sgdw": "SGDW", "sgdwr": "SGDWR"}
COLORS = {"adam_l2": "C3", "adamw": "C0", "adamwr": "C2", "sgd_l2": "C1",
          "sgdw": "C4", "sgdwr": "C5"}
DECAY_LABEL = {"l2": "L2 factor lambda'", "normalized": "lambda_norm"}
BOOTSTRAP = 2000


def _figure(width, height):
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height))


def _save(figure, images, name):
    os.makedirs(images, exist_ok=True)
    figure.tight_layout()
    figure.savefig(os.path.join(images, name), dpi=100)
    return f"img/{name}"


def _relative(page, images, name):
    """Path of a figure relative to the page's folder (for the markdown)."""
    return os.path.relpath(os.path.join(images, name),
                           os.path.dirname(os.path.abspath(page)))


def _mean_std(values):
    values = np.asarray(values, float)
    std = values.std(ddof=1) if len(values) > 1 else float("nan")
    return values.mean(), std


# ---------------------------------------------------------------------------
# Claim 1: the grid
# ---------------------------------------------------------------------------
def grid_matrix(rows, settings, optimizer):
    """(lrs, decays, errors[lr, decay]) with NaN for missing cells."""
    lrs, decays = reproduce.grid_values(settings, optimizer)
    table = reproduce.grid_table(rows, settings, optimizer)
    errors = np.full((len(lrs), len(decays)), np.nan)
    for i, lr in enumerate(lrs):
        for j, decay in enumerate(decays):
            if (lr, decay) in table:
                errors[i, j] = table[(lr, decay)]
    return np.array(lrs), np.array(decays), errors


def best_log_decay(log_decays, errors):
    """log10 of the best decay of one row: a parabola through the minimum
    and its two neighbours (the grid point itself at the edges or if the
    parabola opens downwards)."""
    j = int(np.nanargmin(errors))
    if 0 < j < len(errors) - 1 and not np.isnan(errors[j - 1:j + 2]).any():
        y0, y1, y2 = errors[j - 1:j + 2]
        curvature = y0 - 2 * y1 + y2
        if curvature > 0:
            step = log_decays[j + 1] - log_decays[j]
            offset = 0.5 * (y0 - y2) / curvature
            return log_decays[j] + float(np.clip(offset, -0.5, 0.5)) * step
    return log_decays[j]


def decay_slope(lrs, decays, errors, noise, rng):
    """Slope of log10(best decay) on log10(lr), and a bootstrap over noise.

    Returns (slope, best log10 decays per lr, (5th, 95th percentile) or
    None). The bootstrap adds Gaussian noise of sd `noise` (the seed-to-seed
    spread) to every cell and re-fits.
    """
    # Until the grid is complete: the largest sub-grid without holes (the
    # coarse grid), rows that have data x columns complete in all of them.
    has_data = ~np.isnan(errors).all(axis=1)
    columns = ~np.isnan(errors[has_data]).any(axis=0)
    if has_data.sum() < 3 or columns.sum() < 3:
        return None, None, None
    x = np.log10(lrs[has_data])
    log_decays = np.log10(decays[columns])
    grid = errors[has_data][:, columns]
    best = np.array([best_log_decay(log_decays, row) for row in grid])
    slope = np.polyfit(x, best, 1)[0]
    draws = []
    for _ in range(BOOTSTRAP):
        noisy = grid + rng.normal(0, noise, grid.shape)
        b = [best_log_decay(log_decays, row) for row in noisy]
        draws.append(np.polyfit(x, b, 1)[0])
    return slope, best, tuple(np.percentile(draws, [5, 95]))


def seed_noise(rows, settings):
    """Pooled seed-to-seed sd of the final error at the repeated cells."""
    groups = {opt: [r["final_test_error"] for r in group]
              for opt, group in repeat_rows(rows, settings).items()}
    variances = [np.var(v, ddof=1) for v in groups.values() if len(v) > 1]
    if variances:
        return float(np.sqrt(np.mean(variances))), "seed"
    p = 0.5  # no repeats yet: the binomial sd of the test error at p = 0.5
    return math.sqrt(p * (1 - p) / settings["test_examples"]), "binomial"


def claim_grid(rows, settings, page, images, rng):
    results = {opt: grid_matrix(rows, settings, opt)
               for opt in settings["grid_optimizers"]}
    cells = np.concatenate([e.ravel() for _, _, e in results.values()])
    if np.isnan(cells).all():
        return ["No grid runs yet."], {}
    noise, noise_kind = seed_noise(rows, settings)
    finite = cells[~np.isnan(cells)]
    vmin, vmax = finite.min(), finite.max()
    figure = _figure(11, 9.5)
    slopes = {}
    for index, opt in enumerate(("adam_l2", "adamw", "sgd_l2", "sgdw")):
        if opt not in results:  # e.g. --quick grids only the Adam family
            continue
        lrs, decays, errors = results[opt]
        axes = figure.add_subplot(2, 2, index + 1)
        image = axes.imshow(errors, origin="lower", cmap="viridis_r",
                            vmin=vmin, vmax=vmax, aspect="auto")
        for i in range(len(lrs)):
            for j in range(len(decays)):
                if not np.isnan(errors[i, j]):
                    axes.text(j, i, f"{100 * errors[i, j]:.1f}", ha="center",
                              va="center", fontsize=8,
                              color="w" if errors[i, j] < (vmin + vmax) / 2
                              else "k")
        slope, best, interval = decay_slope(lrs, decays, errors, noise, rng)
        slopes[opt] = (slope, interval)
        if best is not None:
            complete = ~np.isnan(errors).all(axis=1)
            log_d = np.log10(decays)
            position = (best - log_d[0]) / (log_d[1] - log_d[0])
            axes.plot(position, np.arange(len(lrs))[complete], "w--o",
                      markersize=4, linewidth=1.2,
                      label="best decay per learning rate")
            axes.legend(loc="upper left", fontsize=7)
        axes.set_xticks(range(len(decays)),
                        [f"{d:.2g}" for d in decays], fontsize=8)
        axes.set_yticks(range(len(lrs)), [f"{lr:.3g}" for lr in lrs],
                        fontsize=8)
        kind = "l2" if opt in reproduce.L2 else "normalized"
        axes.set_xlabel(DECAY_LABEL[kind])
        axes.set_ylabel("learning rate alpha")
        title = NAMES[opt]
        if slope is not None:
            title += f": slope {slope:+.2f}"
        axes.set_title(title)
        figure.colorbar(image, ax=axes, label="test error (%)",
                        format=lambda v, _: f"{100 * v:.0f}")
    path = _save(figure, images, "reproduction_grid.png")
    del path
    lines = [
        "| optimizer | cells done | best cell (lr, decay) | best error | "
        "slope of log(best decay) on log(lr) | 90% interval |",
        "|---|---|---|---|---|---|"]
    for opt in settings["grid_optimizers"]:
        lrs, decays, errors = results[opt]
        done = int((~np.isnan(errors)).sum())
        if done:
            i, j = np.unravel_index(np.nanargmin(errors), errors.shape)
            cell = f"{lrs[i]:.3g}, {decays[j]:.3g}"
            error = f"{100 * errors[i, j]:.1f}%"
        else:
            cell = error = "-"
        slope, interval = slopes[opt]
        lines.append(
            f"| {NAMES[opt]} | {done}/{errors.size} | {cell} | {error} | "
            + (f"{slope:+.2f} | [{interval[0]:+.2f}, {interval[1]:+.2f}] |"
               if slope is not None else "- | - |"))
    edges = []
    for opt in settings["grid_optimizers"]:
        lrs, decays, errors = results[opt]
        if (~np.isnan(errors)).sum():
            i, j = np.unravel_index(np.nanargmin(errors), errors.shape)
            where = [name for name, k, n in (("learning rate", i, len(lrs)),
                                             ("decay", j, len(decays)))
                     if k in (0, n - 1)]
            if where:
                edges.append(f"{NAMES[opt]} ({' and '.join(where)})")
    if edges:
        lines += ["", "Best cell on the edge of the grid, so the optimum "
                  "may lie outside it: " + ", ".join(edges) + "."]
    lines += ["", f"![Test error over the learning-rate x decay grids]"
              f"({_relative(page, images, 'reproduction_grid.png')})", "",
              f"The interval comes from {BOOTSTRAP} re-fits with Gaussian "
              f"noise of sd {100 * noise:.2f} points added to every cell ("
              + ("the pooled seed-to-seed spread of the repeated runs"
                 if noise_kind == "seed" else
                 "the binomial sampling sd of the test error; no repeated "
                 "runs yet") + "; conservative, as the cells of a row share "
              "seed 0 and so vary less among themselves). The best decay of each row is "
              "interpolated with a parabola in log(decay) through the best "
              "cell and its neighbours."]
    return lines, slopes


# ---------------------------------------------------------------------------
# Claims 2 and 4: the repeated runs
# ---------------------------------------------------------------------------
def repeat_rows(rows, settings):
    """{optimizer: repeat rows at one cell}: the full grid's best cell if
    its repeats have started, else the cell with the most repeats."""
    preferred = reproduce.repeat_cells(rows, settings) or {}
    cells = {}
    for row in rows:
        if row["phase"] == "repeat":
            cells.setdefault(row["optimizer"], {}).setdefault(
                (row["lr"], row["decay"]), []).append(row)
    groups = {}
    for opt, by_cell in cells.items():
        cell = preferred.get(reproduce.RESTARTS.get(opt, opt))
        groups[opt] = by_cell.get(cell) or max(by_cell.values(), key=len)
    return groups


def claim_seeds(rows, settings, page, images):
    groups = repeat_rows(rows, settings)
    if not groups:
        return ["No repeated runs yet (they start when the grid is "
                "complete)."], {}
    stats = {}
    lines = ["| optimizer | lr | decay | seeds | test error mean | sd | "
             "per seed |", "|---|---|---|---|---|---|---|"]
    figure = _figure(7, 3.8)
    axes = figure.add_subplot()
    order = [o for o in settings["repeat_optimizers"] if o in groups]
    for index, opt in enumerate(order):
        errors = [r["final_test_error"] for r in groups[opt]]
        mean, std = _mean_std(errors)
        stats[opt] = (mean, std, len(errors))
        row = groups[opt][0]
        lines.append(
            f"| {NAMES[opt]} | {row['lr']:.3g} | {row['decay']:.3g} "
            f"({'L2' if row['decay_kind'] == 'l2' else 'norm.'}) | "
            f"{len(errors)} | {100 * mean:.2f}% | {100 * std:.2f} | "
            + ", ".join(f"{100 * e:.1f}" for e in errors) + " |")
        axes.plot([index] * len(errors), 100 * np.array(errors), "o",
                  color=COLORS[opt], alpha=0.6)
        axes.errorbar(index + 0.15, 100 * mean,
                      yerr=0 if math.isnan(std) else 100 * std, fmt="s",
                      color=COLORS[opt], capsize=4)
    axes.set_xticks(range(len(order)), [NAMES[o] for o in order])
    axes.set_ylabel("final test error (%)")
    axes.set_title("Seeds at each optimizer's best grid cell (mean +- sd)")
    axes.grid(alpha=0.3, axis="y")
    _save(figure, images, "reproduction_seeds.png")
    lines += ["", f"![Final test error per seed]"
              f"({_relative(page, images, 'reproduction_seeds.png')})"]
    return lines, stats


def improvement(stats, better, baseline):
    """Relative improvement of `better` over `baseline` and its sd."""
    if better not in stats or baseline not in stats:
        return None
    (m1, s1, n1), (m0, s0, n0) = stats[better], stats[baseline]
    relative = (m0 - m1) / m0
    if n1 > 1 and n0 > 1:
        se = math.sqrt(s1**2 / n1 + s0**2 / n0)
        return relative, se / m0, (m0 - m1), se
    return relative, float("nan"), (m0 - m1), float("nan")


def mean_curve(group, anytime=False):
    """(epochs, mean, min, max) across seeds of the per-epoch error (or the
    AnytimeRecorder rows)."""
    key_e, key_v = (("anytime_epochs", "anytime_errors") if anytime
                    else ("eval_epochs", "test_errors"))
    curves = [dict(zip(r[key_e], r[key_v])) for r in group]
    epochs = sorted(set.intersection(*(set(c) for c in curves)))
    if not epochs:
        return None
    values = np.array([[c[e] for e in epochs] for c in curves])
    return (np.array(epochs), values.mean(0), values.min(0), values.max(0))


def claim_anytime(rows, settings, page, images):
    groups = repeat_rows(rows, settings)
    if "adam_l2" not in groups:
        return ["No repeated runs yet."], None
    figure = _figure(11, 4.5)
    table = ["| optimizer | seeds | error at epoch "
             + " / ".join(str(e) for e in settings["curve_epochs"])
             + " (mean, %) | first epoch at or below target | wall time to "
             "it (s) |", "|---|---|---|---|---|"]
    target = np.mean([r["final_test_error"] for r in groups["adam_l2"]])
    panels = (("adam_l2", "adamw", "adamwr"), ("adam_l2", "sgd_l2", "sgdw",
                                                 "sgdwr"))
    for index, members in enumerate(panels):
        axes = figure.add_subplot(1, 2, index + 1)
        for opt in members:
            if opt not in groups:
                continue
            curve = mean_curve(groups[opt])
            if curve is None:
                continue
            epochs, mean, low, high = curve
            style = "--" if opt in reproduce.RESTARTS else "-"
            reference = index == 1 and opt == "adam_l2"
            axes.plot(epochs, 100 * mean, ":" if reference else style,
                      color=COLORS[opt], alpha=0.5 if reference else 0.9,
                      marker="s" if opt in reproduce.L2 else None,
                      markersize=4, markerfacecolor="none",
                      label=NAMES[opt] + (" (reference)" if reference
                                          else ""))
            if reference:
                continue
            axes.fill_between(epochs, 100 * low, 100 * high,
                              color=COLORS[opt], alpha=0.15)
            if opt in reproduce.RESTARTS:
                cycle = mean_curve(groups[opt], anytime=True)
                if cycle is not None:
                    e, m, lo, hi = cycle
                    axes.errorbar(e, 100 * m, yerr=[100 * (m - lo),
                                                    100 * (hi - m)],
                                  fmt="o", color=COLORS[opt], markersize=7,
                                  capsize=3,
                                  label=f"{NAMES[opt]} AnytimeRecorder "
                                  "(cycle ends)")
        axes.axhline(100 * target, color="0.4", linestyle=":",
                     label="Adam+L2 final error (mean)")
        axes.set_xlabel("epoch")
        axes.set_ylabel("test error (%)")
        axes.set_title(("Adam family" if index == 0 else "SGD family")
                       + ": mean over seeds, band = min..max")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    _save(figure, images, "reproduction_anytime.png")
    for opt in settings["repeat_optimizers"]:
        if opt not in groups:
            continue
        curve = mean_curve(groups[opt])
        if curve is None:
            continue
        epochs, mean, _, _ = curve
        hits = [e for e, m in zip(epochs, mean) if m <= target + 1e-12]
        wall = np.mean([r["wall_seconds"] / r["epochs"] for r in groups[opt]])
        first = f"{hits[0]:g}" if hits else "not reached"
        time_to = f"{hits[0] * wall:.0f}" if hits else "-"
        table.append(f"| {NAMES[opt]} | {len(groups[opt])} | "
                     + " / ".join(f"{100 * m:.1f}" for m in mean)
                     + f" | {first} | {time_to} |")
    lines = table + [
        "", f"Target: Adam+L2's mean final test error, {100 * target:.2f}%. "
        "Wall time to reach it is the run's mean wall time per epoch "
        "(training plus the test evaluations, on a shared machine) times "
        "the epochs.", "",
        f"![Anytime test error]"
        f"({_relative(page, images, 'reproduction_anytime.png')})"]
    return lines, (groups, target)


# ---------------------------------------------------------------------------
# Claim 3: budgets
# ---------------------------------------------------------------------------
def claim_budgets(rows, settings, page, images, rng=None):
    budget_rows = [r for r in rows if r["phase"] == "budget"]
    if not budget_rows:
        return ["No budget runs yet (they start after the repeated runs)."], \
            None
    # The learning rate of the repeats: the full grid's best AdamW cell once
    # the grid is complete (the coarse grid's before, as the plan runs).
    cells = reproduce.repeat_cells(rows, settings)
    lr = cells["adamw"][0] if cells else budget_rows[0]["lr"]
    decays = reproduce.budget_decays(settings)
    log_d = np.log10(decays)
    figure = _figure(11, 4)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    lines = ["| budget (epochs) | updates | errors over lambda_norm "
             + " / ".join(f"{d:.3g}" for d in decays)
             + " (%) | best lambda_norm | best raw lambda |",
             "|---|---|---|---|---|"]
    best, curves = {}, {}
    for epochs in settings["budgets"]:
        table = reproduce.grid_table(rows, settings, "adamw", epochs=epochs)
        errors = np.array([table.get((lr, d), np.nan) for d in decays])
        steps = [r["steps"] for r in rows if r["optimizer"] == "adamw"
                 and r["epochs"] == epochs]
        if np.isnan(errors).all() or not steps:
            continue
        steps = steps[0]
        raw = np.array(decays) / math.sqrt(steps)
        left.plot(decays, 100 * errors, "o-", label=f"{epochs} epochs")
        right.plot(raw, 100 * errors, "o-", label=f"{epochs} epochs")
        if not np.isnan(errors).any():
            b = best_log_decay(log_d, errors)
            curves[epochs] = errors
            best[epochs] = (10**b, 10**b / math.sqrt(steps), steps)
            lines.append(f"| {epochs} | {steps} | "
                         + " / ".join(f"{100 * e:.1f}" for e in errors)
                         + f" | {10**b:.3g} | {10**b / math.sqrt(steps):.3g} |")
    for axes, label in ((left, "lambda_norm"), (right, "raw lambda "
                                                "(per step, times eta_t)")):
        axes.set_xscale("log")
        axes.set_xlabel(label)
        axes.set_ylabel("final test error (%)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    left.set_title(f"AdamW, lr {lr:g}: over lambda_norm")
    right.set_title("the same runs over raw lambda")
    _save(figure, images, "reproduction_budgets.png")
    lines += ["", f"![Error against lambda_norm and raw lambda per budget]"
              f"({_relative(page, images, 'reproduction_budgets.png')})"]
    slope = interval = None
    if len(best) >= 2:
        t = np.log10(list(best))
        b = np.log10([v[0] for v in best.values()])
        slope = np.polyfit(t, b, 1)[0]
        noise, _ = seed_noise(rows, settings)
        rng = rng or np.random.default_rng(0)
        draws = []
        for _ in range(BOOTSTRAP):
            noisy = [curves[e] + rng.normal(0, noise, len(decays))
                     for e in best]
            draws.append(np.polyfit(
                t, [best_log_decay(log_d, c) for c in noisy], 1)[0])
        interval = tuple(np.percentile(draws, [5, 95]))
    return lines, (best, slope, interval)


# ---------------------------------------------------------------------------
# Verdicts (rules fixed in advance; the page says which one applied)
# ---------------------------------------------------------------------------
def verdict_grid(slopes, complete, settings=None):
    pairs = []
    shape = ("full" if settings is None else
             f"{len(settings['lr_factors'])} x {len(settings['decay_factors'])}")
    note = ("" if complete else " So far only the coarse 3 x 3 grid "
            "is complete; the verdict will be recomputed on the "
            f"{shape} grid.")
    for l2, decoupled in (("adam_l2", "adamw"), ("sgd_l2", "sgdw")):
        s_l2, i_l2 = slopes.get(l2, (None, None))
        s_w, i_w = slopes.get(decoupled, (None, None))
        if s_l2 is None or s_w is None:
            return "**Pending** (fewer than 3 x 3 grid cells)."
        if i_l2[1] < i_w[0] and abs(s_w) < 0.5 and s_l2 < -0.5:
            pairs.append(f"{NAMES[l2]} vs {NAMES[decoupled]}: reproduces")
        elif s_l2 < s_w:
            pairs.append(f"{NAMES[l2]} vs {NAMES[decoupled]}: partly (the "
                         "L2 optimum tilts more, but the intervals overlap "
                         "or the slopes are far from -1 / 0)")
        else:
            pairs.append(f"{NAMES[l2]} vs {NAMES[decoupled]}: does not "
                         "reproduce (the L2 optimum does not tilt more)")
    return "**" + "; ".join(pairs) + ".**" + note


def verdict_seeds(stats):
    result = improvement(stats, "adamw", "adam_l2")
    if result is None or math.isnan(result[1]):
        return "**Pending** (fewer than 2 seeds of AdamW or Adam+L2).", result
    relative, relative_se, _, _ = result
    if relative > 2 * relative_se and relative > 0:
        text = "reproduces (AdamW lower by more than 2 standard errors)"
    elif relative > 0:
        text = "partly (AdamW lower, but within 2 standard errors)"
    else:
        text = "does not reproduce (AdamW not lower than Adam+L2)"
    return f"**{text}.**", result


def verdict_budgets(budgets):
    if budgets is None or budgets[1] is None:
        return "**Pending** (fewer than two complete budgets)."
    slope, (low, high) = budgets[1], budgets[2]
    if low <= 0 <= high and low <= 0.5 <= high:
        return (f"**Inconclusive** (slope {slope:+.2f}, 90% interval "
                f"[{low:+.2f}, {high:+.2f}] contains both 0 and +0.5).")
    if abs(slope) < 0.2:
        return (f"**Reproduces** (slope {slope:+.2f}: close to 0, the "
                "normalized optimum stays put).")
    if abs(slope - 0.5) < 0.2:
        return (f"**Does not reproduce** (slope {slope:+.2f}: close to "
                "+0.5, i.e. the raw lambda stays put instead).")
    return (f"**Inconclusive** (slope {slope:+.2f}: neither about 0, the "
            "paper's prediction, nor about +0.5, a fixed raw optimum).")


def verdict_anytime(anytime, settings):
    if anytime is None:
        return "**Pending.**"
    groups, _ = anytime
    if "adamwr" not in groups or "adamw" not in groups:
        return "**Pending** (no AdamWR or AdamW repeats yet)."
    wins, total = 0, 0
    for restart, single in (("adamwr", "adamw"), ("sgdwr", "sgdw")):
        if restart not in groups or single not in groups:
            continue
        cycle = mean_curve(groups[restart], anytime=True)
        curve = mean_curve(groups[single])
        if cycle is None or curve is None:
            continue
        single_at = dict(zip(curve[0], curve[1]))
        for epoch, error in zip(cycle[0], cycle[1]):
            if epoch < settings["epochs"] and epoch in single_at:
                total += 1
                wins += error < single_at[epoch]
    if not total:
        return "**Pending.**"
    if wins == total:
        word = "Reproduces"
    elif wins:
        word = "Partly"
    else:
        word = "Does not reproduce"
    return (f"**{word}**: at {wins} of {total} intermediate cycle ends the "
            "restart run's model beats the one-cosine run at the same epoch.")


# ---------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------
WHY = {
    "grid": (
        "Why it may differ from the paper: the paper's Figure 2 comes from "
        "100-epoch runs of a 26 2x64d ResNet on 50,000 images. Here a run "
        "makes about a hundred updates, so at small learning rates the "
        "weights barely move and no decay changes the error (flat rows); "
        "with BatchNorm after every convolution, decay on the kernels acts "
        "mostly through their effective learning rate, an effect that needs "
        "many updates to settle. One seed per cell and a sampling sd of "
        "about 0.5 points on 10,000 test images make the best decay of a "
        "row noisy where the row is flat: the intervals show how much. "
        "A flat row's best cell can land anywhere, edges included (the SGD "
        "rows here, whose decays change the error by about the noise)."),
    "seeds": (
        "Why it may differ: the paper's gain comes from long training, where "
        "Adam+L2 regularizes weights with large gradient history less; "
        "after a hundred updates regularization has had little time to "
        "act, and a test error far above the paper's (about 5%) is "
        "dominated by under-fitting, not by generalization."),
    "budgets": (
        "Why it may be inconclusive: the budgets differ by {ratio:.0f}x in "
        "updates, so the two hypotheses differ by a factor sqrt({ratio:.0f}), "
        "about {root:.1f}, in the best lambda_norm, while the grid steps by "
        "sqrt(10), about 3.2, and the error changes little across decays at "
        "this scale. The paper's budgets span 25 to 400 epochs (16x)."),
    "anytime": (
        "What to expect at this scale: cycle ends at epochs 1 and 3 fall "
        "where the one-cosine run still has a high learning rate, so the "
        "restart run's annealed model should be ahead there; at the last "
        "cycle end (epoch 7) both have annealed to zero and should be "
        "close. The paper's stronger statement (reaching a given error up "
        "to 10x sooner than SGDR) concerns long runs with many cycles."),
}

def _describe(rows, settings):
    first = rows[0]
    total = sum(r["wall_seconds"] for r in rows)
    speed = np.median([r["images_per_second"] for r in rows])
    versions = sorted({(r["keras_adamwr_version"], r["keras_version"],
                        r["backend"], r["backend_version"], r["python"])
                       for r in rows})
    hardware = sorted({f"{r['hardware']}; {r['threads']} thread(s)"
                       for r in rows})
    dates = sorted(r["date"] for r in rows)
    planned = reproduce.plan(rows, settings)
    done = {r["key"] for r in rows}
    missing = [s for s in planned if reproduce.run_key(s, settings) not in done]
    phases = {}
    for spec in missing:
        phases[spec["phase"]] = phases.get(spec["phase"], 0) + 1
    status = ("complete" if not missing else
              f"**in progress**: {len(missing)} planned runs missing ("
              + ", ".join(f"{k}: {v}" for k, v in phases.items()) + ")"
              + "; later phases are planned as the earlier ones finish")
    return [
        "| | |", "|---|---|",
        f"| Status | {len(rows)} runs in the results file; {status} |",
        f"| Data | CIFAR-10 (TFDS copy, see below): the first "
        f"{first['train_examples']:,} training images, all "
        f"{first['test_examples']:,} test images (the test set is never used "
        "for anything but the reported error); horizontal flips only |",
        f"| Model | `{first['model']}`: 3 x (conv3x3-BatchNorm-ReLU-maxpool), "
        f"global average pooling, dense; {first['parameters']:,} parameters "
        "(smaller than the examples' 78k-parameter pre-activation ResNet, "
        "which ran at about 80-150 images/s on one shared core) |",
        f"| Budget | {settings['epochs']} epochs of "
        f"{first['steps'] // first['epochs']} steps (batch "
        f"{first['batch_size']}) = {first['steps']} weight updates per run, "
        f"except the budget runs ({', '.join(map(str, settings['budgets']))} "
        "epochs) |",
        "| Schedules | one cosine decay over the budget (Adam+L2, AdamW, "
        "SGD+L2, SGDW); warm restarts T_0 = 1 epoch, T_mult = 2, cycles "
        "ending after epochs 1, 3, 7 (AdamWR, SGDWR) |",
        "| Optimizers | Adam+L2 / SGD+L2: this package's `AdamW` / `SGDW` "
        "with `weight_decay=0` (exactly the paper's Adam and SGD with "
        "momentum 0.9) and lambda' * theta added to the gradient by an L2 "
        "kernel regularizer; AdamW, SGDW, AdamWR, SGDWR: normalized "
        "decoupled decay lambda = lambda_norm / sqrt(updates per run or "
        "cycle). Biases and BatchNorm parameters: no decay, no L2 |",
        f"| Seeds | grid and budget runs: seed {settings['grid_seed']}; "
        f"repeats: seeds {', '.join(map(str, settings['repeat_seeds']))} "
        "(the best cell is chosen on seed 0, so the repeats are not biased "
        "by that choice). A seed fixes initial weights, data order and "
        "flips |",
        "| Hardware | " + "; ".join(hardware) + ". Two study processes of one "
        "thread each ran side by side (`--claims`), next to other work "
        "(load average about 3 to 4 on 2 cores), so wall times are "
        "slow and noisy. No GPU: the project's device tool lent no GPU "
        "machine to this task, so there are no larger GPU rows |",
        "| Software | " + "; ".join(
            f"keras_adamwr {v[0]}, Keras {v[1]}, {v[2]} {v[3]}, Python {v[4]}"
            for v in versions) + " |",
        f"| Compute | {total / 3600:.2f} h wall time in all ({len(rows)} "
        f"runs, median {speed:.0f} training images/s including evaluation); "
        f"{dates[0][:16]} to {dates[-1][:16]} UTC |"]


def write_page(rows, settings, page, images):
    """Write the page and its figures from the results rows."""
    rng = np.random.default_rng(0)
    lines = [
        "# Reproducing the paper's claims", "",
        "Loshchilov & Hutter make four claims about decoupled weight decay "
        "and warm restarts. This page tests each with this package on "
        "CIFAR-10, at the scale two shared CPU cores allow, and says plainly "
        "whether it reproduces. Everything here is generated from "
        "[`docs/data/reproduction.csv`](data/reproduction.csv) (one row per "
        "run, plain CSV) by `examples/reproduce.py`:", "",
        "```bash",
        "TFDS_DATA_DIR=/path/to/tfds python examples/reproduce.py    # run or "
        "continue the study",
        "python examples/reproduce.py --plot-only                    # this "
        "page from the CSV",
        "```", ""]
    if not rows:
        lines.append("No runs yet.")
    else:
        lines += _describe(rows, settings)
        lines += [
            "", "!!! warning \"Scale\"",
            "    The paper trains a 26 2x64d Shake-Shake ResNet (11.7M "
            "parameters) on all 50,000 images for hundreds of epochs. Here a "
            f"small CNN sees {rows[0]['train_examples']:,} images for "
            f"{settings['epochs']} epochs: far from "
            "convergence, where weight decay matters mostly through the "
            "effective learning rate of BatchNorm-scaled weights. Read every "
            "verdict as \"at this scale\".", "",
            "!!! note \"Dataset\"",
            "    The CIFAR-10 copy was prepared from a public set of CIFAR-10 "
            "images stored as JPEG (quality about 75): the pixels are close "
            "to, not identical with, the originals (PSNR 30 dB). Labels and "
            "order match the official dataset.", ""]
        grid_lines, slopes = claim_grid(rows, settings, page, images, rng)
        seed_lines, stats = claim_seeds(rows, settings, page, images)
        budget_lines, budgets = claim_budgets(rows, settings, page, images,
                                              rng)
        any_lines, anytime = claim_anytime(rows, settings, page, images)
        seeds_verdict, result = verdict_seeds(stats)
        lines += [
            "## 1. Separable learning rate and weight decay", "",
            "Paper (Figure 2): with L2, the best decay falls as the learning "
            "rate grows (a diagonal valley, slope about -1 in log-log); with "
            "decoupled decay the valley is about axis-aligned (slope about 0)."
            " Each panel: final test error (%) of one run per cell, seed 0, "
            "one colour scale for all four panels; the dashed line marks the "
            "(interpolated) best decay of each learning rate.", "",
            f"Grid: {len(settings['lr_factors'])} learning rates (octaves) x "
            f"{len(settings['decay_factors'])} decays (half decades) per "
            "optimizer, centered on the best cells of this page's first "
            "study (keras_adamwr 0.3.0, in git history: 5 x 5 cells with a "
            "decay range one decade narrower and final errors only), whose "
            "best Adam+L2 and AdamW cells lay on the edges of the decay "
            "range. Every run is evaluated on the full test set after every "
            "epoch (all in the CSV, `test_errors`); the grids show the last "
            "epoch.", ""]
        lines += grid_lines
        lines += ["", "Verdict (rule: reproduces if the L2 slope is below "
                  "-0.5, the decoupled one within +-0.5 of 0 and their 90% "
                  "intervals do not overlap): "
                  + verdict_grid(slopes, not reproduce._pending(
                      sum(reproduce.grid_phase(settings), []), rows,
                      settings), settings), "", WHY["grid"], ""]
        lines += [
            "## 2. Better generalization", "",
            "Paper: AdamW improves Adam+L2's test error by up to 15% "
            "relative and closes most of the gap to SGD. Here: seeds "
            f"{', '.join(map(str, settings['repeat_seeds']))} at each "
            "optimizer's best grid cell (restart runs at the cell of their "
            "one-cosine counterpart).", ""]
        lines += seed_lines
        if result is not None:
            relative, relative_se, delta, se = result
            lines += ["", f"AdamW vs Adam+L2: {100 * delta:+.2f} points "
                      f"(+-{100 * se:.2f} standard error), a relative "
                      f"improvement of **{100 * relative:.1f}%** "
                      f"(+-{100 * relative_se:.1f}); the paper reports up to "
                      "15%."]
            sgd = improvement(stats, "sgdw", "sgd_l2")
            if sgd is not None:
                lines.append(f"SGDW vs SGD+L2: {100 * sgd[0]:.1f}% relative "
                             f"(+-{100 * sgd[1]:.1f}); the paper expects no "
                             "real difference for SGD at each one's best "
                             "setting (L2 and decoupled decay are equivalent "
                             "up to a rescaling of lambda).")
        lines += ["", "Verdict (rule: reproduces if AdamW's mean error is "
                  "lower by more than 2 standard errors): " + seeds_verdict,
                  "", WHY["seeds"], ""]
        lines += [
            "## 3. Normalized weight decay across budgets", "",
            "Paper: with lambda = lambda_norm / sqrt(updates), the best "
            "lambda_norm stays about the same across budgets, while the best "
            "raw lambda moves like 1/sqrt(updates). Here: AdamW at its best "
            "grid learning rate, "
            f"{len(reproduce.budget_decays(settings))} lambda_norm values (the "
            "grid's and two larger ones, added when the 31-epoch runs at "
            "the coarse grid's best rate had their best value on the grid's "
            "upper edge), budgets "
            f"of {', '.join(map(str, settings['budgets']))} epochs, seed 0 "
            "(the 7-epoch row is the grid's).", ""]
        lines += budget_lines
        spread = 0.5 * math.log10(max(settings["budgets"])
                                  / min(settings["budgets"]))
        if budgets is not None and budgets[1] is not None:
            lines += ["", "Slope of log(best lambda_norm) on log(budget): "
                      f"{budgets[1]:+.2f}, 90% interval [{budgets[2][0]:+.2f},"
                      f" {budgets[2][1]:+.2f}] (same noise bootstrap as in "
                      "claim 1; paper: 0; a fixed best raw lambda "
                      "would give +0.5). Over this range of budgets the two "
                      "hypotheses differ by "
                      f"{spread:.2f} decades of lambda_norm, "
                      + ("less than one grid step (0.5 decades), so the "
                         "verdict rests on the interpolation."
                         if spread < 0.5 else "about one grid step (0.5 "
                         "decades).")]
        lines += ["", "Verdict (rule: inconclusive if the 90% interval "
                  "contains both 0 and +0.5; else |slope| < 0.2 reproduces, "
                  "|slope - 0.5| < 0.2 does not, anything else is "
                  "inconclusive): "
                  + verdict_budgets(budgets), "", WHY["budgets"].format(
                      ratio=max(settings["budgets"]) / min(settings["budgets"]),
                      root=math.sqrt(max(settings["budgets"])
                                     / min(settings["budgets"]))), ""]
        lines += [
            "## 4. Anytime performance of warm restarts", "",
            "Paper: AdamWR and SGDWR give a usable model at the end of every "
            "restart cycle, reaching a given error sooner than a single "
            "cosine decay that has to finish its budget. Here: the repeated "
            "runs, evaluated on the full test set after epochs "
            + ", ".join(map(str, settings["curve_epochs"])) + "; the "
            "large markers are the `AnytimeRecorder` rows (cycle ends).", ""]
        lines += any_lines
        lines += ["", "Verdict (rule: reproduces if every intermediate "
                  "cycle-end model of AdamWR/SGDWR beats its one-cosine "
                  "counterpart at that epoch): "
                  + verdict_anytime(anytime, settings), "", WHY["anytime"],
                  "", "## Relation to the other CIFAR-10 page", "",
                  "[CIFAR-10 comparison](comparison.md) is a single-seed "
                  "run of `examples/compare.py` with the examples' ResNet; "
                  "it also checks `keras.optimizers.AdamW` under the "
                  "documented conversion of lambda. This page is the "
                  "multi-seed test of the paper's claims.", ""]
    os.makedirs(os.path.dirname(os.path.abspath(page)), exist_ok=True)
    with open(page, "w") as file:
        file.write("\n".join(lines) + "\n")
