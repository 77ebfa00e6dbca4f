"""Programs that tests/test_distribute.py runs in fresh Python processes.

TensorFlow fixes its devices when it runs its first op. A pytest process
that has already run TensorFlow cannot split its CPU into two logical
devices or join a cluster, so these programs run in their own interpreter
(`sys.executable`, repository root on `PYTHONPATH`):

    python tests/_multiworker_worker.py mirrored OUT_DIR
    python tests/_multiworker_worker.py worker INDEX PORT0,PORT1 OUT_DIR

`mirrored` trains under `MirroredStrategy` over two logical CPUs;
`worker` is one of the two `MultiWorkerMirroredStrategy` workers on
127.0.0.1. Each writes `OUT_DIR/<name>.json` (what happened, with any error
as text) and `OUT_DIR/<name>.npz` (weights, optimizer variables,
predictions). The helpers (data, model, optimizer table, training loop)
are shared with the test module, which computes the single-device
references in its own process with exactly the same code.
"""

import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_adamwr  # noqa: E402

GLOBAL_BATCH = 16
EPOCHS = 2
STEPS = EPOCHS * 128 // GLOBAL_BATCH  # 16 weight updates: past several restarts


def _optimizers():
    """Every optimizer, some with normalized decay and exclusions."""
    return {
        "adamw": lambda **kw: keras_adamwr.AdamW(3e-3, weight_decay=1e-2, **kw),
        "adamw_amsgrad": lambda **kw: keras_adamwr.AdamW(
            keras_adamwr.CosineWarmRestarts(3e-3, 5, warmup_steps=2),
            normalized_weight_decay=0.05, amsgrad=True, **kw),
        "sgdw": lambda **kw: keras_adamwr.SGDW(
            0.05, normalized_weight_decay=0.05, total_steps=STEPS,
            exclude_from_weight_decay=["gamma", "beta"], **kw),
        "sgdw_nesterov": lambda **kw: keras_adamwr.SGDW(
            0.05, nesterov=True, weight_decay=5e-3, decay_scaling="learning_rate", **kw),
        "adamwr": lambda **kw: keras_adamwr.AdamWR(
            3e-3, first_cycle_steps=4, exclude_from_weight_decay=["bias"], **kw),
        "sgdwr": lambda **kw: keras_adamwr.SGDWR(
            0.05, first_cycle_steps=3, t_mul=1.5, m_mul=0.8, min_lr_ratio=0.1, **kw),
        "keras_adam": lambda **kw: keras.optimizers.Adam(3e-3, **kw),
    }


OPTIMIZERS = _optimizers()


def data(n=128):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, :3].sum(axis=1) > 0).astype("int32")
    return x, y


def make_model():
    # synchronized=True: batch statistics over the global batch, as on one
    # device (plain BatchNormalization would normalize each replica's half).
    keras.utils.set_random_seed(1)
    return keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="tanh"),
        keras.layers.BatchNormalization(synchronized=True),
        keras.layers.Dense(2),
    ])


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def fit(name, strategy=None, jit_compile=False, policy="float32", **optimizer_kwargs):
    """`model.fit` with optimizer `name`, everything built in `strategy`.

    `policy` is the dtype policy to build the model under (then reset to
    float32); Keras wraps the optimizer in a LossScaleOptimizer for
    "mixed_float16".
    """
    scope = strategy.scope() if strategy is not None else _no_scope()
    keras.config.set_dtype_policy(policy)
    try:
        with scope:
            model = make_model()
            model.compile(optimizer=OPTIMIZERS[name](**optimizer_kwargs),
                          loss=_loss(), jit_compile=jit_compile)
    finally:
        keras.config.set_dtype_policy("float32")
    x, y = data()
    model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=EPOCHS, verbose=0, shuffle=False)
    return model


