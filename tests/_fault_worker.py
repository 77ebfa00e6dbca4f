"""A training process for the fault test in `tests/test_persistence.py`.

    python -m tests._fault_worker RUN_DIR [KILL_AT_STEP]

Trains a tiny model with `AdamWR` (AMSGrad, bias excluded from the decay)
under `keras.callbacks.BackupAndRestore(save_freq="epoch")` and an
`AnytimeRecorder` writing to `RUN_DIR/anytime`. With `KILL_AT_STEP`, the
process SIGKILLs itself right after that weight update (no cleanup, no
`on_train_end`: a real crash). Without it, training runs (or resumes) to
the end and every model and optimizer variable goes to `RUN_DIR/final.npz`.
The test imports `train` to make the uninterrupted reference run.
"""

import os
import signal
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_adamwr  # noqa: E402

BATCH_SIZE = 8
SAMPLES = 64  # 8 updates per epoch
EPOCHS = 6  # 48 updates
FIRST_CYCLE_STEPS = 6  # cycles end after 6, 18 and 42 updates


def data(samples=SAMPLES, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, 6)).astype("float32")
    y = (x[:, :3].sum(axis=1) > 0).astype("int32")
    return x, y


def build_model():
    """The same initial weights in every process (seeded initializers)."""
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="tanh",
                           kernel_initializer=keras.initializers.GlorotUniform(seed=1)),
        keras.layers.Dense(2, kernel_initializer=keras.initializers.GlorotUniform(seed=2)),
    ])
    model.compile(
        optimizer=keras_adamwr.AdamWR(1e-2, first_cycle_steps=FIRST_CYCLE_STEPS,
                                      amsgrad=True, exclude_from_weight_decay=["bias"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    return model


def state(model):
    """Every model and optimizer variable, as numpy arrays, in a fixed order."""
    return [variable.numpy() for variable in model.variables + model.optimizer.variables]


class _KillAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def train(run_dir, kill_at_step=None):
    """Runs (or resumes) the whole training; returns the model."""
    model = build_model()
    x, y = data()
    callbacks = [
        # Before BackupAndRestore, so that a row is on disk before a backup.
        keras_adamwr.AnytimeRecorder(data(32, seed=1), log_dir=os.path.join(run_dir, "anytime"),
                                     verbose=0),
        keras.callbacks.BackupAndRestore(os.path.join(run_dir, "backup"), save_freq="epoch"),
    ]
    if kill_at_step is not None:
        callbacks.append(_KillAt(kill_at_step))
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=callbacks)
    return model


def main(argv):
    run_dir = argv[1]
    kill_at_step = int(argv[2]) if len(argv) > 2 else None
    model = train(run_dir, kill_at_step)
    np.savez(os.path.join(run_dir, "final.npz"), *state(model))


if __name__ == "__main__":
    main(sys.argv)
