"""The paper-scale CIFAR-10 protocol, for a GPU (Keras on JAX); resumable.

A pre-activation ResNet-20 on all of CIFAR-10 at 32x32 (45,000 training
images, 5,000 held out for validation, the 10,000 test images), standard
augmentation (random crop of the 4-pixel zero-padded image, horizontal
flip), batch 128, the paper's budgets. Six optimizers from keras_adamwr:
Adam+L2, AdamW, SGD+L2, SGDW (one cosine decay over the run) and AdamWR,
SGDWR (warm restarts, T_0 = 10 epochs, T_mult = 2). Phases:

1. grid: each of Adam+L2, AdamW, SGD+L2, SGDW over 4 learning rates x 4
   decays at 100 epochs, seed 0 (claims 1 and 2);
2. once the grid is complete, at each optimizer's best cell by *validation*
   error after the last epoch (the test set is only reported):
   budgets: AdamW and SGDW at their best learning rate, every grid decay,
   25, 50 and 200 epochs (claim 3; 100 is the grid); restarts: AdamWR and
   SGDWR at AdamW's / SGDW's best cell for 150 epochs (cycles end at 10, 30,
   70, 150; claim 4); repeats: all six optimizers, seeds 1 and 2.

Every finished run appends one row to the CSV: settings, train (first
10,000 training images, inference mode), validation and test error after
every epoch, wall time, images/s, versions, hardware and device. Runs
already in the CSV are skipped. Nothing here imports TensorFlow except
`--convert`, which writes the .npz the runs read.

    python examples/reproduce_gpu.py --convert cifar10.npz   # where TFDS is
    python examples/reproduce_gpu.py --plan                  # runs, GPU-hours
    KERAS_BACKEND=jax python examples/reproduce_gpu.py --data cifar10.npz
    KERAS_BACKEND=jax python examples/reproduce_gpu.py --quick   # CI, CPU
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import argparse  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import _study_common  # noqa: E402  (examples/: the script's folder)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
RESULTS = os.path.join(ROOT, "docs", "data", "reproduction_gpu.csv")
SMALL = "/work/shared/data/cifar10_small.npz"

FULL = dict(
    train_examples=45000, val_examples=5000, test_examples=10000,
    train_eval_examples=10000,   # train error: the first 10,000, no augmentation
    batch_size=128, eval_batch_size=1000, jit_compile=True,
    blocks=3, width=16,          # pre-activation ResNet-20, 0.27M parameters
    epochs=100,                  # the grid's budget
    first_cycle_epochs=10.0, t_mul=2.0, restart_epochs=150,
    lr_center={"adam": 1e-3, "sgd": 0.05},
    lr_factors=(0.5, 1.0, 2.0, 4.0),                      # octaves
    decay_center={"adam_l2": 5e-4, "sgd_l2": 5e-4,        # lambda' (L2)
                  "adamw": 0.025, "sgdw": 0.025},         # lambda_norm
    decay_factors=tuple(10 ** (k / 2) for k in range(-2, 2)),  # half decades
    grid_optimizers=("adam_l2", "adamw", "sgd_l2", "sgdw"),
    budgets=(25, 50, 200), budget_optimizers=("adamw", "sgdw"),
    restart_optimizers=("adamwr", "sgdwr"),
    repeat_seeds=(1, 2),
    repeat_optimizers=("adam_l2", "adamw", "sgd_l2", "sgdw", "adamwr",
                       "sgdwr"),
    grid_seed=0,
)
# --quick (CI, CPU): every phase and code path, 5 tiny runs.
QUICK = dict(FULL, train_examples=384, val_examples=128, test_examples=128,
             train_eval_examples=128, eval_batch_size=128, blocks=1, width=4,
             epochs=2, first_cycle_epochs=1.0, restart_epochs=3,
             lr_factors=(1.0,), decay_factors=(1.0,),
             grid_optimizers=("adam_l2", "adamw"), budgets=(1,),
             budget_optimizers=("adamw",), restart_optimizers=("adamwr",),
             repeat_seeds=(1,), repeat_optimizers=("adamw",))

RESTARTS = {"adamwr": "adamw", "sgdwr": "sgdw"}
L2 = ("adam_l2", "sgd_l2")
# An assumption until this file has GPU rows (then --plan uses theirs).
ASSUMED_GPU_IMAGES_PER_SECOND = 15000

# The columns of examples/study_v3.py (the CPU study v3), then the device,
# the compile mode and the data's checksum. Lists are ";"-separated.
FIELDS = _study_common.FIELDS + ["device", "jit_compile", "data_sha256"]
FLOATS, INTS, LISTS = (_study_common.FLOATS, _study_common.INTS,
                       _study_common.LISTS)


def family(optimizer):
    return "adam" if optimizer.startswith("adam") else "sgd"


def grid_values(settings, optimizer):
    """(learning rates, decays) of an optimizer's grid, 4 significant digits."""
    lrs = [settings["lr_center"][family(optimizer)] * f
           for f in settings["lr_factors"]]
    decays = [settings["decay_center"][optimizer] * f
              for f in settings["decay_factors"]]
    return [float(f"{v:.4g}") for v in lrs], [float(f"{v:.4g}") for v in decays]


