"""Reproduce the paper's four CIFAR-10 claims at CPU scale; resumable.

Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019,
arXiv:1711.05101) claim that (1) with decoupled decay the best learning rate
and weight decay become separable, (2) AdamW generalizes better than Adam
with L2, (3) the normalized decay lambda_norm transfers across budgets and
(4) warm restarts (AdamWR, SGDWR) give good anytime performance. This script
runs the study and writes its section of docs/reproduction.md (the region
between the study-v2 markers, the earlier BatchNorm-CNN study) from its
results, with the original verdicts and a corrected reading.

Every finished run appends one row to the results file (plain CSV, readable
without TensorFlow): its settings, seed, per-epoch test error, wall time,
versions and hardware. Runs already in the file are skipped, so an
interrupted study continues where it stopped. The run list is built in
phases, each using the rows of the phases before (e.g. the seed repeats run
at each optimizer's best grid cell once the grid is complete).

    python examples/reproduce.py              # run (or continue) the study
    python examples/reproduce.py --plot-only  # page + figures from the CSV
    python examples/reproduce.py --quick      # tiny CI run in a temp folder

Adam+L2 and SGD+L2 are the paper's Adam and SGD with momentum (this
package's AdamW / SGDW with `weight_decay=0`) with `lambda' * theta` added to
the gradient through an L2 kernel regularizer; AdamW and SGDW use the same
optimizers with normalized decoupled decay. Biases and BatchNorm parameters
are neither decayed nor L2-penalized.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TF loads

import argparse  # noqa: E402
import datetime  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import _study_common  # noqa: E402  (examples/: the script's folder)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(ROOT, "docs", "data", "reproduction.csv")
PAGE = os.path.join(ROOT, "docs", "reproduction.md")
IMAGES = os.path.join(ROOT, "docs", "img")

# ---------------------------------------------------------------------------
# Settings: everything the study depends on, in one place.
# ---------------------------------------------------------------------------
FULL = dict(
    train_examples=1024,      # the first N CIFAR-10 training images
    test_examples=10000,      # the full test set, evaluated after every epoch
    batch_size=64,
    epochs=7,                 # restarts T_0 = 1, T_mult = 2 end at 1, 3, 7
    first_cycle_epochs=1.0,
    t_mul=2.0,
    widths=(16, 32, 64),      # the small CNN (see build_model)
    # Grid (claim 1): log-spaced around each family's center, 5 learning
    # rates (octaves) x 7 decays (half decades, three decades in all).
    # Centers from the first study (0.3.0, 5 x 5 decays one decade narrower,
    # in git history): its best Adam cells sat at the decay edges, so the
    # decay range now spans 10x more around the new centers.
    lr_center={"adam": 4e-3, "sgd": 0.05},
    lr_factors=(0.25, 0.5, 1.0, 2.0, 4.0),
    decay_center={"adam_l2": 1e-2, "sgd_l2": 1e-3,    # lambda' (L2)
                  "adamw": 0.01, "sgdw": 0.01},       # lambda_norm
    decay_factors=tuple(10 ** (k / 2) for k in range(-3, 4)),
    coarse_lr=(0, 2, 4),      # grid indices run first
    coarse_decay=(0, 3, 6),
    # Seeds (claims 2 and 4): repeats at each optimizer's best cell.
    repeat_seeds=(1, 2, 3, 4, 5),
    curve_epochs=(1, 2, 3, 4, 5, 6, 7),  # shown in the tables (all are kept)
    repeat_optimizers=("adam_l2", "adamw", "adamwr", "sgd_l2", "sgdw",
                       "sgdwr"),
    # Budgets (claim 3): AdamW at its best learning rate; 3 to 31 epochs
    # (48 to 496 updates, 10x).
    budgets=(3, 7, 15, 31),
    # lambda_norm of the budget runs: the grid's and two half decades more
    # (the 31-epoch runs had their best value on the grid's upper edge).
    budget_decay_factors=tuple(10 ** (k / 2) for k in range(-3, 6)),
    grid_seed=0,
    grid_optimizers=("adam_l2", "adamw", "sgd_l2", "sgdw"),
)
# --quick (CI): every code path, 5 tiny runs.
QUICK = dict(FULL, train_examples=128, test_examples=500, epochs=3,
             widths=(4, 8, 8), lr_factors=(1.0,), decay_factors=(1.0,),
             coarse_lr=(0,), coarse_decay=(0,), repeat_seeds=(1,),
             budgets=(1, 3), budget_decay_factors=(1.0,),
             curve_epochs=(1, 2, 3),
             grid_optimizers=("adam_l2", "adamw"),
             repeat_optimizers=("adam_l2", "adamwr"))

GRID_OPTIMIZERS = ("adam_l2", "adamw", "sgd_l2", "sgdw")
L2 = ("adam_l2", "sgd_l2")
RESTARTS = {"adamwr": "adamw", "sgdwr": "sgdw"}  # restart run -> its cell
NO_DECAY = ["gamma", "beta", "bias"]  # BatchNorm scale/offset and biases

FIELDS = [
    "key", "phase", "optimizer", "lr", "decay", "decay_kind", "raw_lambda",
    "epochs", "steps", "train_examples", "test_examples", "batch_size",
    "seed", "model", "parameters", "eval_epochs", "test_errors",
    "final_test_error", "anytime_epochs", "anytime_errors", "wall_seconds",
    "images_per_second", "keras_adamwr_version", "keras_version",
    "backend_version", "backend", "python", "hardware", "threads", "date"]


def family(optimizer):
    return "adam" if optimizer.startswith("adam") else "sgd"


def grid_values(settings, optimizer):
    """(learning rates, decays) of the grid of a grid optimizer."""
    lrs = [settings["lr_center"][family(optimizer)] * f
           for f in settings["lr_factors"]]
    decays = [settings["decay_center"][optimizer] * f
              for f in settings["decay_factors"]]
    return [float(f"{v:.4g}") for v in lrs], [float(f"{v:.4g}") for v in decays]


def budget_decays(settings):
    """The lambda_norm values of the budget runs (AdamW)."""
    return [float(f"{settings['decay_center']['adamw'] * f:.4g}")
            for f in settings["budget_decay_factors"]]


def run_key(spec, settings):
    return (f"{spec['optimizer']}|lr={spec['lr']:g}|decay={spec['decay']:g}"
            f"|ep={spec['epochs']}|n={settings['train_examples']}"
            f"|b={settings['batch_size']}|w={'-'.join(map(str, settings['widths']))}"
            f"|eval=every|seed={spec['seed']}")


# ---------------------------------------------------------------------------
# Results file
# ---------------------------------------------------------------------------
def read_rows(path):
    """The rows of the results file as dicts with numbers parsed."""
    return results_file(path).rows()


def append_row(path, row):
    results_file(path).append(row)


def results_file(path, claims=None):
    """The results CSV as a shared `_study_common.Results` (`claims`: the
    folder for parallel workers' claims, or None)."""
    return _study_common.Results(
        path, FIELDS,
        floats=("lr", "decay", "raw_lambda", "final_test_error",
                "wall_seconds", "images_per_second"),
        ints=("epochs", "steps", "train_examples", "seed", "test_examples",
              "batch_size", "parameters"),
        lists=("eval_epochs", "anytime_epochs", "test_errors",
               "anytime_errors"), claims=claims)


# ---------------------------------------------------------------------------
# The plan: phases, each built from the rows of the phases before.
# ---------------------------------------------------------------------------
def grid_specs(settings, indices):
    specs = []
    for i in indices["lr"]:
        for optimizer in settings["grid_optimizers"]:
            lrs, decays = grid_values(settings, optimizer)
            for j in indices["decay"]:
                specs.append(dict(phase="grid", optimizer=optimizer, lr=lrs[i],
                                  decay=decays[j], epochs=settings["epochs"],
                                  seed=settings["grid_seed"]))
    return specs


def grid_phase(settings):
    """(coarse grid runs, the other grid runs)."""
    n, m = len(settings["lr_factors"]), len(settings["decay_factors"])
    specs = grid_specs(settings, dict(
        lr=[i for i in settings["coarse_lr"] if i < n],
        decay=[j for j in settings["coarse_decay"] if j < m]))
    rest = grid_specs(settings, dict(lr=range(n), decay=range(m)))
    keys = {run_key(s, settings) for s in specs}
    return specs, [s for s in rest if run_key(s, settings) not in keys]


def grid_table(rows, settings, optimizer, epochs=None, seed=None):
    """{(lr, decay): final error} of an optimizer's grid rows."""
    epochs = settings["epochs"] if epochs is None else epochs
    seed = settings["grid_seed"] if seed is None else seed
    table = {}
    for row in rows:
        if (row["optimizer"] == optimizer and row["epochs"] == epochs
                and row["seed"] == seed and row["phase"] in ("grid", "budget")
                and row["train_examples"] == settings["train_examples"]):
            table[(row["lr"], row["decay"])] = row["final_test_error"]
    return table


def best_cell(rows, settings, optimizer, specs=None):
    """The (lr, decay) of the lowest seed-0 error, among `specs`' cells
    (default: the whole grid)."""
    table = grid_table(rows, settings, optimizer)
    if specs is None:
        specs = sum(grid_phase(settings), [])
    cells = {(s["lr"], s["decay"]) for s in specs
             if s["optimizer"] == optimizer}
    table = {cell: v for cell, v in table.items() if cell in cells}
    return min(table, key=table.get)


def _pending(specs, rows, settings):
    done = {row["key"] for row in rows}
    return [s for s in specs if run_key(s, settings) not in done]


def repeat_cells(rows, settings):
    """{optimizer: (lr, decay)} of the repeats: the best cell of the full
    grid once it is complete, before that of the coarse grid."""
    coarse, fine = grid_phase(settings)
    if _pending(coarse, rows, settings):
        return None
    full = not _pending(fine, rows, settings)
    return {opt: best_cell(rows, settings, opt, None if full else coarse)
            for opt in settings["grid_optimizers"]}


def _repeats_and_budgets(best, settings):
    specs = []
    for seed in settings["repeat_seeds"]:
        for optimizer in settings["repeat_optimizers"]:
            lr, decay = best[RESTARTS.get(optimizer, optimizer)]
            specs.append(dict(phase="repeat", optimizer=optimizer, lr=lr,
                              decay=decay, epochs=settings["epochs"],
                              seed=seed))
    for epochs in settings["budgets"]:
        for decay in budget_decays(settings):
            specs.append(dict(phase="budget", optimizer="adamw",
                              lr=best["adamw"][0], decay=decay, epochs=epochs,
                              seed=settings["grid_seed"]))
    return specs


def plan(rows, settings):
    """The runs of the study, in order; later phases need earlier rows.

    Coarse grid; then the seed repeats and the budget runs at the coarse
    grid's best cells (so every claim has data early); then the rest of the
    grid; then repeats and budgets at the full grid's best cells where
    those differ.
    """
    coarse, fine = grid_phase(settings)
    specs = list(coarse)
    if not _pending(coarse, rows, settings):
        best = {opt: best_cell(rows, settings, opt, coarse)
                for opt in settings["grid_optimizers"]}
        specs += _repeats_and_budgets(best, settings)
    specs += fine
    if not _pending(coarse + fine, rows, settings):
        best = {opt: best_cell(rows, settings, opt)
                for opt in settings["grid_optimizers"]}
        specs += _repeats_and_budgets(best, settings)
    unique, seen = [], set()  # e.g. a 7-epoch budget run is a grid run
    for spec in specs:
        key = run_key(spec, settings)
        if key not in seen:
            seen.add(key)
            unique.append(spec)
    return unique


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------
def load_data(settings):
    """(x_train, y_train, x_test, y_test) as normalized float32 arrays."""
    import numpy as np
    import tensorflow_datasets as tfds

    builder = tfds.builder("cifar10")
    if not builder.is_prepared():
        raise SystemExit(f"error: no prepared cifar10 in {builder.data_dir}; "
                         "set TFDS_DATA_DIR (nothing is downloaded)")
    mean = np.array([0.4914, 0.4822, 0.4465], "float32")
    std = np.array([0.2470, 0.2435, 0.2616], "float32")
    arrays = []
    for split, count in (("train", settings["train_examples"]),
                         ("test", settings["test_examples"])):
        data = builder.as_dataset(split=f"{split}[:{count}]",
                                  as_supervised=True, batch_size=-1)
        x, y = tfds.as_numpy(data)
        arrays += [((x.astype("float32") / 255.0) - mean) / std,
                   y.astype("int32")]
    return tuple(arrays)


def build_model(settings, l2, seed):
    """Small CNN: flip, 3 x (conv3x3-BN-ReLU-maxpool), global pool, dense.

    `l2` is the paper's lambda' (the gradient gains lambda' * theta on conv
    and dense kernels): keras' L2(c) adds c * sum(w**2), hence c = l2 / 2.
    """
    import keras
    from keras import layers

    regularizer = keras.regularizers.L2(l2 / 2) if l2 else None
    inputs = keras.Input((32, 32, 3))
    x = layers.RandomFlip("horizontal", seed=seed)(inputs)
    for width in settings["widths"]:
        x = layers.Conv2D(width, 3, padding="same", use_bias=False,
                          kernel_initializer="he_normal",
                          kernel_regularizer=regularizer)(x)
        x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, kernel_regularizer=regularizer)(x)
    name = "small_cnn_" + "-".join(map(str, settings["widths"]))
    return keras.Model(inputs, outputs, name=name)


