"""Snapshot ensembles from the weights saved at each cycle end."""

import os
import re
import tempfile

import keras
import numpy as np

_SNAPSHOT = re.compile(r"^snapshot-cycle(\d+)\.weights\.h5$")
_TEMPORARY_PREFIX = ".snapshot-"


def list_snapshots(folder):
    """`(cycle, path)` of the snapshots in `folder`, oldest cycle first."""
    if not os.path.isdir(folder):
        return []
    found = [(int(match.group(1)), os.path.join(folder, name))
             for name in os.listdir(folder) if (match := _SNAPSHOT.match(name))]
    return sorted(found)


def save_snapshot(model, folder, cycle, keep=None):
    """Saves `snapshot-cycle{cycle:03d}.weights.h5`; keeps the last `keep`.

    The weights go to a unique temporary file in `folder` first, renamed
    when complete: a crash never leaves a truncated snapshot under the
    snapshot's name (`remove_partial_snapshots` clears the temporary file).
    """
    os.makedirs(folder, exist_ok=True)
    name = f"snapshot-cycle{cycle:03d}.weights.h5"
    descriptor, temporary = tempfile.mkstemp(
        dir=folder, prefix=_TEMPORARY_PREFIX, suffix=".weights.h5")
    os.close(descriptor)
    try:
        model.save_weights(temporary, overwrite=True)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temporary, 0o666 & ~mask)  # mkstemp made it 0o600
        os.replace(temporary, os.path.join(folder, name))
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    if keep is not None:
        for _, path in list_snapshots(folder)[:-keep]:
            os.remove(path)


def remove_partial_snapshots(folder):
    """Deletes the temporary files of snapshots a crash interrupted."""
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.startswith(_TEMPORARY_PREFIX):
                os.remove(os.path.join(folder, name))


def snapshot_ensemble_predict(model, snapshot_paths, x, batch_size=None):
    """Averages `model.predict(x)` over weight snapshots (snapshot ensemble).

    Loads each of `snapshot_paths` (e.g. `AnytimeRecorder.snapshot_paths`)
    into `model`, predicts, and restores the model's own weights and
    optimizer state afterwards (`load_weights` overwrites both).
    The outputs are averaged as the model returns them: give it a softmax
    output to average probabilities (Huang et al. 2017).
    """
    snapshot_paths = list(snapshot_paths)
    if not snapshot_paths:
        raise ValueError("Argument `snapshot_paths` must name at least one "
                         "weights file. Received: snapshot_paths=[]")
    # `.weights.h5` files hold the optimizer state too: keep both.
    variables = list(model.variables)
    if model.optimizer is not None and model.optimizer.built:
        variables += list(model.optimizer.variables)
    original = [variable.numpy() for variable in variables]
    predictions = []
    try:
        for path in snapshot_paths:
            model.load_weights(path)
            predictions.append(model.predict(x, batch_size=batch_size, verbose=0))
    finally:
        for variable, value in zip(variables, original):
            variable.assign(value)
    return keras.tree.map_structure(
        lambda *outputs: np.mean(np.stack(outputs), axis=0), *predictions)