class _no_scope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def train_custom_loop(name, strategy=None):
    """The TF custom training loop (`strategy.run` + `apply_gradients`).

    Each step's global batch is rows [16 s, 16 s + 16) whatever the number
    of replicas: replica r of R gets the r-th of R equal slices of it.
    Returns (model, optimizer).
    """
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = make_model()
        optimizer = OPTIMIZERS[name]()
        optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="sum")
    x, y = data()

    def dataset_fn(context):
        replicas = context.num_replicas_in_sync
        per_replica = GLOBAL_BATCH // replicas
        rows = [
            step * GLOBAL_BATCH + context.input_pipeline_id * per_replica + i
            for step in range(len(x) // GLOBAL_BATCH)
            for i in range(per_replica)
        ]
        return tf.data.Dataset.from_tensor_slices((x[rows], y[rows])).batch(per_replica)

    def replica_step(batch_x, batch_y):
        with tf.GradientTape() as tape:
            loss = loss_fn(batch_y, model(batch_x, training=True)) / GLOBAL_BATCH
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    @tf.function
    def train_step(iterator):
        strategy.run(replica_step, args=next(iterator))

    for _ in range(EPOCHS):
        iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
        for _ in range(len(x) // GLOBAL_BATCH):
            train_step(iterator)
    return model, optimizer


def _numpy(value):
    if isinstance(value, keras.Variable):
        value = value.value
    if hasattr(value, "values") and not hasattr(value, "numpy"):  # PerReplica
        value = value.values[0]
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def state(model, optimizer=None):
    """Weights (trainable and not), optimizer variables and predictions."""
    optimizer = optimizer or model.optimizer
    arrays = {f"weight/{i}": _numpy(v) for i, v in enumerate(model.weights)}
    for i, variable in enumerate(optimizer.variables):
        arrays[f"optimizer/{i}"] = _numpy(variable)  # paths vary with layer naming
    arrays["predictions"] = _numpy(model(data()[0], training=False))
    return arrays


def _error(exception):
    return f"{type(exception).__name__}: {exception}"[:2000]


def _write(out, name, record, arrays=None):
    with open(os.path.join(out, name + ".json"), "w") as file:
        json.dump(record, file)
    if arrays is not None:
        np.savez(os.path.join(out, name + ".npz"), **arrays)


# What the mirrored run covers: case name -> (optimizer name, fit keywords).
MIRRORED_CASES = {
    **{name: (name, {}) for name in OPTIMIZERS if name != "keras_adam"},
    "adamw-ema": ("adamw", dict(use_ema=True, ema_momentum=0.9)),
    "adamwr-mixed_float16": ("adamwr", dict(policy="mixed_float16")),
    "adamw-ema_overwrite": ("adamw", dict(use_ema=True, ema_momentum=0.9,
                                          ema_overwrite_frequency=3)),
    "keras_adam-ema_overwrite": ("keras_adam", dict(use_ema=True, ema_momentum=0.9,
                                                    ema_overwrite_frequency=3)),
    "adamw-accumulation": ("adamw", dict(gradient_accumulation_steps=2)),
    "keras_adam-accumulation": ("keras_adam", dict(gradient_accumulation_steps=2)),
    "adamw-jit": ("adamw", dict(jit_compile=True)),
    "keras_adam-jit": ("keras_adam", dict(jit_compile=True)),
}


def run_mirrored(out):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for case, (name, keywords) in MIRRORED_CASES.items():
        start = time.process_time()
        try:
            model = fit(name, strategy, **keywords)
        except Exception as exception:  # recorded: some cases are known to fail
            _write(out, case, {"error": _error(exception),
                               "replicas": strategy.num_replicas_in_sync,
                               "cpu_seconds": time.process_time() - start})
            continue
        _write(out, case, {"error": None, "replicas": strategy.num_replicas_in_sync,
                           "iterations": int(_numpy(model.optimizer.iterations)),
                           "optimizer": type(model.optimizer).__name__,
                           # XLA update functions made (none under a strategy)
                           "compiled_functions": len(getattr(
                               getattr(model.optimizer, "_scratch", None), "compiled", ())),
                           "cpu_seconds": time.process_time() - start},
               state(model))


MULTIWORKER_OPTIMIZER = "adamwr"  # restarts, normalized decay, an exclusion


def run_worker(index, ports, out):
    """One of two MultiWorkerMirroredStrategy workers on 127.0.0.1."""
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
        "task": {"type": "worker", "index": index},
    })
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    record = {"replicas": strategy.num_replicas_in_sync}
    # Keras' own fit first: in Keras 3.15 it fails before training starts
    # (keras-team/keras#20585), on both workers alike, so the cluster stays
    # in step for the custom loop below.
    try:
        fit(MULTIWORKER_OPTIMIZER, strategy)
        record["fit_error"] = None
    except Exception as exception:
        record["fit_error"] = _error(exception)
    model, optimizer = train_custom_loop(MULTIWORKER_OPTIMIZER, strategy)
    with strategy.scope():
        model.compile(optimizer=optimizer, loss=_loss())
    # Every worker saves (saving may read variables collectively); only the
    # chief's file is kept, the others write to a scratch folder.
    folder = out if index == 0 else os.path.join(out, f"scratch{index}")
    os.makedirs(folder, exist_ok=True)
    model.save(os.path.join(folder, "chief.keras"))
    _write(out, f"worker{index}-state", {"iterations": int(_numpy(optimizer.iterations))},
           state(model, optimizer))
    _write(out, f"worker{index}", record)


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "mirrored":
        run_mirrored(sys.argv[2])
    elif role == "worker":
        run_worker(int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4])
    else:
        raise SystemExit(f"unknown role {role!r}")
