"""`model.fit` throughput on CIFAR-10: AdamWR against Keras' AdamW.

A small pre-activation ResNet (`examples/cifar10.py`'s `build_model`), batch
128, XLA off and on. Each optimizer trains its own copy of the model (same
initial weights) on the same batches: a fixed set of augmented CIFAR-10
batches from the TFDS copy (`load_datasets`), held in memory, so the input
pipeline neither competes for the CPU nor differs between candidates. The
candidates take turns (`_common.interleave`): each turn is one short
`fit` call, timed from the end of its first batch to the end of its last by
a callback, so iterator creation and callbacks' start-up are left out.

For a tighter ratio, the compiled step `fit` runs once per batch
(`model.train_function`) is then called directly, the candidates
alternating step by step. The optimizer's share of a step is also timed on
its own
(`optimizer.apply` on the model's variables inside the same kind of
compiled function), which bounds the fit ratio more tightly still on a
busy machine.

    TFDS_DATA_DIR=... python benchmarks/fit_throughput.py --quick --json /tmp/fit.json
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

_common.quiet_tensorflow()
sys.path.insert(0, _common.REPO_ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_adamwr  # noqa: E402

BATCH_SIZE = 128
BATCHES = 16  # distinct batches held in memory and cycled
NO_DECAY = ["gamma", "beta", "bias"]
FIRST_CYCLE_STEPS = 390  # one epoch of CIFAR-10 at batch 128
LAMBDA_NORM = 0.025
ARCH, DEPTH, WIDTH = "preact_resnet", 1, 16


def make_optimizer(name):
    # Same decay strength: keras multiplies by lr, the paper by eta_t.
    weight_decay = LAMBDA_NORM / np.sqrt(FIRST_CYCLE_STEPS)
    if name == "adamwr":
        return keras_adamwr.AdamWR(
            1e-3, first_cycle_steps=FIRST_CYCLE_STEPS,
            normalized_weight_decay=LAMBDA_NORM, exclude_from_weight_decay=NO_DECAY)
    if name == "keras_adamw":
        optimizer = keras.optimizers.AdamW(1e-3, weight_decay=weight_decay / 1e-3)
    else:
        schedule = keras.optimizers.schedules.CosineDecayRestarts(1e-3, FIRST_CYCLE_STEPS)
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=weight_decay / 1e-3)
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
    return optimizer


CANDIDATES = {
    "keras_adamw": "`keras.optimizers.AdamW(1e-3)`, same decay, BN/bias excluded",
    "keras_adamw_cdr": "`keras.optimizers.AdamW(CosineDecayRestarts(1e-3, 390))`, "
                       "same decay, BN/bias excluded",
    "adamwr": "`keras_adamwr.AdamWR(1e-3, first_cycle_steps=390, "
              "normalized_weight_decay=0.025, exclude_from_weight_decay=[...])`",
}


def in_memory_batches(data_dir):
    """BATCHES augmented CIFAR-10 training batches, cycled forever."""
    from examples.cifar10 import load_datasets

    data = load_datasets(data_dir, train_examples=BATCHES * BATCH_SIZE,
                         test_examples=BATCH_SIZE, batch_size=BATCH_SIZE)
    images, labels = [], []
    for image, label in data.train:
        images.append(image)
        labels.append(label)
    images, labels = tf.concat(images, 0), tf.concat(labels, 0)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH_SIZE).repeat()


class BatchClock(keras.callbacks.Callback):
    """Records the time at the end of every training batch."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def fit_runner(model, dataset, steps):
    """A function(calls) for `interleave` that fits `steps` steps per call.

    `interleave`'s wall time of a call includes `fit`'s start-up; the step
    time kept is `runner.step_seconds`, the median interval between the
    ends of consecutive batches of the call.
    """
    def runner(calls):
        clock = BatchClock()
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0,
                  callbacks=[clock])
        runner.step_seconds.append(float(np.median(np.diff(clock.ends))))

    runner.step_seconds = []
    return runner


def train_step_runner(model, dataset):
    """A function(calls) running the compiled step `fit` runs, `calls` times.

    `model.train_function` is what `fit` calls once per batch (built by the
    warm-up `fit`); calling it directly lets candidates alternate step by
    step, so both see the same machine load.
    """
    iterator = iter(dataset)
    function = model.train_function

    def runner(calls):
        for _ in range(calls):
            function(iterator)
        model.optimizer.iterations.numpy()

    return runner


