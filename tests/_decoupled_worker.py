"""New process of tests/test_decoupled.py::test_model_save_and_load_in_a_new_process:
`python -m tests._decoupled_worker FOLDER NAME...` loads FOLDER/NAME.keras
after `import keras_adamwr`, resumes it, and writes FOLDER/NAME.resumed.npz.

The user's class is loaded once before its module is imported (the error
goes to FOLDER/unregistered.txt), then after.
"""

import sys

import keras
import numpy as np

import keras_adamwr  # noqa: F401  (registers the decoupled Keras optimizers)


def main(folder, names):
    try:
        keras.saving.load_model(f"{folder}/ScaledMomentum.keras")
        message = "loaded"
    except Exception as error:  # noqa: BLE001 - the message is the result
        message = f"{type(error).__name__}: {error}"
    with open(f"{folder}/unregistered.txt", "w") as file:
        file.write(message)

    from tests import test_decoupled  # registers ScaledMomentum and its decoupled class

    for name in names:
        model = keras.saving.load_model(f"{folder}/{name}.keras")
        optimizer = model.optimizer
        for grads in test_decoupled.saving_grads(model)[test_decoupled.SAVED_AT:]:
            optimizer.apply(grads, model.trainable_variables)
        np.savez(f"{folder}/{name}.resumed.npz",
                 *[keras.ops.convert_to_numpy(v) for v in model.variables + optimizer.variables],
                 class_name=type(optimizer).__name__)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
