"""Reproduction study v3: the paper's claims where weight decay regularizes.

An MLP (768-512-512-10, ReLU, no BatchNorm, no augmentation) on CIFAR-10
downsampled to 16x16: it overfits without decay, so decay has something to
regularize (see docs/study_v3_protocol.md for the design, fixed before the
first run). Train on 45,000 images, select on a fixed 5,000-image validation
split, report the 10,000-image test set only.

Every finished run appends one row to the results CSV (settings, seed, per
epoch train/validation/test error, CPU and wall time, versions, machine).
Runs already in the file are skipped, so an interrupted study continues
where it stopped. Several processes may work on one results file at once
(one per core: each claims the next free run). The run list is built in phases, each from the rows of the
phases before (e.g. the seed repeats at each optimizer's validation-selected
cell once its grid is complete).

    python examples/study_v3.py               # run (or continue) the study
    python examples/study_v3.py --plot-only   # page section + figures
    python examples/study_v3.py --quick       # tiny synthetic run (CI)

Adam+L2 / SGD+L2 are this package's AdamW / SGDW with `weight_decay=0` and
`lambda' * theta` added to the gradient by an L2 kernel regularizer; AdamW /
SGDW use normalized decoupled decay. Biases are neither decayed nor penalized.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TF loads

import argparse  # noqa: E402
import datetime  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import _study_common  # noqa: E402  (examples/: the script's folder)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(ROOT, "docs", "data", "study_v3.csv")
PAGE = os.path.join(ROOT, "docs", "reproduction.md")
IMAGES = os.path.join(ROOT, "docs", "img")
CACHE = os.environ.get("STUDY3_CACHE", "/work/study3-cache")

# ---------------------------------------------------------------------------
# Settings (pre-registered in docs/study_v3_protocol.md; change only there
# and with a new protocol commit).
# ---------------------------------------------------------------------------
FULL = dict(
    data="cifar10_16x16",
    train_examples=45000,     # TFDS train[:45000]
    val_examples=5000,        # TFDS train[45000:]
    test_examples=10000,      # TFDS test, only reported
    train_eval_examples=5000,  # train error on train[:5000] (fixed subset)
    image_size=16,            # 2x2 mean pooling of the 32x32 images
    widths=(512, 512),        # hidden layers of the MLP
    batch_size=128,           # 352 updates per epoch
    grid_epochs=8,            # 2,816 updates per grid run
    lr_center={"adam": 1e-3, "sgd": 0.02},
    lr_factors=(0.25, 0.5, 1.0, 2.0, 4.0),
    # decay value i of an optimizer: center * 10**(i/2) (half decades)
    decay_center={"adam_l2": 1e-3, "adamw": 0.03, "sgd_l2": 1e-3,
                  "sgdw": 0.01},
    decay_index=tuple(range(-3, 4)),      # 7 values, three decades
    max_extend=2,             # half decades added where a row's best is
                              # on its edge (seed 0, validation)
    adam_grid_seeds=(0, 1),
    sgd_grid_seeds=(0,),      # seed 1 of the SGD grids is the last phase
    sgd_late_seeds=(1,),
    adam_repeat_seeds=(2, 3, 4, 5, 6, 7),
    sgd_repeat_seeds=(1, 2, 3, 4, 5, 6, 7),
    budgets=(8, 24, 120),     # epochs: 2,816 / 8,448 / 42,240 updates (15x)
    budget_index=(-2, -1, 0, 1, 2),       # around the 8-epoch best
    budget_seeds=(0,),
    budget_late_seeds=(1,),   # the last phase
    restart_epochs=120,       # T_0 = 8, T_mult = 2: cycles end 8, 24, 56, 120
    first_cycle_epochs=8,
    t_mul=2.0,
    restart_seeds=(0,),
    n_boot=2000,              # bootstrap replicates
)
# --quick (CI): synthetic data, every phase and the report in well under a
# minute.
QUICK = dict(
    FULL, data="synthetic", train_examples=384, val_examples=128,
    test_examples=128, train_eval_examples=128, widths=(16,), batch_size=64,
    grid_epochs=1, lr_factors=(0.5, 1.0, 2.0), decay_index=(-1, 0, 1),
    max_extend=1, adam_repeat_seeds=(2, 3), sgd_repeat_seeds=(1, 2),
    budgets=(1, 3), budget_index=(-1, 0, 1), restart_epochs=3,
    first_cycle_epochs=1, n_boot=200)

ADAM = ("adam_l2", "adamw")
SGD = ("sgd_l2", "sgdw")
L2 = ("adam_l2", "sgd_l2")
RESTARTS = {"adamwr": "adamw", "sgdwr": "sgdw"}
NO_DECAY = ["bias"]

FIELDS, FLOATS, INTS, LISTS = (_study_common.FIELDS, _study_common.FLOATS,
                               _study_common.INTS, _study_common.LISTS)


def family(optimizer):
    return "adam" if optimizer.startswith("adam") else "sgd"


def lr_values(settings, fam):
    return [float(f"{settings['lr_center'][fam] * f:.4g}")
            for f in settings["lr_factors"]]


def decay_value(settings, optimizer, index):
    """Decay number `index` (half decades from the center) of a grid
    optimizer: lambda' for the L2 variants, lambda_norm otherwise."""
    value = settings["decay_center"][optimizer] * 10 ** (index / 2)
    return float(f"{value:.4g}")


