"""Saving and resuming with the optimizer state: the steps Keras leaves out.

* `build_optimizer(model)`: creates the optimizer's variables, e.g. before
  `Model.load_weights` of a weights file (the optimizers also keep state
  loaded into an unbuilt optimizer until `build`, and raise on a file of
  another configuration instead of skipping it, as Keras does).
* `export_training_state` / `restore_training_state`: a TensorFlow
  SavedModel that carries the optimizer state beside a serving signature,
  and its restore into fresh Python objects (TensorFlow backend).
* `atomic_save(model, path)`: `model.save` / `model.save_weights` that a
  crash cannot leave half-written (Keras writes its files in place).
"""

import os
import shutil
import tempfile


def build_optimizer(model):
    """Creates the optimizer's variables, so that `load_weights` can fill them.

    Keras' `Model.load_weights` restores optimizer state only into a built
    optimizer: into a freshly compiled one it warns ("Skipping variable
    loading for optimizer") and keeps step 0 and zero slots.
    """
    model.optimizer.build(model.trainable_variables)
    return model.optimizer


def _fsync(path):
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def atomic_save(model, path, **kwargs):
    """`model.save` (`.keras`) or `model.save_weights` (`.weights.h5`), atomic.

    Keras writes into `path` itself, so a process killed while saving leaves
    a file that cannot be loaded (and the previous one is gone). Here the
    file is written under a temporary name in the same folder, flushed to
    disk (`fsync`), and renamed over `path` (`os.replace`, atomic on POSIX
    and Windows): after a crash `path` holds either the previous complete
    file or the new one. `kwargs` go to Keras' method.

    Example:

        keras_adamwr.atomic_save(model, "run.keras")
    """
    path = os.path.abspath(os.fspath(path))
    suffix = next((s for s in (".weights.h5", ".keras") if path.endswith(s)), None)
    if suffix is None:
        raise ValueError(
            "Argument `path` must end in `.keras` or `.weights.h5`. "
            f"Received: path={path!r}")
    folder = os.path.dirname(path)
    descriptor, temporary = tempfile.mkstemp(
        suffix=".tmp" + suffix, prefix="." + os.path.basename(path)[:-len(suffix)] + "-",
        dir=folder)
    os.close(descriptor)
    try:
        if suffix == ".keras":
            model.save(temporary, **kwargs)
        else:
            model.save_weights(temporary, **kwargs)
        _fsync(temporary)
        if os.path.exists(path):
            shutil.copymode(path, temporary)  # keep the user's permissions
        else:
            os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    if os.name == "posix":
        _fsync(folder)  # the rename itself
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def export_training_state(model, path):
    """Writes a SavedModel with a serving signature and the training state.

    `serving_default(inputs)` returns `model(inputs, training=False)`; the
    attributes `model_variables` and `optimizer_variables` hold every
    variable of `model.variables` and `model.optimizer.variables`, in order.
    The SavedModel is written to a new folder beside `path` and renamed
    into place when complete; an earlier export at `path` is replaced then
    (two renames: a crash between them leaves it in a folder `<name>.old-*`
    beside `path`).
    """
    import tensorflow as tf

    module = tf.Module()
    module.model_variables = list(model.variables)
    module.optimizer_variables = list(model.optimizer.variables)
    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), model.inputs[0].dtype)
    module.serve = tf.function(lambda inputs: model(inputs, training=False),
                               input_signature=[spec])
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    temporary = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
    try:
        tf.saved_model.save(module, temporary,
                            signatures={"serving_default": module.serve})
        for root, _, files in os.walk(temporary):
            for file in files:
                _fsync(os.path.join(root, file))
        old = None
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=f"{name}.old-", dir=parent)
            os.replace(path, os.path.join(old, name))
        os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old)


def restore_training_state(path, model):
    """Copies the state of `export_training_state` into a compiled `model`.

    Builds the optimizer, checks that counts, shapes and dtypes match
    (raising `ValueError` before assigning anything) and returns the loaded
    SavedModel, whose `signatures["serving_default"]` still serves.
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(os.fspath(path))
    build_optimizer(model)
    pairs = []
    optimizer_variables = list(model.optimizer.variables)
    scale = getattr(model.optimizer, "_learning_rate_scale", None)
    if (scale is not None and optimizer_variables[-1] is scale
            and len(loaded.optimizer_variables) == len(optimizer_variables) - 1):
        optimizer_variables.pop()  # 0.2.0 state: no scale yet, it stays 1
    for kind, saved, current in (
            ("model", loaded.model_variables, model.variables),
            ("optimizer", loaded.optimizer_variables, optimizer_variables)):
        if len(saved) != len(current):
            raise ValueError(
                f"The SavedModel at {path} holds {len(saved)} {kind} variables, "
                f"but the {kind} to restore has {len(current)}: it was saved with "
                "another configuration (e.g. `amsgrad`, `momentum`, a float or "
                "schedule learning rate, or another architecture).")
        for source, target in zip(saved, current):
            if (tuple(source.shape) != tuple(target.shape)
                    or source.dtype != tf.as_dtype(target.dtype)):
                raise ValueError(
                    f"The SavedModel at {path} holds {kind} variable {source.name} "
                    f"with shape {tuple(source.shape)} and dtype {source.dtype.name}, "
                    f"which cannot be restored into {target.path} with shape "
                    f"{tuple(target.shape)} and dtype {target.dtype}.")
        pairs += zip(saved, current)
    for source, target in pairs:
        target.assign(source.numpy())
    return loaded