def make_optimizer(spec, settings, steps_per_epoch):
    """The run's optimizer; XLA off (on 1 CPU thread it only adds compile time)."""
    import keras
    import keras_adamwr

    total = steps_per_epoch * spec["epochs"]
    lr = spec["lr"]
    if spec["optimizer"] in RESTARTS:
        cls = (keras_adamwr.AdamWR if spec["optimizer"] == "adamwr"
               else keras_adamwr.SGDWR)
        return cls(learning_rate=lr, t_mul=settings["t_mul"],
                   first_cycle_steps=round(settings["first_cycle_epochs"]
                                           * steps_per_epoch),
                   normalized_weight_decay=spec["decay"],
                   exclude_from_weight_decay=NO_DECAY, jit_compile=False)
    schedule = keras.optimizers.schedules.CosineDecay(lr, total)
    cls = (keras_adamwr.AdamW if family(spec["optimizer"]) == "adam"
           else keras_adamwr.SGDW)
    if spec["optimizer"] in L2:  # the paper's Adam / SGD; L2 is in the model
        return cls(learning_rate=schedule, base_learning_rate=lr,
                   weight_decay=0.0, jit_compile=False)
    return cls(learning_rate=schedule, base_learning_rate=lr,
               total_steps=total, normalized_weight_decay=spec["decay"],
               exclude_from_weight_decay=NO_DECAY, jit_compile=False)


