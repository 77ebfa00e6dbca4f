"""Writes the keras_adamwr 0.4.0 state files in this folder.

Run once with the 0.4.0 code (the last flat layout) first on the path (commit 29b5d78):

    mkdir /tmp/v040 && git archive 29b5d78 keras_adamwr | tar x -C /tmp/v040
    PYTHONPATH=/tmp/v040 KERAS_BACKEND=tensorflow python tests/data/v0_4_0/make.py

Each optimizer trains a small model for 7 updates (inside a restart cycle),
saves `.keras` and `.weights.h5`, then trains 8
more; `<name>.npz` holds every model and optimizer variable at both points
(`saved_*`, `final_*`). tests/test_persistence.py loads them with the
current code (the package was reorganised into subpackages after 0.4.0:
the `.keras` files name the old module paths).
"""

import os
import sys

import keras
import numpy as np

import keras_adamwr

assert keras_adamwr.__version__ == "0.4.0", keras_adamwr.__file__
HERE = os.path.dirname(os.path.abspath(__file__))
OPTIMIZERS = {
    "adamwr": lambda: keras_adamwr.AdamWR(
        3e-3, first_cycle_steps=4, amsgrad=True, exclude_from_weight_decay=["bias$"]),
    "sgdw": lambda: keras_adamwr.SGDW(0.05, momentum=0.9, weight_decay=1e-3),
}


def data():  # tests/test_fit.py's `_data()`
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 6)).astype("float32")
    y = (x[:, :3].sum(axis=1) > 0).astype("int32")
    return x, y


def model(optimizer, seed=3):
    keras.utils.set_random_seed(seed)
    result = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"),
                               keras.layers.Dense(2)])
    result.compile(optimizer=optimizer, jit_compile=False,
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return result


def state(trained):
    return [v.numpy() for v in trained.variables + trained.optimizer.variables]


def main():
    x, y = data()
    for name, make in OPTIMIZERS.items():
        trained = model(make())
        trained.fit(x[:112], y[:112], batch_size=16, epochs=1, shuffle=False, verbose=0)
        saved = state(trained)
        trained.save(os.path.join(HERE, f"{name}.keras"))
        trained.save_weights(os.path.join(HERE, f"{name}.weights.h5"))
        trained.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        arrays = {f"saved_{i}": v for i, v in enumerate(saved)}
        arrays.update({f"final_{i}": v for i, v in enumerate(state(trained))})
        np.savez(os.path.join(HERE, f"{name}.npz"), **arrays)


if __name__ == "__main__":
    sys.exit(main())
