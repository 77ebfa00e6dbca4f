"""Corrected statistics for the earlier (BatchNorm CNN) study: NumPy only.

The study's verdict rules were fixed before its data and stay on the page;
these functions give the corrected reading next to them (issue 17):

- `paired_t`: seeds paired (same seed = same initial weights, data order and
  flips), instead of two independent samples.
- `within_row_noise`: the cell-to-cell noise inside one grid row (one seed),
  from seed pairs of two cells of the same row; the old bootstrap added the
  seed-to-seed sd (which includes the part a row shares) to every cell.
- `slope_draws` / `basic_interval`: the row-argmin slope re-fitted under that
  noise; the interval is the basic (pivot) bootstrap interval, centred on the
  estimate, and the bias (bootstrap median - estimate) is reported.
- `quadratic_valley`: a 2-D quadratic surface in (log lr, log decay) and
  the slope of its valley; `upper_edge`: where a row's error first rises a
  given amount above the row's best, in log decay.
- `text_color`: black or white text for a cell, from its colour's luminance.
- `verdict_difference` / `verdict_paired` / `verdict_budget`: outcomes
  reproduces / partly / inconclusive / does not reproduce / significantly
  the opposite.
"""

import math

import numpy as np

# Two-sided 95% critical values of Student's t, df 1..30 (then normal).
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
       2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
       2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_critical(df):
    """Two-sided 95% critical value of Student's t with `df` degrees."""
    if df < 1:
        return float("nan")
    return T95[df - 1] if df <= len(T95) else 1.960


def text_color(rgba):
    """"k" on light cells, "w" on dark ones (relative luminance, sRGB)."""
    def linear(c):
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (linear(c) for c in rgba[:3])
    return "k" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.179 else "w"


def paired_t(a, b):
    """Mean of a - b over pairs, its standard error, t and df."""
    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) < 2:
        return float(d.mean()) if len(d) else float("nan"), \
            float("nan"), float("nan"), 0
    se = d.std(ddof=1) / math.sqrt(len(d))
    mean = float(d.mean())
    return mean, float(se), mean / se if se > 0 else float("inf"), len(d) - 1


def within_row_noise(pairs):
    """Cell noise inside one row (one seed) from seed pairs.

    `pairs`: list of (errors at cell A, errors at cell B), seeds aligned,
    A and B in the same grid row. Cell = row curve + seed's shift of the
    row + independent noise: the seed's shift cancels in A - B, so
    var(A - B over seeds) = 2 sigma^2. Returns (sigma, degrees of freedom).
    """
    squares, df = 0.0, 0
    for a, b in pairs:
        d = np.asarray(a, float) - np.asarray(b, float)
        if len(d) > 1:
            squares += ((d - d.mean()) ** 2).sum()
            df += len(d) - 1
    if not df:
        return None, 0
    return math.sqrt(squares / df / 2), df


def second_difference_noise(grids):
    """Robust cell noise from the rows' second differences (a check).

    For a row that is locally linear, y[j-1] - 2 y[j] + y[j+1] is noise of
    variance 6 sigma^2; the median absolute value (/0.6745) ignores cliffs.
    """
    d2 = np.concatenate([np.diff(g, 2, axis=1).ravel() for g in grids])
    d2 = d2[~np.isnan(d2)]
    if not len(d2):
        return None
    return float(np.median(np.abs(d2)) / 0.6745 / math.sqrt(6))


def slope_draws(x, log_decays, grid, best_fn, noise, rng, draws=2000):
    """Row-argmin slope of `grid` (rows over x) and re-fits with noise."""
    best = np.array([best_fn(log_decays, row) for row in grid])
    slope = float(np.polyfit(x, best, 1)[0])
    out = np.empty(draws)
    for k in range(draws):
        noisy = grid + rng.normal(0, noise, grid.shape)
        out[k] = np.polyfit(x, [best_fn(log_decays, r) for r in noisy], 1)[0]
    return slope, out


