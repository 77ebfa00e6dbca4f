"""Compare optimizers on CIFAR-10 on one budget and seed: a table and a plot.

Runs `cifar10.py`'s `main` once per optimizer with the same data, model,
budget and seed, then writes `comparison.md` (final test accuracy, best
anytime error, wall time, settings) and `anytime.png` (validation error vs
epoch: the AnytimeRecorder rows at each cycle end for the restart
optimizers, the per-epoch error for the others; restarts marked). Each
run's own outputs land in `<output-dir>/<optimizer>/`. Flags this script
does not know (`--lr`, `--arch`, `--t-mul`, `--jit`, ...) go to every run.

    python examples/compare.py --quick                   # smoke run, 6 x cifar10.py --quick
    python examples/compare.py --epochs 7 --train-examples 10000 \\
        --output-dir runs/compare                        # restarts at 1, 3, 7
    python examples/compare.py --optimizers adamw keras_adamw --lr 3e-3
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TF loads

import argparse  # noqa: E402
import datetime  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402

# Keras and TensorFlow load only when a comparison runs: `--help` and a bad
# flag answer at once, without TensorFlow's start-up logs.
try:  # run as a script: examples/ is on sys.path
    import _common
    import cifar10
except ImportError:  # imported as examples.compare
    from examples import _common, cifar10


def parse_args(argv=None):
    """Return (compare's args, the argv shared by every cifar10 run)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Any other flag of examples/cifar10.py is passed to every run.")
    add = parser.add_argument
    add("--optimizers", nargs="+", choices=_common.OPTIMIZERS,
        default=list(_common.OPTIMIZERS), help="default: all six")
    add("--epochs", help="budget per run (default: cifar10.py's)")
    add("--train-examples", help="default: cifar10.py's (10000)")
    add("--test-examples", help="default: cifar10.py's (all 10000)")
    add("--seed", default="0", help="default: %(default)s")
    add("--data-dir", help="TFDS data directory (default: $TFDS_DATA_DIR)")
    add("--output-dir", help="a new or empty folder (default: runs/compare"
        "[-quick], suffixed -2, -3, ... when taken)")
    add("--verbose", default="2", help="Keras fit verbosity (default: 2)")
    add("--quick", action="store_true", help="cifar10.py's --quick per run")
    # cifar10's --optimizer never reaches `extra`: argparse reads it as an
    # abbreviation of --optimizers.
    args, extra = parser.parse_known_args(argv)
    if args.output_dir is None:  # a fresh folder for every comparison
        args.output_dir = _common.unused_folder(os.path.join(
            "runs", "compare" + ("-quick" if args.quick else "")))
    shared = list(extra) + (["--quick"] if args.quick else [])
    for name in ("epochs", "train_examples", "test_examples", "seed",
                 "data_dir", "verbose"):
        if getattr(args, name) is not None:
            shared += ["--" + name.replace("_", "-"), getattr(args, name)]
    for name in args.optimizers:  # fail on a bad flag before any training
        cifar10.parse_args(shared + ["--optimizer", name])
    return args, shared


def error_curve(metrics):
    """(epochs, validation errors, is_anytime) of one run."""
    if metrics["anytime"]:
        rows = metrics["anytime"]
        return ([row["epoch"] for row in rows],
                [1 - row["val_accuracy"] for row in rows], True)
    errors = [1 - accuracy for accuracy in metrics["history"]["val_accuracy"]]
    return list(range(1, len(errors) + 1)), errors, False


def settings(metrics):
    """One-line description of the optimizer's hyperparameters."""
    args, name = metrics["args"], metrics["optimizer"]
    parts = [f"lr {args['lr']:g}"]
    if name == "adam_l2":
        parts.append(f"L2 lambda' {args['l2']:g} (in the loss)")
    else:
        parts.append(f"lambda_norm {args['weight_decay_norm']:g}")
    if name == "keras_adamw":
        parts.append("Keras convention (lambda_keras = lambda / lr)")
    if metrics["cycle_end_steps"] is not None:
        parts.append(f"warm restarts T_0 {args['first_cycle_epochs']:g} ep, "
                     f"T_mult {args['t_mul']:g}")
    else:
        parts.append("cosine over the budget")
    if args["warmup_epochs"]:
        parts.append(f"warm-up {args['warmup_epochs']:g} ep")
    return ", ".join(parts)


def write_table(path, results, command):
    """Write comparison.md: the budget, then one row per optimizer."""
    import keras
    import tensorflow as tf

    first = results[0]
    lines = [
        "# Optimizer comparison on CIFAR-10", "",
        f"Command: `{command}`  ", f"Date: {datetime.date.today()}; "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}; "
        f"seed {first['args']['seed']}  ",
        f"Budget per run: {first['epochs']} epochs of "
        f"{first['steps'] // first['epochs']} steps (batch "
        f"{first['args']['batch_size']}), {first['train_examples']} train / "
        f"{first['test_examples']} test examples, {first['model']} "
        f"({first['parameters']:,} parameters)", "",
        "The test set serves as validation set. Best anytime error: the "
        "lowest test error on the plotted curve (at cycle ends for the "
        "restart optimizers, at every epoch end for the others).", "",
        "| optimizer | final test accuracy | best anytime error (epoch) | "
        "wall time (s) | epochs | settings |",
        "|---|---|---|---|---|---|"]
    for metrics in results:
        epochs, errors, _ = error_curve(metrics)
        best = min(range(len(errors)), key=errors.__getitem__)
        lines.append(
            f"| {metrics['optimizer']} | {metrics['test_accuracy']:.4f} | "
            f"{errors[best]:.4f} ({epochs[best]:g}) | "
            f"{metrics['wall_seconds']:.0f} | {metrics['epochs']} | "
            f"{settings(metrics)} |")
    with open(path, "w") as file:
        file.write("\n".join(lines) + "\n")