def decay_index(settings, optimizer, decay):
    return round(2 * math.log10(decay / settings["decay_center"][optimizer]))


def steps_per_epoch(settings):
    return math.ceil(settings["train_examples"] / settings["batch_size"])


def run_key(spec, settings):
    return (f"{spec['optimizer']}|lr={spec['lr']:g}|decay={spec['decay']:g}"
            f"|ep={spec['epochs']}|seed={spec['seed']}|{settings['data']}"
            f"|mlp={'-'.join(map(str, settings['widths']))}"
            f"|b={settings['batch_size']}|n={settings['train_examples']}")


# ---------------------------------------------------------------------------
# Results file
# ---------------------------------------------------------------------------
def results_file(path, claims=False):
    """The results CSV as a shared `_study_common.Results` (claims for
    parallel workers in `<path>.claims/` when `claims`)."""
    return _study_common.Results(path, FIELDS, FLOATS, INTS, LISTS,
                                 claims=path + ".claims" if claims else None)


def read_rows(path):
    """The rows of the results file as dicts with numbers parsed."""
    return results_file(path).rows()


def append_row(path, row):
    results_file(path).append(row)


def lookup(rows, optimizer, lr, decay, epochs, seed):
    """The row of a run, or None (any phase: a grid run is also the 6-epoch
    budget run of its cell)."""
    for row in rows:
        if (row["optimizer"] == optimizer and row["lr"] == lr
                and row["decay"] == decay and row["epochs"] == epochs
                and row["seed"] == seed):
            return row
    return None


# ---------------------------------------------------------------------------
# The plan: phases, each built from the rows of the phases before.
# ---------------------------------------------------------------------------
def spec(phase, optimizer, lr, decay, epochs, seed):
    return dict(phase=phase, optimizer=optimizer, lr=lr, decay=decay,
                epochs=epochs, seed=seed)


def row_indices(rows, settings, optimizer, lr, epochs, base, seed=0):
    """(decay indices of one row, complete?): `base`, extended by a half
    decade on a side while the best seed-0 validation error sits on that
    edge, at most `max_extend` times a side."""
    indices = list(base)
    while True:
        values = []
        for i in indices:
            row = lookup(rows, optimizer, lr, decay_value(settings, optimizer,
                                                          i), epochs, seed)
            values.append(None if row is None else row["final_val_error"])
        if None in values:
            return indices, False
        best = values.index(min(values))
        if best == 0 and base[0] - indices[0] < settings["max_extend"]:
            indices.insert(0, indices[0] - 1)
        elif (best == len(values) - 1
              and indices[-1] - base[-1] < settings["max_extend"]):
            indices.append(indices[-1] + 1)
        else:
            return indices, True


def grid_specs(rows, settings, optimizers, seeds, phase):
    """(specs, complete?) of the grids of `optimizers` for `seeds`; the
    decay indices of every row come from its seed-0 runs."""
    specs, complete = [], True
    # row by row, the two optimizers of a family alternating (an
    # interrupted study has rows of both)
    for k in range(len(settings["lr_factors"])):
        for optimizer in optimizers:
            lr = lr_values(settings, family(optimizer))[k]
            indices, done = row_indices(rows, settings, optimizer, lr,
                                        settings["grid_epochs"],
                                        settings["decay_index"])
            complete &= done
            for seed in seeds:
                for i in indices:
                    specs.append(spec(phase, optimizer, lr,
                                      decay_value(settings, optimizer, i),
                                      settings["grid_epochs"], seed))
    complete &= all(lookup(rows, s["optimizer"], s["lr"], s["decay"],
                           s["epochs"], s["seed"]) for s in specs)
    return specs, complete


