"""Statistics of study v3 (pure NumPy; see docs/study_v3_protocol.md).

Valleys: the best decay of a row (one learning rate, or one budget) is the
minimum of a quadratic in log10(decay) fitted to the row's best cell and its
two neighbours on each side. Slopes: ordinary least squares of the valley
positions on log10(learning rate) (claim 1) or log10(updates) (claim 3).
Noise: from seed pairs (the same cell run with two seeds), with each row's
common shift removed (a shift of a whole row does not move its valley).
Intervals: a parametric bootstrap that adds that noise to every cell and
refits everything.
"""

import math

import numpy as np

Z90 = 1.6448536269514722   # two-sided 90% interval
Z80 = 0.8416212335729143   # 80% power


def fit_valley(x, y, half_width=2):
    """(x_star, curvature, ok) of the row `y` over log-decays `x`.

    A quadratic a*x**2 + b*x + c is fitted by least squares to the lowest
    point and up to `half_width` points on each side; x_star = -b / (2a),
    clamped to the fitted points' range. If a <= 0 (no valley) or fewer than
    3 points, x_star is the lowest point's x. ok is False then, and also
    where the lowest point is the row's first or last (no interior optimum).
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    best = int(np.argmin(y))
    lo, hi = max(0, best - half_width), min(len(x), best + half_width + 1)
    xs, ys = x[lo:hi], y[lo:hi]
    if len(xs) < 3:
        return float(x[best]), float("nan"), False
    a, b, _ = np.polyfit(xs, ys, 2)
    if a <= 1e-12:
        return float(x[best]), float(a), False
    interior = 0 < best < len(x) - 1
    return float(np.clip(-b / (2 * a), xs[0], xs[-1])), float(a), interior


def ols_slope(x, y):
    """Least-squares slope of y on x."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    xc = x - x.mean()
    return float(np.sum(xc * (y - y.mean())) / np.sum(xc * xc))


def valley_slope(rows):
    """(slope, valleys) for rows = [(x_row, log_decays, errors), ...]:
    the slope of the rows' valley positions on x_row."""
    valleys = [fit_valley(d, e)[0] for _, d, e in rows]
    return ols_slope([r[0] for r in rows], valleys), valleys


def pair_noise(pairs):
    """Noise of one run from seed pairs.

    `pairs` is a list of rows, each a list of (error_seed_a, error_seed_b)
    at cells of that row. Returns (sigma_independent, sigma_total): the
    standard deviation of one run's error after removing each row's mean
    difference (pooled, with its degrees of freedom), and without.
    """
    resid, dof, total = [], 0, []
    for row in pairs:
        d = np.array([a - b for a, b in row], float)
        if len(d) == 0:
            continue
        total.extend(d)
        if len(d) > 1:
            resid.extend(d - d.mean())
            dof += len(d) - 1
    s_ind = (math.sqrt(np.sum(np.square(resid)) / dof / 2) if dof
             else float("nan"))
    s_tot = math.sqrt(np.mean(np.square(total)) / 2) if total else float("nan")
    return s_ind, s_tot


def bootstrap_slope(rows, sigma, n_boot=2000, seed=0):
    """Bootstrap replicates of `valley_slope(rows)`: `sigma` (the noise of
    a cell's value, e.g. a mean over seeds) is added to every cell
    independently and the valleys and slope are refitted."""
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for k in range(n_boot):
        noisy = [(x, d, np.asarray(e, float) + rng.normal(0, sigma, len(e)))
                 for x, d, e in rows]
        out[k] = valley_slope(noisy)[0]
    return out


def interval(estimate, replicates, level=0.90):
    """Basic (pivot) bootstrap interval: centred on the estimate even where
    the replicates' median is not; also returns that median."""
    q = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    med = float(np.median(replicates))
    return (float(2 * estimate - q[1]), float(2 * estimate - q[0])), med


def paired_t(diffs, level=0.90):
    """(mean, (lo, hi), t) of paired differences (t interval)."""
    d = np.asarray(diffs, float)
    n = len(d)
    mean = float(d.mean())
    if n < 2:
        return mean, (float("nan"), float("nan")), float("nan")
    se = float(d.std(ddof=1) / math.sqrt(n))
    q = t_quantile((1 + level) / 2, n - 1)
    t = mean / se if se > 0 else float("inf") * np.sign(mean)
    return mean, (mean - q * se, mean + q * se), float(t)