def hardware():
    cpu = _study_common.cpu_name()
    import keras
    devices = []
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        devices = [d.device_type for d in tf.config.list_logical_devices()]
    gpu = "GPU" if "GPU" in devices else "no GPU"
    return f"{cpu}; {os.cpu_count()} cores visible (shared); {gpu}"


def train(spec, settings, data, anytime_root):
    """Train one run; return its results row."""
    import keras
    import keras_adamwr

    x_train, y_train, x_test, y_test = data
    start = time.perf_counter()
    keras.backend.clear_session()
    keras.utils.set_random_seed(spec["seed"])
    l2 = spec["decay"] if spec["optimizer"] in L2 else 0.0
    model = build_model(settings, l2, spec["seed"])
    steps_per_epoch = math.ceil(len(x_train) / settings["batch_size"])
    optimizer = make_optimizer(spec, settings, steps_per_epoch)
    model.compile(optimizer, metrics=["accuracy"], jit_compile=False,
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    epochs = spec["epochs"]
    eval_epochs = list(range(1, epochs + 1))  # every epoch, every run
    errors = {}
    callbacks = []
    recorder = None
    if spec["optimizer"] in RESTARTS:
        key = run_key(spec, settings).replace("|", "_").replace("=", "")
        log_dir = os.path.join(anytime_root, f"{key}-{time.time_ns()}")
        recorder = keras_adamwr.AnytimeRecorder(
            (x_test, y_test), log_dir=log_dir, verbose=0,
            evaluate_kwargs={"batch_size": 1000})
        callbacks.append(recorder)

    class Evaluate(keras.callbacks.Callback):
        """Test error at the chosen epoch ends (reuses the recorder's)."""

        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 not in eval_epochs:
                return
            rows = getattr(recorder, "records", [])
            if rows and abs(rows[-1]["epoch"] - (epoch + 1)) < 1e-6:
                errors[epoch + 1] = 1.0 - rows[-1]["val_accuracy"]
                return
            result = self.model.evaluate(x_test, y_test, batch_size=1000,
                                         verbose=0, return_dict=True)
            errors[epoch + 1] = 1.0 - result["accuracy"]

    callbacks.append(Evaluate())
    model.fit(x_train, y_train, batch_size=settings["batch_size"],
              epochs=epochs, shuffle=True, verbose=0, callbacks=callbacks)
    wall = time.perf_counter() - start
    anytime = getattr(recorder, "records", None) or []
    if spec["optimizer"] in L2:
        kind, raw = "l2", spec["decay"]
    else:
        kind = "normalized"
        cycle = (settings["first_cycle_epochs"] if spec["optimizer"] in RESTARTS
                 else epochs)  # lambda of the first cycle / the run
        raw = spec["decay"] / math.sqrt(cycle * steps_per_epoch)
    backend = keras.backend.backend()
    backend_module = __import__(backend)
    import tensorflow as tf
    return {
        "key": run_key(spec, settings), "phase": spec["phase"],
        "optimizer": spec["optimizer"], "lr": spec["lr"],
        "decay": spec["decay"], "decay_kind": kind, "raw_lambda": f"{raw:.6g}",
        "epochs": epochs, "steps": steps_per_epoch * epochs,
        "train_examples": len(x_train), "test_examples": len(x_test),
        "batch_size": settings["batch_size"], "seed": spec["seed"],
        "model": model.name, "parameters": model.count_params(),
        "eval_epochs": ";".join(str(e) for e in sorted(errors)),
        "test_errors": ";".join(f"{errors[e]:.4f}" for e in sorted(errors)),
        "final_test_error": f"{errors[epochs]:.4f}",
        "anytime_epochs": ";".join(f"{r['epoch']:g}" for r in anytime),
        "anytime_errors": ";".join(f"{1 - r['val_accuracy']:.4f}"
                                   for r in anytime),
        "wall_seconds": f"{wall:.1f}",
        "images_per_second": f"{len(x_train) * epochs / wall:.1f}",
        "keras_adamwr_version": keras_adamwr.__version__,
        "keras_version": keras.__version__,
        "backend_version": getattr(backend_module, "__version__", ""),
        "backend": backend, "python": platform.python_version(),
        "hardware": hardware(),
        "threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
    }


def run_study(settings, results, anytime_root, max_runs=None, claims=None):
    """Run every planned run missing from `results`; return the count.

    With `claims` (a folder), several processes can share one results file:
    each run is claimed first, and a worker with nothing left to claim waits
    for the others (a later phase may depend on their rows).
    """
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(settings["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(settings["threads"])
    data = load_data(settings)
    shared = results_file(results, claims)
    count = 0

    def pending(rows):
        done = {row["key"] for row in rows}
        return [s for s in plan(rows, settings)
                if run_key(s, settings) not in done]

    for spec, left in shared.claimed_runs(
            pending, lambda s: run_key(s, settings), max_runs):
        print(f"[{datetime.datetime.now():%H:%M:%S}] {left} to go: "
              f"{run_key(spec, settings)}", flush=True)
        row = train(spec, settings, data, anytime_root)
        shared.append(row)
        print(f"    error {row['final_test_error']}, {row['wall_seconds']} s",
              flush=True)
        count += 1
    return count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plot-only", action="store_true",
                        help="only regenerate the page and figures")
    parser.add_argument("--quick", action="store_true",
                        help="tiny runs into a temporary folder (CI)")
    parser.add_argument("--results", default=RESULTS,
                        help="results CSV (default: %(default)s)")
    parser.add_argument("--page", default=PAGE)
    parser.add_argument("--images", default=IMAGES)
    parser.add_argument("--anytime-dir", default=None,
                        help="AnytimeRecorder logs (default: a temp folder)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-runs", type=int, default=None)
    parser.add_argument("--claims", default=None,
                        help="folder for run claims, to run several "
                        "workers on one results file")
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL, threads=args.threads)
    if args.quick:
        folder = tempfile.mkdtemp(prefix="reproduce-quick-")
        args.results = os.path.join(folder, "reproduction.csv")
        args.page = os.path.join(folder, "reproduction.md")
        args.images = os.path.join(folder, "img")
    anytime_root = args.anytime_dir or tempfile.mkdtemp(prefix="anytime-")
    if not args.plot_only:
        run_study(settings, args.results, anytime_root, args.max_runs,
                  args.claims)
    import _reproduce_report
    _reproduce_report.write_page(read_rows(args.results), settings, args.page,
                       args.images)
    print(f"wrote {args.page} and figures in {args.images}")


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    main()
