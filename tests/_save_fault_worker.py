"""A process killed while it saves, for tests/test_saving_faults.py.

    python -m tests._save_fault_worker HOW PATH [KILL_AT_SAVE]

Trains the model of `tests/_fault_worker.py` and saves it to PATH with
HOW: "keras" (`model.save`), "weights" (`model.save_weights`), "atomic"
(`keras_adamwr.atomic_save`) after 2 epochs, or "backup" (a `fit` of 6
epochs under `BackupAndRestore(PATH, double_checkpoint=True)`, which writes
`final.npz` beside PATH when it gets to the end). With KILL_AT_SAVE = k,
the process SIGKILLs itself in the middle of the k-th save: right after
the optimizer has written its variables into the file, before Keras has
finished (closed) the file.
"""

import os
import signal
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_adamwr  # noqa: E402
from tests import _fault_worker as base  # noqa: E402


def kill_in_save(k):
    """SIGKILL in the k-th `save_own_variables` of the optimizer."""
    original = keras_adamwr.AdamWR.save_own_variables
    calls = [0]

    def save_own_variables(self, store):
        original(self, store)
        calls[0] += 1
        if calls[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)

    keras_adamwr.AdamWR.save_own_variables = save_own_variables


def main(how, path, kill_at_save=None):
    if kill_at_save is not None:
        kill_in_save(int(kill_at_save))
    model = base.build_model()
    x, y = base.data()
    if how == "backup":
        backup = keras.callbacks.BackupAndRestore(path, double_checkpoint=True)
        model.fit(x, y, batch_size=base.BATCH_SIZE, epochs=base.EPOCHS, shuffle=False,
                  verbose=0, callbacks=[backup])
        np.savez(os.path.join(os.path.dirname(path), "final.npz"), *base.state(model))
        return
    model.fit(x, y, batch_size=base.BATCH_SIZE, epochs=2, shuffle=False, verbose=0)
    if how == "keras":
        model.save(path)
    elif how == "weights":
        model.save_weights(path)
    else:
        keras_adamwr.atomic_save(model, path)


if __name__ == "__main__":
    main(*sys.argv[1:])