def cell_means(rows, settings, optimizer, seeds, epochs=None, lr=None):
    """{(lr, decay): mean final validation error over `seeds`} of the cells
    where every seed is done."""
    epochs = settings["grid_epochs"] if epochs is None else epochs
    values = {}
    for row in rows:
        if (row["optimizer"] == optimizer and row["epochs"] == epochs
                and row["seed"] in seeds and (lr is None or row["lr"] == lr)):
            values.setdefault((row["lr"], row["decay"]), {})[row["seed"]] = \
                row["final_val_error"]
    return {cell: sum(v.values()) / len(v) for cell, v in values.items()
            if set(v) == set(seeds)}


def selected_cell(rows, settings, optimizer, seeds):
    """The (lr, decay) of the lowest mean validation error."""
    table = cell_means(rows, settings, optimizer, seeds)
    return min(table, key=table.get)


def plan(rows, settings):
    """The runs of the study in order; a phase appears once the phases it
    depends on are complete. Returns (specs, phases complete so far)."""
    specs = []
    adam0, done_a0 = grid_specs(rows, settings, ADAM, (0,), "grid")
    specs += adam0
    if not done_a0:
        return specs, 0
    adam1, done_a1 = grid_specs(rows, settings, ADAM,
                                settings["adam_grid_seeds"], "grid")
    specs += adam1
    if not done_a1:
        return specs, 1
    best = {opt: selected_cell(rows, settings, opt, settings["adam_grid_seeds"])
            for opt in ADAM}
    for seed in settings["adam_repeat_seeds"]:
        for opt in ADAM:
            specs.append(spec("repeat", opt, *best[opt],
                              settings["grid_epochs"], seed))
    sgd0, done_s0 = grid_specs(rows, settings, SGD, settings["sgd_grid_seeds"],
                               "grid")
    specs += sgd0
    if not done_s0:
        return specs, 3
    best.update({opt: selected_cell(rows, settings, opt,
                                    settings["sgd_grid_seeds"])
                 for opt in SGD})
    for seed in settings["sgd_repeat_seeds"]:
        for opt in SGD:
            specs.append(spec("repeat", opt, *best[opt],
                              settings["grid_epochs"], seed))
    specs += budget_specs(rows, settings, best["adamw"],
                          settings["budget_seeds"])
    for opt, cell in RESTARTS.items():
        for seed in settings["restart_seeds"]:
            specs.append(spec("restart", opt, *best[cell],
                              settings["restart_epochs"], seed))
    late, _ = grid_specs(rows, settings, SGD, settings["sgd_late_seeds"],
                         "grid")
    specs += late
    specs += budget_specs(rows, settings, best["adamw"],
                          settings["budget_late_seeds"])
    unique, seen = [], set()
    for s in specs:
        key = run_key(s, settings)
        if key not in seen:
            seen.add(key)
            unique.append(s)
    return unique, 8


def budget_specs(rows, settings, cell, seeds):
    """AdamW at the selected learning rate, lambda_norm around the
    selected one, every budget; rows extended as the grid's (seed 0)."""
    lr, decay = cell
    center = decay_index(settings, "adamw", decay)
    base = [center + k for k in settings["budget_index"]]
    specs = []
    for epochs in settings["budgets"]:
        indices, _ = row_indices(rows, settings, "adamw", lr, epochs, base)
        for seed in seeds:
            for i in indices:
                specs.append(spec("budget", "adamw", lr,
                                  decay_value(settings, "adamw", i), epochs,
                                  seed))
    return specs


def selected_cells(rows, settings):
    """{optimizer: (lr, decay)} of the grids complete so far."""
    best = {}
    for opts, seeds in ((ADAM, settings["adam_grid_seeds"]),
                        (SGD, settings["sgd_grid_seeds"])):
        _, done = grid_specs(rows, settings, opts, seeds, "grid")
        if done:
            best.update({o: selected_cell(rows, settings, o, seeds)
                         for o in opts})
    return best


def pending(rows, settings):
    done = {row["key"] for row in rows}
    return [s for s in plan(rows, settings)[0]
            if run_key(s, settings) not in done]


