"""Train a ResNet on CIFAR-10 with AdamW(R), SGDW(R) or a baseline optimizer.

The setting of Loshchilov & Hutter (arXiv:1711.05101), at laptop scale:
TFDS `cifar10` with crop-and-flip augmentation, batch 128, normalized weight
decay, and cosine annealing over the whole budget (adam_l2, keras_adamw,
adamw, sgdw) or with warm restarts (adamwr, sgdwr). The data must already be
prepared: pass --data-dir or set TFDS_DATA_DIR; nothing is downloaded.

    python examples/cifar10.py --quick                   # smoke run, < 30 s
    python examples/cifar10.py --optimizer sgdwr --epochs 7
    python examples/cifar10.py --arch shake_shake --train-examples 50000 \\
        --epochs 31 --jit                                # the paper's model

Other scripts reuse `load_datasets`, `build_model`, `make_optimizer` and
`main(argv) -> metrics`.

TensorFlow, TFDS and Keras are imported where they are used, after the
arguments are parsed, so `--help` and argument errors answer at once.
"""

import argparse
import importlib
import math
import os
import time
from typing import TYPE_CHECKING, NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TF loads

if TYPE_CHECKING:  # for annotations; imported where used
    import tensorflow as tf

try:  # run as a script: examples/ is on sys.path
    import _common
except ImportError:  # imported as examples.cifar10
    from examples import _common

# The pieces other scripts (compare.py) reuse, importable from here.
OPTIMIZERS = _common.OPTIMIZERS
ARCHS = ("preact_resnet", "shake_shake")  # keys of _models.ARCHS
make_optimizer = _common.make_optimizer


def _models():
    """The model module (imports Keras, so TensorFlow: seconds)."""
    try:
        return importlib.import_module("_models")
    except ImportError:
        return importlib.import_module("examples._models")


def build_model(*args, **kwargs):
    """`_models.build_model`, imported on the first call."""
    return _models().build_model(*args, **kwargs)


MEAN = (0.4914, 0.4822, 0.4465)  # CIFAR-10 per-channel statistics on [0, 1]
STD = (0.2470, 0.2435, 0.2616)
DEFAULTS = {"epochs": 3, "train_examples": 10000, "t_mul": 2.0}
QUICK = {"epochs": 2, "train_examples": 1024, "test_examples": 512,
         "t_mul": 1.0, "depth": 1, "width": 8}


class CifarData(NamedTuple):
    """Batched train/test pipelines and their sizes."""
    train: "tf.data.Dataset"
    test: "tf.data.Dataset"
    train_examples: int
    test_examples: int
    steps_per_epoch: int


def _split(builder, name, count):
    """TFDS split `name`, or its first `count` examples; and its size."""
    available = builder.info.splits[name].num_examples
    if count is None or count >= available:
        return name, available
    return f"{name}[:{count}]", count


def _augment(example, seed):
    """Zero-pad by 4, random 32x32 crop, random horizontal flip (stateless)."""
    import tensorflow as tf

    image, label = example
    crop_seed, flip_seed = tf.unstack(tf.random.split(seed, 2))
    image = tf.image.pad_to_bounding_box(image, 4, 4, 40, 40)
    image = tf.image.stateless_random_crop(image, (32, 32, 3), crop_seed)
    image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    return image, label


def _normalize(image, label):
    import tensorflow as tf

    return (tf.cast(image, tf.float32) / 255.0 - MEAN) / STD, label