def run_key(spec, settings):
    """What identifies a run: a row with this key is not run again."""
    return (f"{spec['optimizer']}|lr={spec['lr']:g}|decay={spec['decay']:g}"
            f"|ep={spec['epochs']}|n={settings['train_examples']}"
            f"|val={settings['val_examples']}|b={settings['batch_size']}"
            f"|resnet{6 * settings['blocks'] + 2}w{settings['width']}"
            f"|aug=crop4flip|seed={spec['seed']}")


# ---------------------------------------------------------------------------
# Results file
# ---------------------------------------------------------------------------
def read_rows(path):
    """The rows of the results CSV as dicts, numbers and lists parsed."""
    return _results(path).rows()


def append_row(path, row):
    """Append one row (header first in a new file), flushed to disk."""
    _results(path).append(row)


def _results(path):
    return _study_common.Results(path, FIELDS, FLOATS, INTS, LISTS)


# ---------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------
def grid_specs(settings):
    specs = []
    for i in range(len(settings["lr_factors"])):
        for optimizer in settings["grid_optimizers"]:
            lrs, decays = grid_values(settings, optimizer)
            for decay in decays:
                specs.append(dict(phase="grid", optimizer=optimizer,
                                  lr=lrs[i], decay=decay,
                                  epochs=settings["epochs"],
                                  seed=settings["grid_seed"]))
    return specs


def best_cells(rows, settings):
    """{optimizer: (lr, decay)}: the grid cell of lowest final *validation*
    error (seed 0); None while some grid run is missing."""
    keys = {row["key"]: row for row in rows}
    best = {}
    for optimizer in settings["grid_optimizers"]:
        cells = [s for s in grid_specs(settings) if s["optimizer"] == optimizer]
        found = [keys.get(run_key(s, settings)) for s in cells]
        if any(row is None for row in found):
            return None
        row = min(found, key=lambda r: (r["final_val_error"], r["lr"],
                                        r["decay"]))
        best[optimizer] = (row["lr"], row["decay"])
    return best


def later_specs(best, settings):
    """Budgets, restarts and repeats at the grid's best cells `best`."""
    specs = []
    for optimizer in settings["budget_optimizers"]:
        lr = best[optimizer][0]
        for epochs in settings["budgets"]:
            for decay in grid_values(settings, optimizer)[1]:
                specs.append(dict(phase="budget", optimizer=optimizer, lr=lr,
                                  decay=decay, epochs=epochs,
                                  seed=settings["grid_seed"]))
    for optimizer in settings["restart_optimizers"]:
        lr, decay = best[RESTARTS[optimizer]]
        specs.append(dict(phase="restart", optimizer=optimizer, lr=lr,
                          decay=decay, epochs=settings["restart_epochs"],
                          seed=settings["grid_seed"]))
    for seed in settings["repeat_seeds"]:
        for optimizer in settings["repeat_optimizers"]:
            lr, decay = best[RESTARTS.get(optimizer, optimizer)]
            epochs = (settings["restart_epochs"] if optimizer in RESTARTS
                      else settings["epochs"])
            specs.append(dict(phase="repeat", optimizer=optimizer, lr=lr,
                              decay=decay, epochs=epochs, seed=seed))
    return specs


def plan(rows, settings, assume_grid_done=False):
    """The runs of the study in order, without duplicates.

    The grid; then, once it is complete, the runs at its best cells. With
    `assume_grid_done`, a missing grid stands in with its first cells (for
    counting runs and hours: the count does not depend on which cells win).
    """
    specs = grid_specs(settings)
    best = best_cells(rows, settings)
    if best is None and assume_grid_done:
        best = {opt: (grid_values(settings, opt)[0][0],
                      grid_values(settings, opt)[1][0])
                for opt in settings["grid_optimizers"]}
    if best is not None:
        specs += later_specs(best, settings)
    unique, seen = [], set()  # a 100-epoch budget run is a grid run
    for spec in specs:
        key = run_key(spec, settings)
        if key not in seen:
            seen.add(key)
            unique.append(spec)
    return unique


