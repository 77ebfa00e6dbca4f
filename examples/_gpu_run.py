"""One run of the GPU protocol (examples/reproduce_gpu.py): data, model, fit.

Written for Keras on the JAX backend (GPU machines here have no TensorFlow):
nothing here imports TensorFlow. The data come from a NumPy .npz (keys
x_train, y_train, x_test, y_test; uint8 images [N, 32, 32, 3]), the
augmentation is a Keras layer of `keras.ops` only (per-image random crop of
the 4-pixel zero-padded image and horizontal flip), so the whole training
step compiles as one XLA program (`model.compile(jit_compile=True)`).

References:
    He et al., "Deep Residual Learning for Image Recognition", CVPR 2016
        (arXiv:1512.03385), for the CIFAR augmentation and ResNet-20.
    He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016
        (arXiv:1603.05027), for the pre-activation block.
"""

import math
import os
import time

import numpy as np

MEAN = np.array([0.4914, 0.4822, 0.4465], "float32")
STD = np.array([0.2470, 0.2435, 0.2616], "float32")
L2 = ("adam_l2", "sgd_l2")
RESTARTS = {"adamwr": "adamw", "sgdwr": "sgdw"}  # restart run -> its cell
NO_DECAY = ["gamma", "beta", "bias"]  # BatchNorm scale/offset and biases