def planned_counts(settings):
    """(runs, epochs) of the full plan, without edge extensions."""
    n_lr = len(settings["lr_factors"])
    n_d = len(settings["decay_index"])
    e = settings["grid_epochs"]
    grids = [(2 * n_lr * n_d * len(settings["adam_grid_seeds"]), e),
             (2 * len(settings["adam_repeat_seeds"]), e),
             (2 * n_lr * n_d * len(settings["sgd_grid_seeds"]), e),
             (2 * len(settings["sgd_repeat_seeds"]), e),
             (2 * len(settings["restart_seeds"]), settings["restart_epochs"]),
             (2 * n_lr * n_d * len(settings["sgd_late_seeds"]), e)]
    runs = sum(n for n, _ in grids)
    epochs = sum(n * k for n, k in grids)
    seeds = len(settings["budget_seeds"]) + len(settings["budget_late_seeds"])
    for budget in settings["budgets"]:
        n = len(settings["budget_index"]) * seeds
        if budget == settings["grid_epochs"]:
            n = 0  # the grid's runs (seeds 0 and 1) at the selected rate
        runs += n
        epochs += n * budget
    return runs, epochs


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------
def load_data(settings):
    """dict of float32 arrays x_train, y_train, x_val, y_val, x_test, y_test
    (flattened, per-channel standardized with training-split statistics)."""
    import numpy as np

    if settings["data"] == "synthetic":
        rng = np.random.default_rng(0)
        n = (settings["train_examples"] + settings["val_examples"]
             + settings["test_examples"])
        dim = settings["image_size"] ** 2 * 3
        means = rng.normal(size=(10, dim)).astype("float32") * 0.3
        y = rng.integers(0, 10, n).astype("int32")
        x = means[y] + rng.normal(size=(n, dim)).astype("float32")
        a, b = settings["train_examples"], settings["val_examples"]
        return dict(x_train=x[:a], y_train=y[:a], x_val=x[a:a + b],
                    y_val=y[a:a + b], x_test=x[a + b:], y_test=y[a + b:])
    path = os.path.join(CACHE, "cifar10_16x16.npz")
    if not os.path.exists(path):
        import tensorflow_datasets as tfds

        builder = tfds.builder("cifar10")
        if not builder.is_prepared():
            raise SystemExit(f"error: no prepared cifar10 in "
                             f"{builder.data_dir}; set TFDS_DATA_DIR")
        arrays = {}
        for split in ("train", "test"):
            x, y = tfds.as_numpy(builder.as_dataset(
                split=split, as_supervised=True, batch_size=-1))
            x = x.astype("float32").reshape(-1, 16, 2, 16, 2, 3).mean((2, 4))
            arrays[f"x_{split}"] = x.astype("float32")
            arrays[f"y_{split}"] = y.astype("int32")
        os.makedirs(CACHE, exist_ok=True)
        np.savez(path + ".tmp.npz", **arrays)
        os.replace(path + ".tmp.npz", path)
    data = np.load(path)
    n, m = settings["train_examples"], settings["val_examples"]
    x_all, y_all = data["x_train"], data["y_train"]
    x_train, x_val = x_all[:n], x_all[n:n + m]
    mean = x_train.mean((0, 1, 2))
    std = x_train.std((0, 1, 2))

    def prep(x):
        return ((x - mean) / std).reshape(len(x), -1).astype("float32")

    return dict(x_train=prep(x_train), y_train=y_all[:n], x_val=prep(x_val),
                y_val=y_all[n:n + m], x_test=prep(data["x_test"]),
                y_test=data["y_test"][:settings["test_examples"]])


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------
def build_model(settings, l2):
    """MLP: inputs, `widths` ReLU layers, 10 logits. `l2` is the paper's
    lambda' (the gradient gains lambda' * theta on the kernels): keras'
    L2(c) adds c * sum(w**2), hence c = l2 / 2."""
    import keras
    from keras import layers

    regularizer = keras.regularizers.L2(l2 / 2) if l2 else None
    inputs = keras.Input((settings["image_size"] ** 2 * 3,))
    x = inputs
    for width in settings["widths"]:
        x = layers.Dense(width, activation="relu",
                         kernel_initializer="he_normal",
                         kernel_regularizer=regularizer)(x)
    outputs = layers.Dense(10, kernel_regularizer=regularizer)(x)
    name = "mlp_" + "-".join(map(str, [inputs.shape[-1], *settings["widths"],
                                       10]))
    return keras.Model(inputs, outputs, name=name)