def pending(rows, settings):
    done = {row["key"] for row in rows}
    return [s for s in plan(rows, settings) if run_key(s, settings) not in done]


def measured_speed(rows):
    """Median images/s of the GPU rows in `rows`, or None."""
    speeds = [row["images_per_second"] for row in rows
              if row.get("device", "cpu").startswith("gpu")
              and row["images_per_second"]]
    return statistics.median(speeds) if speeds else None


def plan_epochs(settings):
    """Training epochs of the whole plan (every phase, nothing done)."""
    return sum(s["epochs"] for s in plan([], settings, assume_grid_done=True))


def epoch_images(settings):
    """Training images of one epoch plus its evaluation (train subset,
    validation, test), an inference image counted as a third of a training
    image (forward only, against forward and backward)."""
    evaluated = (settings["train_eval_examples"] + settings["val_examples"]
                 + settings["test_examples"])
    return settings["train_examples"] + evaluated / 3


def plan_text(rows, settings, images_per_second=None):
    """The --plan report: runs and epochs per phase, done and to do, and the
    GPU-hours they take at `images_per_second` (measured rows win)."""
    done = {row["key"] for row in rows}
    specs = plan(rows, settings, assume_grid_done=True)
    measured = measured_speed(rows)
    speed = measured or images_per_second or ASSUMED_GPU_IMAGES_PER_SECOND
    source = ("median of this file's GPU rows" if measured else
              "given with --images-per-second" if images_per_second else
              "assumed, not measured: see docs/reproduction_gpu.md")
    lines = [f"{'phase':8} {'runs':>5} {'done':>5} {'epochs to do':>13} "
             f"{'GPU-hours to do':>16}"]
    total_epochs = total_hours = 0.0
    for phase in ("grid", "budget", "restart", "repeat"):
        these = [s for s in specs if s["phase"] == phase]
        todo = [s for s in these if run_key(s, settings) not in done]
        epochs = sum(s["epochs"] for s in todo)
        hours = epochs * epoch_images(settings) / speed / 3600
        total_epochs += epochs
        total_hours += hours
        lines.append(f"{phase:8} {len(these):5d} {len(these) - len(todo):5d} "
                     f"{epochs:13.0f} {hours:16.1f}")
    lines.append(f"{'total':8} {len(specs):5d} "
                 f"{sum(run_key(s, settings) in done for s in specs):5d} "
                 f"{total_epochs:13.0f} {total_hours:16.1f}")
    lines.append(f"at {speed:,.0f} training images/s ({source}); the "
                 "evaluation after every epoch counted as a third of a "
                 "training image per image")
    import _gpu_run

    ends = _gpu_run.cycle_ends(settings, settings["restart_epochs"])
    lines.append("warm restarts: cycles end after epochs "
                 + ", ".join(f"{e:g}" for e in ends))
    if best_cells(rows, settings) is None:
        lines.append("phases after the grid run at its best cells "
                     "(by validation error) once the grid is complete")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------
def file_sha256(paths):
    """SHA-256 of the bytes of the files `paths`, one after the other."""
    digest = hashlib.sha256()
    for path in [paths] if isinstance(paths, str) else paths:
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def code_commit():
    """The checkout's commit (12 digits), or "" where git cannot tell."""
    return _study_common.code_commit(ROOT)