def optimizer_only_runner(optimizer, variables, jit):
    """A function(calls) that applies fixed random grads `calls` times."""
    rng = np.random.default_rng(0)
    grads = [tf.constant(rng.standard_normal(v.shape, dtype=np.float32) * 1e-3)
             for v in variables]

    @tf.function(jit_compile=jit)
    def step(grads):
        optimizer.apply(grads, variables)
        return optimizer.iterations + 0

    step(grads)

    def runner(calls):
        for _ in range(calls):
            out = step(grads)
        out.numpy()

    return runner


def run(quick=False, data_dir=None, log=print):
    """All measurements; returns a JSON-ready dict (or a skip note)."""
    started = time.perf_counter()
    data_dir = data_dir or _common.default_tfds_dir()
    result = {"machine": _common.machine_info(), "quick": quick,
              "candidates": CANDIDATES, "batch_size": BATCH_SIZE,
              "model": f"{ARCH}, depth {DEPTH}, width {WIDTH}"}
    try:
        dataset = in_memory_batches(data_dir)
    except Exception as error:  # no prepared copy: report, do not fail the run
        result["skipped"] = (f"CIFAR-10 not available from TFDS data dir {data_dir!r}: "
                             f"{type(error).__name__}: {str(error)[:300]}")
        log(result["skipped"])
        return result
    from examples.cifar10 import build_model

    warmup_steps, steps, rounds, step_rounds = (3, 6, 3, 24) if quick else (5, 8, 4, 48)
    names = ["keras_adamw", "adamwr"] if quick else list(CANDIDATES)
    result.update(warmup_steps=warmup_steps, steps_per_turn=steps, rounds=rounds,
                  step_rounds=step_rounds, names=names,
                  steps_per_candidate=warmup_steps + steps * rounds + step_rounds)
    result["modes"] = {}
    for jit in (False, True):
        mode = "xla" if jit else "graph"
        runners, models, first = {}, {}, {}
        for name in names:
            keras.utils.set_random_seed(0)
            model = build_model(ARCH, DEPTH, WIDTH)
            model.compile(optimizer=make_optimizer(name), jit_compile=jit,
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            start = time.perf_counter()
            model.fit(dataset, epochs=1, steps_per_epoch=warmup_steps, verbose=0)
            first[name] = time.perf_counter() - start
            models[name] = model
            runners[name] = fit_runner(model, dataset, steps)
            log(f"  fit {mode:5s} {name:16s} compile + {warmup_steps} steps {first[name]:.1f} s")
        _common.interleave(runners, rounds, 1)
        step_times = {name: runner.step_seconds for name, runner in runners.items()}
        entry = {"fit_step_seconds": step_times, "first_fit_s": first,
                 "parameters": models["adamwr"].count_params(),
                 "trainable_variables": len(models["adamwr"].trainable_variables)}
        for name in names:
            seconds = float(np.median(step_times[name]))
            log(f"  fit {mode:5s} {name:16s} {seconds * 1e3:8.1f} ms/step "
                f"{BATCH_SIZE / seconds:8.0f} images/s")
        steppers = {name: train_step_runner(model, dataset) for name, model in models.items()}
        entry["step_seconds"] = _common.interleave(steppers, step_rounds, 1)
        for name in names:
            seconds = float(np.median(entry["step_seconds"][name]))
            log(f"  step {mode:5s} {name:16s} {seconds * 1e3:8.1f} ms/step (alternating)")
        # The optimizer alone, on each model's own variables and optimizer.
        alone = {name: optimizer_only_runner(model.optimizer, model.trainable_variables, jit)
                 for name, model in models.items()}
        entry["optimizer_seconds"] = _common.interleave(alone, 9 if quick else 15, 20)
        for name in names:
            seconds = float(np.median(entry["optimizer_seconds"][name]))
            log(f"  opt {mode:5s} {name:16s} {seconds * 1e3:8.3f} ms/apply")
        result["modes"][mode] = entry
    result["seconds"] = time.perf_counter() - started
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--data-dir", help="TFDS data directory (default: "
                        "$TFDS_DATA_DIR, else ../shared/data/tfds beside the repository)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    result = run(args.quick, args.data_dir, log=lambda text: print(text, flush=True))
    if args.json:
        _common.write_json(args.json, result)
    print(f"done in {result.get('seconds', 0):.0f} s")


if __name__ == "__main__":
    main()