def load_datasets(data_dir=None, train_examples=None, test_examples=None,
                  batch_size=128, seed=0):
    """Load TFDS `cifar10` offline as augmented, normalized, batched pipelines.

    Args:
        data_dir: TFDS data directory. Defaults to `None`: $TFDS_DATA_DIR,
            else the TFDS default.
        train_examples, test_examples: Use the first N examples of each split.
            Defaults to `None` (the whole split).
        batch_size: Defaults to 128.
        seed: Seeds the shuffle and the augmentation. Defaults to 0.

    Raises:
        ExampleError: no prepared copy of the dataset in the data directory.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    builder = tfds.builder("cifar10", data_dir=data_dir)
    if not builder.is_prepared():
        raise _common.ExampleError(
            _common.tfds_unavailable_message("cifar10", builder.data_dir))
    train_split, num_train = _split(builder, "train", train_examples)
    test_split, num_test = _split(builder, "test", test_examples)
    train, test = builder.as_dataset(split=[train_split, test_split],
                                     as_supervised=True)
    autotune = tf.data.AUTOTUNE
    train = train.cache().shuffle(num_train, seed=seed)
    seeds = tf.data.Dataset.random(seed, rerandomize_each_iteration=True)
    train = tf.data.Dataset.zip(train, seeds.batch(2))
    train = (train.map(_augment, autotune).map(_normalize, autotune)
             .batch(batch_size).prefetch(autotune))
    test = (test.map(_normalize, autotune).cache()
            .batch(batch_size).prefetch(autotune))
    steps_per_epoch = math.ceil(num_train / batch_size)
    return CifarData(train, test, num_train, num_test, steps_per_epoch)


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv=None):
    """Parse argv; flags left unset take QUICK (if --quick) or DEFAULTS."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Default budget: 3 epochs on the first 10,000 training "
        "examples and all 10,000 test examples, width 16, restarts after "
        "epochs 1 and 3; about a minute on a 2-core CPU. --quick: 2 epochs "
        "on 1,024 / 512 examples, width 8, a restart after each epoch "
        "(T_mult 1); under half a minute. Flags given explicitly win over both.")
    add = parser.add_argument
    add("--optimizer", choices=OPTIMIZERS, default="adamwr",
        help="default: %(default)s")
    add("--arch", choices=ARCHS, default="preact_resnet",
        help="default: %(default)s")
    add("--depth", type=_positive_int,
        help="blocks per stage (default: 1; shake_shake: 4)")
    add("--width", type=_positive_int, help="filters of the first stage "
        "(default: 16; shake_shake: 64, the paper's 26 2x64d)")
    add("--epochs", type=_positive_int, help="training budget (default: 3)")
    add("--batch-size", type=_positive_int, default=128,
        help="default: %(default)s")
    add("--lr", type=float, help="base learning rate alpha (default: 1e-3 "
        "for Adam, 0.05 for SGD)")
    add("--weight-decay-norm", type=float, default=0.025, help="normalized "
        "weight decay lambda_norm, all but adam_l2 (default: %(default)s)")
    add("--l2", type=float, default=5e-4, help="adam_l2 only: lambda' added "
        "to the gradient as lambda' * theta (default: %(default)s)")
    add("--first-cycle-epochs", type=float, default=1.0, help="adamwr/sgdwr: "
        "length T_0 of the first cycle (default: %(default)s)")
    add("--t-mul", type=float, help="adamwr/sgdwr: cycle growth T_mult "
        "(default: 2)")
    add("--warmup-epochs", type=float, default=0.0, help="linear warm-up; "
        "with restarts it comes before the first cycle and shifts the cycle "
        "ends (default: %(default)s)")
    add("--train-examples", type=_positive_int, help="use the first N "
        "training examples, 50000 for all (default: 10000)")
    add("--test-examples", type=_positive_int, help="use the first N test "
        "examples (default: all 10000)")
    add("--seed", type=int, default=0, help="default: %(default)s")
    add("--jit", action=argparse.BooleanOptionalAction,
        help="XLA-compile the train step (default: Keras' 'auto')")
    add("--data-dir", help="TFDS data directory (default: $TFDS_DATA_DIR, "
        "else the TFDS default)")
    add("--output-dir", help="a new or empty folder (default: "
        "runs/cifar10-<optimizer>[-quick], suffixed -2, -3, ... when taken)")
    add("--verbose", type=int, choices=(0, 1, 2), default=1,
        help="Keras fit verbosity (default: %(default)s)")
    add("--quick", action="store_true", help="a tiny CI run, see below")
    args = parser.parse_args(argv)
    for name, value in {**DEFAULTS, **(QUICK if args.quick else {})}.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    default_depth, default_width = _models().ARCH_DEFAULTS[args.arch]
    args.depth = args.depth or default_depth
    args.width = args.width or default_width
    if args.lr is None:
        args.lr = _common.default_learning_rate(args.optimizer)
    if args.output_dir is None:  # a fresh folder for every run
        args.output_dir = _common.unused_folder(os.path.join(
            "runs", f"cifar10-{args.optimizer}" + ("-quick" if args.quick else "")))
    return args