def result_row(spec, settings, result, extra):
    """The CSV row of a finished run (`result`: what `_gpu_run.train` gives)."""
    import keras
    import keras_adamwr

    import _gpu_run

    epochs, errors = spec["epochs"], result["errors"]
    steps_per_epoch = result["steps_per_epoch"]
    if spec["optimizer"] in L2:
        kind, raw, schedule = "l2", spec["decay"], "cosine"
    else:
        kind = "normalized"
        cycle = (settings["first_cycle_epochs"] if spec["optimizer"] in RESTARTS
                 else epochs)  # lambda of the first cycle / of the run
        raw = spec["decay"] / math.sqrt(cycle * steps_per_epoch)
        schedule = (f"restarts T0={settings['first_cycle_epochs']}ep "
                    f"Tmul={settings['t_mul']:g}"
                    if spec["optimizer"] in RESTARTS else "cosine")
    backend = keras.backend.backend()
    wall = result["wall_seconds"]

    def joined(values):
        return ";".join(f"{v:.4f}" for v in values)

    return {
        "key": run_key(spec, settings), "phase": spec["phase"],
        "optimizer": spec["optimizer"], "lr": spec["lr"],
        "decay": spec["decay"], "decay_kind": kind, "raw_lambda": f"{raw:.6g}",
        "epochs": epochs, "steps": steps_per_epoch * epochs,
        "schedule": schedule, "batch_size": settings["batch_size"],
        "seed": spec["seed"], "data": extra["data"],
        "train_examples": settings["train_examples"],
        "val_examples": settings["val_examples"],
        "test_examples": settings["test_examples"],
        "train_eval_examples": settings["train_eval_examples"],
        "model": result["model"], "parameters": result["parameters"],
        "eval_epochs": ";".join(str(e) for e in range(1, epochs + 1)),
        "train_errors": joined(errors["train"]),
        "val_errors": joined(errors["val"]),
        "test_errors": joined(errors["test"]),
        "final_train_error": f"{errors['train'][-1]:.4f}",
        "final_val_error": f"{errors['val'][-1]:.4f}",
        "final_test_error": f"{errors['test'][-1]:.4f}",
        "final_train_loss": f"{result['final_train_loss']:.4f}",
        "wall_seconds": f"{wall:.1f}",
        "cpu_seconds": f"{result['cpu_seconds']:.1f}",
        "images_per_second":
            f"{settings['train_examples'] * epochs / wall:.1f}",
        "code_commit": extra["code_commit"],
        "keras_adamwr_version": keras_adamwr.__version__,
        "keras_version": keras.__version__, "backend": backend,
        "backend_version": getattr(__import__(backend), "__version__", ""),
        "python": platform.python_version(),
        "hardware": _gpu_run.hardware(), "threads": extra["threads"] or "",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
        "device": _gpu_run.device(), "jit_compile": settings["jit_compile"],
        "data_sha256": extra["data_sha256"],
    }


def run_study(settings, results, data_path, max_runs=None, threads=None,
              log=print):
    """Run the planned runs missing from `results`; return how many ran."""
    import _gpu_run

    data = _gpu_run.load_npz(data_path, settings)
    names = [os.path.basename(p) for p in data_path]
    extra = {"threads": threads, "data_sha256": file_sha256(data_path),
             "code_commit": code_commit(),
             "data": ("cifar10_small" if names == [os.path.basename(SMALL)]
                      else "synthetic" if names == ["synthetic.npz"]
                      else "cifar10_32x32")}
    count = 0
    shared = _results(results)
    for spec, left in shared.claimed_runs(
            lambda rows: pending(rows, settings),
            lambda s: run_key(s, settings), max_runs):
        log(f"[{datetime.datetime.now():%H:%M:%S}] {left} to go: "
            f"{run_key(spec, settings)}")
        result = _gpu_run.train(spec, settings, data)
        row = result_row(spec, settings, result, extra)
        shared.append(row)
        log(f"    val {row['final_val_error']}, test "
            f"{row['final_test_error']}, {row['wall_seconds']} s, "
            f"{row['images_per_second']} images/s")
        count += 1
    return count


def convert(path, data_dir=None, shard_mb=None):
    """Write CIFAR-10 from TensorFlow Datasets (no download) to `path`, or,
    with `shard_mb`, to `path` with `-1-of-K` ... before `.npz`: K files of
    at most `shard_mb` MiB each, every array cut into K contiguous pieces
    (pass all of them to --data, in order). Returns the files written."""
    import numpy as np
    import tensorflow_datasets as tfds

    builder = tfds.builder("cifar10", data_dir=data_dir)
    if not builder.is_prepared():
        raise SystemExit(f"error: no prepared cifar10 in {builder.data_dir}; "
                         "pass --tfds-dir or set TFDS_DATA_DIR (nothing is "
                         "downloaded)")
    arrays = {}
    for split in ("train", "test"):
        x, y = tfds.as_numpy(builder.as_dataset(
            split=split, as_supervised=True, batch_size=-1))
        arrays[f"x_{split}"] = x.astype("uint8")
        arrays[f"y_{split}"] = y.astype("uint8")
    size = sum(a.nbytes for a in arrays.values())
    count = 1 if shard_mb is None else math.ceil(size / (shard_mb * 2**20 - 2**16))
    if count == 1:
        np.savez(path, **arrays)
        return [path]
    stem = path[:-4] if path.endswith(".npz") else path
    paths = []
    for i in range(count):
        shard = {name: np.array_split(a, count)[i] for name, a in arrays.items()}
        paths.append(f"{stem}-{i + 1}-of-{count}.npz")
        np.savez(paths[-1], **shard)
    return paths


