"""Helpers shared by the example scripts: optimizers, errors, output files.

Errors the user can fix (data not prepared, library not installed) are raised
as `ExampleError` and reported by `run_script` as one paragraph, without a
traceback. `keras_adamwr` is imported lazily, so the baselines (`adam_l2`,
`keras_adamw`) run even where the library is not installed.
"""

import json
import math
import os
import sys
import textwrap

OPTIMIZERS = ("adam_l2", "adamw", "adamwr", "sgdw", "sgdwr", "keras_adamw")
NO_DECAY = ["gamma", "beta", "bias"]  # BN scale/offset and biases: not decayed


class ExampleError(Exception):
    """A problem reported as one paragraph on stderr, without a traceback."""


def run_script(main):
    """Call `main()` as a command-line entry point; return the exit status.

    Use as `sys.exit(run_script(main))`. An `ExampleError` prints its message
    and gives status 1; any other exception propagates with its traceback.
    """
    try:
        main()
    except ExampleError as error:
        print(textwrap.fill(f"error: {error}", width=88), file=sys.stderr)
        return 1
    return 0


def import_keras_adamwr(purpose):
    """Import and return `keras_adamwr`, or raise `ExampleError`.

    Args:
        purpose: What needs the package, for the message, e.g.
            "--optimizer adamwr".
    """
    try:
        import keras_adamwr
    except ImportError as error:
        raise ExampleError(
            f"{purpose} needs the keras_adamwr package, which could not be "
            f"imported ({error}). Install it from the repository root with "
            "`pip install -e .` (or set PYTHONPATH to the repository root); "
            "`--optimizer adam_l2` and `--optimizer keras_adamw` run "
            "without it.") from None
    return keras_adamwr


def make_anytime_recorder(**kwargs):
    """`keras_adamwr.AnytimeRecorder(**kwargs)`, or None if not available."""
    try:
        from keras_adamwr import AnytimeRecorder
    except ImportError:
        return None
    return AnytimeRecorder(**kwargs)


def tfds_unavailable_message(dataset, searched):
    """The message for a TFDS dataset with no prepared copy at `searched`."""
    return (
        f"the TFDS dataset `{dataset}` is not available offline: no prepared "
        f"copy was found in {searched}. These examples never download. Pass "
        "the TFDS data directory that holds it with --data-dir DIR, or set "
        "the TFDS_DATA_DIR environment variable (the flag wins over the "
        "variable, which wins over the TFDS default ~/tensorflow_datasets). "
        f"To make one, run `tfds.builder('{dataset}').download_and_prepare()`"
        " on a machine with network access and copy the data directory over.")


def default_learning_rate(optimizer):
    """The base rate alpha: 0.05 for the SGD family, 1e-3 for Adam."""
    return 0.05 if optimizer.startswith("sgd") else 1e-3


def make_optimizer(name, learning_rate, steps_per_epoch, epochs,
                   weight_decay_norm=0.025, first_cycle_epochs=1.0,
                   t_mul=2.0, warmup_epochs=0.0):
    """Make optimizer `name` (one of `OPTIMIZERS`) for a run of `epochs`.

    adamwr and sgdwr anneal over warm-restart cycles of `first_cycle_epochs *
    t_mul**i` epochs (after the warm-up); the others follow one cosine decay
    over the whole budget. Weight decay is the paper's normalized decay:
    lambda = weight_decay_norm / sqrt(updates in the run, or in the cycle),
    and skips BatchNorm parameters and biases. `adam_l2` returns plain Adam:
    its L2 term lives in the model (`build_model(l2=...)`).
    """
    import keras  # here, so that importing this module stays instant

    if name not in OPTIMIZERS:
        raise ValueError(f"Argument `name` must be one of {OPTIMIZERS}. "
                         f"Received: name={name!r}")
    total_steps = steps_per_epoch * epochs
    warmup_steps = round(warmup_epochs * steps_per_epoch)
    decay = dict(normalized_weight_decay=weight_decay_norm,
                 exclude_from_weight_decay=NO_DECAY)
    if name in ("adamwr", "sgdwr"):
        library = import_keras_adamwr(f"--optimizer {name}")
        optimizer_class = library.AdamWR if name == "adamwr" else library.SGDWR
        return optimizer_class(
            learning_rate=learning_rate, warmup_steps=warmup_steps,
            first_cycle_steps=round(first_cycle_epochs * steps_per_epoch),
            t_mul=t_mul, **decay)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup_steps else learning_rate, total_steps - warmup_steps,
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps)
    if name == "adam_l2":
        return keras.optimizers.Adam(schedule, epsilon=1e-8)
    if name == "keras_adamw":
        # Keras shrinks by lr_t * lambda_keras, the paper by eta_t * lambda,
        # and lr_t = alpha * eta_t: so lambda_keras = lambda / alpha.
        weight_decay = weight_decay_norm / math.sqrt(total_steps)
        optimizer = keras.optimizers.AdamW(
            schedule, weight_decay=weight_decay / learning_rate, epsilon=1e-8)
        optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
        return optimizer
    library = import_keras_adamwr(f"--optimizer {name}")
    optimizer_class = library.AdamW if name == "adamw" else library.SGDW
    return optimizer_class(learning_rate=schedule,
                           base_learning_rate=learning_rate,
                           total_steps=total_steps, **decay)


def cycle_end_steps(schedule, total_steps):
    """Steps (<= `total_steps`) at which warm-restart cycles end.

    Uses the schedule's `restart_steps(n)`; returns None for schedules
    without it (e.g. plain cosine decay).
    """
    if not hasattr(schedule, "restart_steps"):
        return None
    count = 1
    ends = schedule.restart_steps(count)
    while ends[-1] < total_steps and count < total_steps:
        count *= 2
        ends = schedule.restart_steps(count)
    return [int(step) for step in ends if step <= total_steps]


def unused_folder(path):
    """`path`, or `path-2`, `path-3`, ... : the first that is absent or empty.

    Default output folders go through this, so a run never writes into an
    earlier run's folder.
    """
    candidate, number = path, 1
    while os.path.isdir(candidate) and os.listdir(candidate):
        number += 1
        candidate = f"{path}-{number}"
    return candidate


def check_new_folder(flag, path):
    """Raise `ExampleError` if `path` already holds files (an earlier run's)."""
    if os.path.isdir(path) and os.listdir(path):
        raise ExampleError(
            f"{flag} {path} already holds files of an earlier run; the "
            "examples never write over results. Pass a new folder, or leave "
            f"{flag} out to get a fresh one.")


def write_json(path, data):
    """Write `data` as indented JSON, creating the parent directory."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as file:
        json.dump(data, file, indent=2, sort_keys=True, default=str)
        file.write("\n")