def make_optimizer(s, settings):
    """The run's optimizer (XLA off: slower on one CPU thread)."""
    import keras
    import keras_adamwr

    per_epoch = steps_per_epoch(settings)
    total = per_epoch * s["epochs"]
    lr = s["lr"]
    if s["optimizer"] in RESTARTS:
        cls = (keras_adamwr.AdamWR if s["optimizer"] == "adamwr"
               else keras_adamwr.SGDWR)
        return cls(learning_rate=lr, t_mul=settings["t_mul"],
                   first_cycle_steps=settings["first_cycle_epochs"] * per_epoch,
                   normalized_weight_decay=s["decay"],
                   exclude_from_weight_decay=NO_DECAY, jit_compile=False)
    schedule = keras.optimizers.schedules.CosineDecay(lr, total)
    cls = (keras_adamwr.AdamW if family(s["optimizer"]) == "adam"
           else keras_adamwr.SGDW)
    if s["optimizer"] in L2:  # the paper's Adam / SGD; L2 is in the model
        return cls(learning_rate=schedule, base_learning_rate=lr,
                   weight_decay=0.0, jit_compile=False)
    return cls(learning_rate=schedule, base_learning_rate=lr,
               total_steps=total, normalized_weight_decay=s["decay"],
               exclude_from_weight_decay=NO_DECAY, jit_compile=False)


def hardware():
    return (f"{_study_common.cpu_name()}; {os.cpu_count()} cores visible "
            "(shared); no GPU")


def code_commit():
    return _study_common.code_commit(ROOT)