def synthetic_npz(path, settings, seed=0):
    """A random .npz of the right shapes (when no CIFAR-10 file is at hand)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = settings["train_examples"] + settings["val_examples"]
    m = settings["test_examples"]
    np.savez(path, x_train=rng.integers(0, 256, (n, 32, 32, 3), "uint8"),
             y_train=rng.integers(0, 10, n, "uint8"),
             x_test=rng.integers(0, 256, (m, 32, 32, 3), "uint8"),
             y_test=rng.integers(0, 10, m, "uint8"))
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=None,
                        help="CIFAR-10 .npz (x_train, y_train, x_test, "
                        "y_test), or its shards in order")
    parser.add_argument("--results", default=None,
                        help=f"results CSV (default: {RESULTS}; --quick: a "
                        "temporary folder)")
    parser.add_argument("--quick", action="store_true",
                        help="5 tiny runs on CPU (CI); data: --data, else "
                        f"{SMALL}, else random images")
    parser.add_argument("--plan", action="store_true",
                        help="print the planned runs and GPU-hours; run nothing")
    parser.add_argument("--images-per-second", type=float, default=None,
                        help="training speed for --plan's hours (default: "
                        "the CSV's GPU rows, else "
                        f"{ASSUMED_GPU_IMAGES_PER_SECOND:,}, an assumption)")
    parser.add_argument("--max-runs", type=int, default=None,
                        help="stop after this many runs (rerun to continue)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for XLA (CPU runs; default: all)")
    parser.add_argument("--speed", type=int, default=None, metavar="STEPS",
                        help="time STEPS training steps of the full model "
                        "on random images (after as many to compile); print "
                        "images/s and XLA's FLOPs per image; run nothing else")
    parser.add_argument("--convert", metavar="NPZ", default=None,
                        help="write CIFAR-10 from TFDS to NPZ and exit "
                        "(needs TensorFlow Datasets; reads TFDS_DATA_DIR)")
    parser.add_argument("--shard-mb", type=float, default=None,
                        help="with --convert: files of at most this many MiB")
    parser.add_argument("--tfds-dir", default=None)
    args = parser.parse_args(argv)
    if args.max_runs is not None and args.max_runs < 0:
        parser.error(f"--max-runs must be >= 0; received {args.max_runs}")
    if args.convert:
        for path in convert(args.convert, args.tfds_dir, args.shard_mb):
            print(f"wrote {path} ({os.path.getsize(path) / 2**20:.1f} MiB)")
        return 0
    settings = QUICK if args.quick else FULL
    results = args.results
    if args.quick and results is None:
        results = os.path.join(tempfile.mkdtemp(prefix="reproduce-gpu-quick-"),
                               "results.csv")
    results = results or RESULTS
    if args.plan:
        print(plan_text(read_rows(results), settings, args.images_per_second))
        return 0
    if args.threads:  # before JAX starts; XLA's CPU backend reads it once
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen"
            f"=false intra_op_parallelism_threads={args.threads}").strip()
    if args.speed:
        import _gpu_run

        result = _gpu_run.speed(settings, args.speed)
        hours = (plan_epochs(settings) * epoch_images(settings)
                 / result["images_per_second"] / 3600)
        print(f"{result['model']} ({result['parameters']:,} parameters) on "
              f"{result['device']}, {args.threads or 'all'} threads: "
              f"{result['images_per_second']:,.1f} training images/s "
              f"({result['images_per_cpu_second']:,.1f} per CPU-second); "
              f"{result['flops_per_image'] / 1e9:.3f} GFLOP per image "
              f"(forward+backward, XLA's count); the whole plan at this "
              f"speed: {hours:,.1f} hours")
        return 0
    data = args.data
    if data is None and args.quick:
        data = [SMALL if os.path.exists(SMALL) else synthetic_npz(
            os.path.join(os.path.dirname(results), "synthetic.npz"), settings)]
    if data is None:
        parser.error("--data NPZ is needed (make it with --convert NPZ)")
    count = run_study(settings, results, data, args.max_runs, args.threads,
                      log=lambda text: print(text, flush=True))
    print(f"{count} runs done; results in {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