def main(argv=None):
    """Train and evaluate; write and return the metrics (a JSON-ready dict)."""
    args = parse_args(argv)
    _common.check_new_folder("--output-dir", args.output_dir)
    import keras

    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    data = load_datasets(args.data_dir, args.train_examples,
                         args.test_examples, args.batch_size, args.seed)
    l2 = args.l2 if args.optimizer == "adam_l2" else 0.0
    model = build_model(args.arch, args.depth, args.width, l2=l2)
    optimizer = make_optimizer(
        args.optimizer, args.lr, data.steps_per_epoch, args.epochs,
        args.weight_decay_norm, args.first_cycle_epochs, args.t_mul,
        args.warmup_epochs)
    model.compile(
        optimizer=optimizer, metrics=["accuracy"],
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile="auto" if args.jit is None else args.jit)
    total_steps = data.steps_per_epoch * args.epochs
    cycle_ends = _common.cycle_end_steps(
        getattr(optimizer, "schedule", None), total_steps)
    print(f"{model.name}: {model.count_params():,} parameters; "
          f"{data.train_examples} train / {data.test_examples} test examples; "
          f"{args.optimizer}, lr {args.lr:g}, {args.epochs} epochs of "
          f"{data.steps_per_epoch} steps")
    recorder = None  # AnytimeRecorder needs a restart schedule
    if cycle_ends is not None:
        print("warm restarts: cycles end at epochs "
              f"{[step / data.steps_per_epoch for step in cycle_ends]}")
        if total_steps not in cycle_ends:
            print("warning: the budget ends inside a cycle, so the final "
                  "model is not at a restart boundary")
        recorder = _common.make_anytime_recorder(validation_data=data.test,
                                                 log_dir=args.output_dir)
    history = model.fit(data.train, epochs=args.epochs, verbose=args.verbose,
                        validation_data=data.test, shuffle=False,
                        callbacks=[recorder] if recorder else [])
    anytime = getattr(recorder, "records", None)
    if anytime and hasattr(recorder, "plot"):
        recorder.plot(os.path.join(args.output_dir, "anytime.png"))
    metrics = {
        "optimizer": args.optimizer, "model": model.name,
        "parameters": model.count_params(), "epochs": args.epochs,
        "steps": total_steps, "train_examples": data.train_examples,
        "test_examples": data.test_examples,
        "test_accuracy": history.history["val_accuracy"][-1],
        "test_loss": history.history["val_loss"][-1],
        "cycle_end_steps": cycle_ends, "anytime": anytime,
        "history": history.history,
        "wall_seconds": round(time.perf_counter() - start, 2),
        "args": vars(args)}
    _common.write_json(os.path.join(args.output_dir, "metrics.json"), metrics)
    print(f"test accuracy {metrics['test_accuracy']:.4f}, test loss "
          f"{metrics['test_loss']:.4f}, {metrics['wall_seconds']:.0f} s; "
          f"wrote {args.output_dir}/metrics.json")
    if args.quick:
        print("--quick is a smoke test: it shows that training, evaluation "
              "and the output files work end to end. Its accuracy (2 epochs "
              "on 1,024 images, a width-8 model) says nothing about the "
              "optimizer; see docs/comparison.md for a comparison.")
    return metrics


if __name__ == "__main__":
    raise SystemExit(_common.run_script(main))