def read_npz(paths):
    """{name: array} of the .npz file(s) `paths`: each array is the
    concatenation, in the order given, of that name's arrays in every file
    (the shards that `reproduce_gpu.py --convert --shard-mb` writes)."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    parts = {}
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"no CIFAR-10 .npz at {path}: make it with `python "
                "examples/reproduce_gpu.py --convert PATH` on a machine with "
                "TensorFlow Datasets and copy it over (see "
                "docs/reproduction_gpu.md)")
        with np.load(path) as data:
            for name in data.files:
                parts.setdefault(name, []).append(data[name])
    missing = {"x_train", "y_train", "x_test", "y_test"} - set(parts)
    if missing:
        raise ValueError(f"{paths} lack the arrays {sorted(missing)}")
    return {name: np.concatenate(arrays) for name, arrays in parts.items()}


def load_npz(path, settings):
    """(x_train, y_train, x_val, y_val, x_test, y_test) from `path` (a .npz
    file, or a list of shards: see `read_npz`).

    Images become normalized float32; labels int32. The validation split is
    the *last* `val_examples` of the first `train_examples + val_examples`
    training images (CIFAR-10's training set is in random order), so the
    split is the same on every machine and in every run.
    """
    data = read_npz(path)
    x_train, y_train = data["x_train"], data["y_train"]
    x_test, y_test = data["x_test"], data["y_test"]
    n, m = settings["train_examples"], settings["val_examples"]
    if n + m > len(x_train) or settings["test_examples"] > len(x_test):
        raise ValueError(
            f"{path} holds {len(x_train)} training and {len(x_test)} test "
            f"images; the settings need {n} + {m} and "
            f"{settings['test_examples']}")

    def normalize(x):
        return (x.astype("float32") / 255.0 - MEAN) / STD

    def labels(y):
        return np.asarray(y, "int32").reshape(-1)

    return (normalize(x_train[:n]), labels(y_train[:n]),
            normalize(x_train[n:n + m]), labels(y_train[n:n + m]),
            normalize(x_test[:settings["test_examples"]]),
            labels(y_test[:settings["test_examples"]]))


def _augment_layer():
    import keras
    from keras import ops

    class CropFlip(keras.layers.Layer):
        """Random crop of the zero-padded image and random horizontal flip,
        a fresh draw per image (He et al. 2016); identity at inference.

        The crop is two one-hot matrix products, `S_y @ x_padded @ S_x^T`,
        with the flip folded into `S_x`: no gather, no Python branching, so
        it compiles with the training step under XLA.
        """

        def __init__(self, padding=4, seed=None, **kwargs):
            super().__init__(**kwargs)
            self.padding = padding
            self.seed = seed
            self.seed_generator = keras.random.SeedGenerator(seed)

        def call(self, x, training=False):
            if not training:
                return x
            p = self.padding
            size = x.shape[1]
            batch = ops.shape(x)[0]
            padded = ops.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
            offsets = keras.random.randint(
                (batch, 2), 0, 2 * p + 1, seed=self.seed_generator)
            flip = keras.random.randint(
                (batch, 1), 0, 2, seed=self.seed_generator)
            rows = ops.arange(size)[None, :]
            cols = ops.where(flip == 1, size - 1 - rows, rows)
            select_y = ops.one_hot(rows + offsets[:, :1], size + 2 * p,
                                   dtype=x.dtype)   # [batch, size, size+2p]
            select_x = ops.one_hot(cols + offsets[:, 1:], size + 2 * p,
                                   dtype=x.dtype)
            x = ops.einsum("bij,bjkc->bikc", select_y, padded)
            return ops.einsum("bikc,blk->bilc", x, select_x)

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {**super().get_config(), "padding": self.padding,
                    "seed": self.seed}

    return CropFlip


def build_model(settings, l2, seed):
    """CropFlip, then the pre-activation ResNet of examples/_models.py.

    `settings["blocks"]` blocks per stage, first-stage width
    `settings["width"]`: 3 blocks x 16 is ResNet-20 (6n + 2 layers). `l2` is
    the paper's lambda' on conv and dense kernels (Adam+L2, SGD+L2).
    """
    import keras

    from _models import preact_resnet

    net = preact_resnet(blocks_per_stage=settings["blocks"],
                        width=settings["width"], l2=l2)
    inputs = keras.Input((32, 32, 3))
    outputs = net(_augment_layer()(seed=seed)(inputs))
    depth = 6 * settings["blocks"] + 2
    return keras.Model(inputs, outputs,
                       name=f"preact_resnet{depth}_w{settings['width']}")


def cycle_ends(settings, epochs):
    """The epochs at which warm-restart cycles end, up to `epochs`."""
    ends, length, end = [], settings["first_cycle_epochs"], 0
    while end + length <= epochs + 1e-9:
        end += length
        ends.append(end)
        length *= settings["t_mul"]
    return ends


def make_optimizer(spec, settings, steps_per_epoch):
    """The run's optimizer: cosine decay over the run, or warm restarts.

    Adam+L2 and SGD+L2 are this package's AdamW / SGDW with
    `weight_decay=0` (the paper's Adam and SGD with momentum); their L2 term
    is in the model.
    """
    import keras
    import keras_adamwr

    total = steps_per_epoch * spec["epochs"]
    lr = spec["lr"]
    adam = spec["optimizer"].startswith("adam")
    if spec["optimizer"] in RESTARTS:
        cls = keras_adamwr.AdamWR if adam else keras_adamwr.SGDWR
        return cls(learning_rate=lr, t_mul=settings["t_mul"],
                   first_cycle_steps=round(settings["first_cycle_epochs"]
                                           * steps_per_epoch),
                   normalized_weight_decay=spec["decay"],
                   exclude_from_weight_decay=NO_DECAY)
    schedule = keras.optimizers.schedules.CosineDecay(lr, total)
    cls = keras_adamwr.AdamW if adam else keras_adamwr.SGDW
    if spec["optimizer"] in L2:
        return cls(learning_rate=schedule, base_learning_rate=lr,
                   weight_decay=0.0)
    return cls(learning_rate=schedule, base_learning_rate=lr,
               total_steps=total, normalized_weight_decay=spec["decay"],
               exclude_from_weight_decay=NO_DECAY)


def device():
    """The accelerator in words ("cpu" without one), from the backend."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        found = jax.devices()
        return f"{found[0].platform}: {found[0].device_kind} x{len(found)}"
    if keras.backend.backend() == "torch":
        import torch

        if torch.cuda.is_available():
            return f"gpu: {torch.cuda.get_device_name(0)}"
    return "cpu"


def hardware():
    import _study_common
    return f"{_study_common.cpu_name()}; {os.cpu_count()} cores visible"


def train(spec, settings, data):
    """Train one run; return a dict: per-epoch `errors` {"train", "val",
    "test"}, `final_train_loss`, `steps_per_epoch`, `wall_seconds`,
    `cpu_seconds`, `model` (its name) and `parameters`.

    After every epoch: error on the first `train_eval_examples` training
    images (inference mode, no augmentation), on the validation split and on
    the test set.
    """
    import keras

    x_train, y_train, x_val, y_val, x_test, y_test = data
    start, cpu_start = time.perf_counter(), time.process_time()
    keras.backend.clear_session()
    keras.utils.set_random_seed(spec["seed"])
    l2 = spec["decay"] if spec["optimizer"] in L2 else 0.0
    model = build_model(settings, l2, spec["seed"])
    steps_per_epoch = math.ceil(len(x_train) / settings["batch_size"])
    model.compile(make_optimizer(spec, settings, steps_per_epoch),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True),
                  metrics=["accuracy"], jit_compile=settings["jit_compile"])
    sets = {"train": (x_train[:settings["train_eval_examples"]],
                      y_train[:settings["train_eval_examples"]]),
            "val": (x_val, y_val), "test": (x_test, y_test)}
    errors = {name: [] for name in sets}
    losses = []

    class Evaluate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            losses.append(float((logs or {}).get("loss", float("nan"))))
            for name, (x, y) in sets.items():
                result = self.model.evaluate(
                    x, y, batch_size=settings["eval_batch_size"], verbose=0,
                    return_dict=True)
                errors[name].append(1.0 - result["accuracy"])

    model.fit(x_train, y_train, batch_size=settings["batch_size"],
              epochs=spec["epochs"], shuffle=True, verbose=0,
              callbacks=[Evaluate()])
    return {"errors": errors, "final_train_loss": losses[-1],
            "steps_per_epoch": steps_per_epoch,
            "wall_seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu_start,
            "model": model.name, "parameters": model.count_params()}


def speed(settings, steps=10, seed=0):
    """Training images/s of the full model (AdamW, random images), images
    per CPU-second of this process (on a shared CPU with one thread: the
    rate with a whole core), and XLA's count of floating-point operations
    per image of forward+backward.

    One epoch of `steps` batches warms up (compiles), a second is timed.
    """
    import jax
    import keras
    import numpy as np

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = build_model(settings, 0.0, seed)
    spec = dict(optimizer="adamw", lr=1e-3, decay=0.025, epochs=2)
    model.compile(make_optimizer(spec, settings, steps),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True), jit_compile=settings["jit_compile"])
    rng = np.random.default_rng(seed)
    n = steps * settings["batch_size"]
    x = rng.normal(size=(n, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, n).astype("int32")
    times, cpu_times = [], []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            times.append(time.perf_counter())
            cpu_times.append(time.process_time())

        def on_epoch_end(self, epoch, logs=None):
            times[-1] = time.perf_counter() - times[-1]
            cpu_times[-1] = time.process_time() - cpu_times[-1]

    model.fit(x, y, batch_size=settings["batch_size"], epochs=2, verbose=0,
              shuffle=False, callbacks=[Clock()])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def loss(trainable, non_trainable, xb, yb):
        logits, _ = model.stateless_call(trainable, non_trainable, xb,
                                         training=True)
        return loss_fn(yb, logits)

    batch = settings["batch_size"]
    compiled = jax.jit(jax.grad(loss)).lower(
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        x[:batch], y[:batch]).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return {"images_per_second": n / times[1],
            "images_per_cpu_second": n / cpu_times[1],
            "flops_per_image": cost.get("flops", float("nan")) / batch,
            "parameters": model.count_params(), "model": model.name,
            "device": device()}