def basic_interval(estimate, draws, level=0.90):
    """(low, high, bias): the basic bootstrap interval (2 est - quantiles),
    which corrects the bias the percentile interval keeps, and the bias
    median(draws) - estimate."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return (float(2 * estimate - high), float(2 * estimate - low),
            float(np.median(draws) - estimate))


def leave_one_out(x, best):
    """Slopes of `best` on `x` with each row left out in turn."""
    x, best = np.asarray(x, float), np.asarray(best, float)
    keep = np.ones(len(x), bool)
    out = []
    for i in range(len(x)):
        keep[:] = True
        keep[i] = False
        out.append(float(np.polyfit(x[keep], best[keep], 1)[0]))
    return out


def _design(x, y):
    return np.column_stack([np.ones_like(x), x, y, x * x, x * y, y * y])


def quadratic_valley(x, y, errors):
    """Fit e = c0 + c1 x + c2 y + c3 x^2 + c4 x y + c5 y^2 to a grid.

    x: log lr per row, y: log decay per column, errors[row, column]. The
    valley (the best y for each x) is y*(x) = -(c2 + c4 x) / (2 c5), a line
    of slope -c4 / (2 c5). Returns (slope, coefficients, fitted, residuals);
    slope is NaN if the surface does not curve upwards in y (c5 <= 0).
    """
    xx, yy = np.meshgrid(x, y, indexing="ij")
    ok = ~np.isnan(errors)
    design = _design(xx[ok], yy[ok])
    coef = np.linalg.lstsq(design, errors[ok], rcond=None)[0]
    fitted = np.full(errors.shape, np.nan)
    fitted[ok] = design @ coef
    slope = -coef[4] / (2 * coef[5]) if coef[5] > 0 else float("nan")
    return float(slope), coef, fitted, errors - fitted


def quadratic_valley_draws(x, y, errors, rng, draws=2000):
    """Residual bootstrap of `quadratic_valley`'s slope (residuals of the
    surface resampled over all cells and added to the fitted surface)."""
    slope, _, fitted, residuals = quadratic_valley(x, y, errors)
    pool = residuals[~np.isnan(residuals)]
    scale = math.sqrt(len(pool) / max(len(pool) - 6, 1))
    out = np.empty(draws)
    for k in range(draws):
        noisy = fitted + scale * rng.choice(pool, fitted.shape)
        out[k] = quadratic_valley(x, y, noisy)[0]
    return slope, out[~np.isnan(out)]


def upper_edge(log_decays, row, rise):
    """log decay where the row's error first exceeds its best + `rise`
    beyond the best cell (linear interpolation); NaN if it never does."""
    row = np.asarray(row, float)
    j = int(np.nanargmin(row))
    level = row[j] + rise
    for k in range(j + 1, len(row)):
        if row[k] > level:
            t = (level - row[k - 1]) / (row[k] - row[k - 1])
            return float(log_decays[k - 1]
                         + t * (log_decays[k] - log_decays[k - 1]))
    return float("nan")


def edge_slope(x, log_decays, grid, rise):
    """Slope of the upper edge on x (rows without an edge left out)."""
    edges = np.array([upper_edge(log_decays, r, rise) for r in grid])
    ok = ~np.isnan(edges)
    if ok.sum() < 3:
        return float("nan"), edges
    return float(np.polyfit(np.asarray(x)[ok], edges[ok], 1)[0]), edges


def edge_draws(x, log_decays, grid, rise, noise, rng, draws=2000):
    slope, _ = edge_slope(x, log_decays, grid, rise)
    out = [edge_slope(x, log_decays, grid + rng.normal(0, noise, grid.shape),
                      rise)[0] for _ in range(draws)]
    out = np.array(out)
    return slope, out[~np.isnan(out)]


# ---------------------------------------------------------------------------
# Corrected verdicts
# ---------------------------------------------------------------------------
def verdict_difference(low, high, expected=-1.0):
    """Claim 1 corrected, on the 90% interval [low, high] of
    D = slope(L2) - slope(decoupled); the paper predicts D about -1 (L2
    valley slope about -1, decoupled about 0).

    - reproduces: the interval lies below 0 and contains `expected`;
    - partly: below 0 but excludes `expected` (a smaller tilt);
    - significantly the opposite: the interval lies above 0;
    - does not reproduce: contains 0 but excludes `expected` (a gap of
      the paper's size is ruled out);
    - inconclusive: contains both 0 and `expected`.
    """
    if high < 0:
        return "reproduces" if low <= expected <= high else "partly"
    if low > 0:
        return "significantly the opposite"
    if not low <= expected <= high:
        return "does not reproduce"
    return "inconclusive"


def verdict_budget(low, high):
    """Claim 3 corrected, on the 90% interval of the slope of log(best
    lambda_norm) on log(budget): paper 0, a fixed raw lambda +0.5.

    reproduces: contains 0, excludes +0.5; does not reproduce: contains
    +0.5, excludes 0, or lies above +0.5 (the best lambda_norm grows at
    least as fast as with a fixed raw lambda); significantly the opposite:
    lies below 0 (it falls); inconclusive: contains both, or lies between.
    """
    if low <= 0 <= high:
        return "inconclusive" if high >= 0.5 else "reproduces"
    if high < 0:
        return "significantly the opposite"
    if low <= 0.5 <= high or low > 0.5:
        return "does not reproduce"
    return "inconclusive"


def verdict_paired(mean, se, df, baseline, smallest=0.02):
    """Claim 2 corrected: `mean` = decoupled - L2 error over seed pairs.

    95% interval mean +- t se. Reproduces: entirely below 0 (decoupled
    lower). Significantly the opposite: entirely above 0. Does not
    reproduce: contains 0 but excludes a relative improvement of
    `smallest` of the baseline (any gain is smaller than that). Otherwise
    inconclusive.
    """
    if df < 1 or math.isnan(se):
        return "pending"
    half = t_critical(df) * se
    low, high = mean - half, mean + half
    if high < 0:
        return "reproduces"
    if low > 0:
        return "significantly the opposite"
    if low > -smallest * baseline:
        return "does not reproduce"
    return "inconclusive"