def train(s, settings, data, commit=""):
    """Train one run; return its results row."""
    import keras
    import keras_adamwr
    import numpy as np

    wall0, cpu0 = time.perf_counter(), time.process_time()
    keras.backend.clear_session()
    keras.utils.set_random_seed(s["seed"])
    l2 = s["decay"] if s["optimizer"] in L2 else 0.0
    model = build_model(settings, l2)
    model.compile(make_optimizer(s, settings), metrics=["accuracy"],
                  jit_compile=False,
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    k = settings["train_eval_examples"]
    sets = {"train": (data["x_train"][:k], data["y_train"][:k]),
            "val": (data["x_val"], data["y_val"]),
            "test": (data["x_test"], data["y_test"])}
    errors = {name: [] for name in sets}
    losses = []

    class Evaluate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            for name, (x, y) in sets.items():
                logits = self.model.predict(x, batch_size=2500, verbose=0)
                errors[name].append(float(np.mean(logits.argmax(-1) != y)))
            losses.append(float((logs or {}).get("loss", float("nan"))))

    model.fit(data["x_train"], data["y_train"],
              batch_size=settings["batch_size"], epochs=s["epochs"],
              shuffle=True, verbose=0, callbacks=[Evaluate()])
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    per_epoch = steps_per_epoch(settings)
    if s["optimizer"] in L2:
        kind, raw, schedule = "l2", s["decay"], "cosine"
    else:
        kind = "normalized"
        cycle = (settings["first_cycle_epochs"] if s["optimizer"] in RESTARTS
                 else s["epochs"])
        raw = s["decay"] / math.sqrt(cycle * per_epoch)
        schedule = (f"restarts T0={settings['first_cycle_epochs']}ep "
                    f"Tmul={settings['t_mul']:g}"
                    if s["optimizer"] in RESTARTS else "cosine")
    import tensorflow as tf
    fmt = ";".join
    return {
        "key": run_key(s, settings), "phase": s["phase"],
        "optimizer": s["optimizer"], "lr": s["lr"], "decay": s["decay"],
        "decay_kind": kind, "raw_lambda": f"{raw:.6g}", "epochs": s["epochs"],
        "steps": per_epoch * s["epochs"], "schedule": schedule,
        "batch_size": settings["batch_size"], "seed": s["seed"],
        "data": settings["data"],
        "train_examples": len(data["x_train"]),
        "val_examples": len(data["x_val"]),
        "test_examples": len(data["x_test"]), "train_eval_examples": k,
        "model": model.name, "parameters": model.count_params(),
        "eval_epochs": fmt(str(e + 1) for e in range(s["epochs"])),
        "train_errors": fmt(f"{v:.4f}" for v in errors["train"]),
        "val_errors": fmt(f"{v:.4f}" for v in errors["val"]),
        "test_errors": fmt(f"{v:.4f}" for v in errors["test"]),
        "final_train_error": f"{errors['train'][-1]:.4f}",
        "final_val_error": f"{errors['val'][-1]:.4f}",
        "final_test_error": f"{errors['test'][-1]:.4f}",
        "final_train_loss": f"{losses[-1]:.4f}",
        "wall_seconds": f"{wall:.1f}", "cpu_seconds": f"{cpu:.1f}",
        "images_per_second": f"{len(data['x_train']) * s['epochs'] / wall:.1f}",
        "code_commit": commit,
        "keras_adamwr_version": keras_adamwr.__version__,
        "keras_version": keras.__version__, "backend": keras.backend.backend(),
        "backend_version": tf.__version__,
        "python": platform.python_version(), "hardware": hardware(),
        "threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
    }


def commit_results(results, settings, message, page=PAGE, images=IMAGES):
    """Regenerate the page section and figures from `results`, then `git
    commit` those files only (a report error or a busy git is printed and
    skipped: the runs go on)."""
    paths = [results]
    try:
        sys.path.insert(0, HERE)
        import _study_v3_report
        _study_v3_report.write_section(read_rows(results), settings, page,
                                       images)
        paths += [page] + [os.path.join(images, f"study_v3_{name}.png")
                           for name in _study_v3_report.FIGURES]
    except Exception as error:  # noqa: BLE001 - never stop the study
        print(f"    page not regenerated: {error!r}", flush=True)
    try:
        rel = [os.path.relpath(p, ROOT) for p in paths]
        subprocess.run(["git", "add", "--"] + rel, cwd=ROOT,
                       capture_output=True, timeout=60, check=True)
        subprocess.run(["git", "commit", "-q", "-m", message, "--"] + rel,
                       cwd=ROOT, capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as error:
        print(f"    not committed: {error!r}", flush=True)


def run_study(settings, results, max_runs=None, commit_minutes=None):
    """Run every planned run missing from `results`; return the count.
    Several processes may run this on the same `results` at once: each
    takes the next run no other one has claimed, and waits while the runs
    left are all claimed (a later phase may depend on them)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(settings["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(settings["threads"])
    data = load_data(settings)
    commit = code_commit()
    shared = results_file(results, claims=True)
    count, last_commit = 0, time.time()
    for s, left in shared.claimed_runs(lambda rows: pending(rows, settings),
                                       lambda spec: run_key(spec, settings),
                                       max_runs):
        print(f"[{datetime.datetime.now():%H:%M:%S}] {left} to go: "
              f"{run_key(s, settings)}", flush=True)
        row = train(s, settings, data, commit)
        shared.append(row)
        print(f"    val {row['final_val_error']} test "
              f"{row['final_test_error']} train {row['final_train_error']}, "
              f"{row['cpu_seconds']} cpu-s", flush=True)
        count += 1
        if commit_minutes and time.time() - last_commit > 60 * commit_minutes:
            commit_results(results, settings,
                           f"study v3: {len(shared.rows())} runs in the "
                           "results; page section regenerated")
            last_commit = time.time()
    if commit_minutes and count:
        commit_results(results, settings,
                       f"study v3: {len(shared.rows())} runs in the "
                       "results; page section regenerated")
    return count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plot-only", action="store_true",
                        help="only regenerate the page section and figures")
    parser.add_argument("--quick", action="store_true",
                        help="tiny synthetic runs into a temp folder (CI)")
    parser.add_argument("--results", default=RESULTS)
    parser.add_argument("--page", default=PAGE)
    parser.add_argument("--images", default=IMAGES)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-runs", type=int, default=None)
    parser.add_argument("--commit-minutes", type=float, default=None,
                        help="this often, regenerate the page section and "
                        "git-commit it with the results file (only those "
                        "files)")
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL, threads=args.threads)
    if args.quick:
        args.max_runs = 4 if args.max_runs is None else args.max_runs
        folder = tempfile.mkdtemp(prefix="study-v3-quick-")
        args.results = os.path.join(folder, "study_v3.csv")
        args.page = os.path.join(folder, "reproduction.md")
        args.images = os.path.join(folder, "img")
    if not args.plot_only:
        run_study(settings, args.results, args.max_runs, args.commit_minutes)
    sys.path.insert(0, HERE)
    import _study_v3_report
    _study_v3_report.write_section(read_rows(args.results), settings,
                                   args.page, args.images)
    print(f"wrote {args.page} and figures in {args.images}")


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    main()