def plot_curves(path, results):
    """Validation error vs epoch for every run, restarts as dotted lines."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5))
    axes = figure.add_subplot()
    restarts = set()
    for index, metrics in enumerate(results):
        color = f"C{index}"
        epochs, errors, anytime = error_curve(metrics)
        if anytime:  # also the per-epoch error, faint, to show the restarts
            history = [1 - a for a in metrics["history"]["val_accuracy"]]
            axes.plot(range(1, len(history) + 1), history, ":", color=color,
                      alpha=0.7, linewidth=1.3)
            steps_per_epoch = metrics["steps"] / metrics["epochs"]
            restarts |= {step / steps_per_epoch for step
                         in metrics["cycle_end_steps"] if step < metrics["steps"]}
        label = metrics["optimizer"] + (" (cycle ends)" if anytime else "")
        axes.plot(epochs, errors, "o-" if anytime else "s--", color=color,
                  label=label, linewidth=2 if anytime else 1.2,
                  markersize=7 if anytime else 4)
    if restarts:
        axes.plot([], [], ":", color="0.4", label="restart run, every epoch")
    for number, epoch in enumerate(sorted(restarts)):
        axes.axvline(epoch, color="0.5", linestyle="-.", linewidth=1,
                     label="warm restart" if number == 0 else None)
    first = results[0]
    axes.set_xlabel("epoch")
    axes.set_ylabel("test error (1 - accuracy)")
    axes.set_title(f"CIFAR-10, {first['model']}, {first['train_examples']} "
                   f"train examples, seed {first['args']['seed']}")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv=None):
    """Run every optimizer; write comparison.md and anytime.png; return rows."""
    args, shared = parse_args(argv)
    import keras

    _common.check_new_folder("--output-dir", args.output_dir)
    results = []
    for number, name in enumerate(args.optimizers, 1):
        print(f"\n=== [{number}/{len(args.optimizers)}] {name} ===", flush=True)
        keras.backend.clear_session()  # each run starts from a clean graph
        results.append(cifar10.main(shared + [
            "--optimizer", name,
            "--output-dir", os.path.join(args.output_dir, name)]))
    os.makedirs(args.output_dir, exist_ok=True)
    table = os.path.join(args.output_dir, "comparison.md")
    command = shlex.join(["python", "examples/compare.py",
                          *(sys.argv[1:] if argv is None else argv)])
    write_table(table, results, command)
    plot = os.path.join(args.output_dir, "anytime.png")
    plot_curves(plot, results)
    with open(table) as file:
        print("\n" + file.read())
    print(f"wrote {table} and {plot}")
    return results


if __name__ == "__main__":
    raise SystemExit(_common.run_script(main))