def t_quantile(p, df):
    """Quantile of Student's t (bisection on the regularized incomplete
    beta; no SciPy)."""
    def cdf(t):
        x = df / (df + t * t)
        tail = 0.5 * _betainc(df / 2, 0.5, x)
        return 1 - tail if t > 0 else tail

    lo, hi = -100.0, 100.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if cdf(mid) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _betainc(a, b, x):
    """Regularized incomplete beta I_x(a, b) (continued fraction)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    front = math.exp(lbeta + a * math.log(x) + b * math.log(1 - x))
    if x > (a + 1) / (a + b + 2):
        return 1 - _betainc(b, a, 1 - x)
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1 + num * d
        d = 1 / (d if abs(d) > 1e-30 else 1e-30)
        c = 1 + num / (c if abs(c) > 1e-30 else 1e-30)
        f *= c * d
        if abs(1 - c * d) < 1e-12:
            break
    return front * (f - 1) / a


def slope_power(sigma, curvature, row_x, cell_step=0.5, n_cells=7,
                true_slope=0.0, n_sim=2000, seed=0):
    """Standard deviation of a row-valley slope estimate, by simulation.

    Rows at `row_x` (log10 learning rates) have quadratic valleys of
    `curvature` (error per decade**2) centred at `true_slope * row_x`, cells
    every `cell_step` decades (`n_cells`, centred on 0), and independent
    noise `sigma` per cell. Returns the slope estimates' standard deviation.
    """
    rng = np.random.default_rng(seed)
    cells = (np.arange(n_cells) - (n_cells - 1) / 2) * cell_step
    est = np.empty(n_sim)
    for k in range(n_sim):
        rows = []
        shift = rng.uniform(-cell_step / 2, cell_step / 2)  # vs the cells
        for x in row_x:
            center = true_slope * x + shift
            e = (curvature * (cells - center) ** 2
                 + rng.normal(0, sigma, n_cells))
            rows.append((x, cells, e))
        est[k] = valley_slope(rows)[0]
    return float(np.std(est))


def detectable_difference(sd_a, sd_b):
    """The slope difference a two-sided 90% interval excludes 0 with 80%
    probability, for two independent estimates of these SDs."""
    return (Z90 + Z80) * math.hypot(sd_a, sd_b)


# -- verdicts (the rules of docs/study_v3_protocol.md) ----------------------
def verdict_claim1(diff_ci, adamw_ci, margin=0.5):
    """Claim 1 from the 90% interval of (AdamW slope - Adam+L2 slope) and
    that of the AdamW slope."""
    lo, hi = diff_ci
    if lo > 0:
        return "reproduces" if adamw_ci[0] <= 0 <= adamw_ci[1] else "partly"
    if hi < 0:
        return "significantly the opposite"
    return "does not reproduce" if hi < margin else "inconclusive"


def verdict_claim2(test_ci, val_ci, margin=0.005):
    """Claim 2 from 90% intervals of the paired error differences
    AdamW - Adam+L2 (fractions): on the test set over all seeds, and on
    validation over the seeds not used for selection."""
    lo, hi = test_ci
    vlo, vhi = val_ci
    if hi < 0:
        return "reproduces" if vhi < 0 else "partly"
    if lo > 0:
        return "significantly the opposite"
    if vhi < 0:
        return "partly"
    return "does not reproduce" if (hi - lo) / 2 < margin and lo > -margin \
        and hi < margin else "inconclusive"


def verdict_claim3(ci):
    """Claim 3 from the 90% interval of the slope of the best log10
    lambda_norm on log10(updates): 0 if lambda_norm transfers, +0.5 if the
    raw lambda does."""
    lo, hi = ci
    has0, has5 = lo <= 0 <= hi, lo <= 0.5 <= hi
    if has0 and not has5:
        return "reproduces"
    if has0 and has5:
        return "inconclusive"
    if has5 or lo > 0.25:
        return "significantly the opposite"
    if -0.25 < (lo + hi) / 2 < 0.25:
        return "partly"
    return "does not reproduce"


def verdict_claim4(deltas, tolerance):
    """Claim 4 from (restart run - fixed-budget run) test errors at the
    cycle ends that match a budget, with the noise `tolerance`."""
    deltas = [d for d in deltas if d is not None and not math.isnan(d)]
    if len(deltas) < 2 or math.isnan(tolerance):
        return "inconclusive"
    good = sum(d <= tolerance for d in deltas)
    if good == len(deltas):
        return "reproduces"
    if all(d > 3 * tolerance for d in deltas):
        return "significantly the opposite"
    return "partly" if good else "does not reproduce"
