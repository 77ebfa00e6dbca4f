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
import re
import shutil
import socket
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


def atomic_save(model, path, overwrite=True, **kwargs):
    """`model.save` (`.keras`) or `model.save_weights` (`.weights.h5`), atomic.

    Keras writes into `path` itself, so a process killed while saving leaves
    a file that cannot be loaded (and the previous one is gone). Here the
    file is written under a temporary name in the same folder, flushed to
    disk (`fsync`), and renamed over `path` (`os.replace`, atomic on POSIX
    and Windows): after a crash `path` holds either the previous complete
    file or the new one. It never asks a question: with `overwrite=False`
    an existing `path` raises `FileExistsError` (Keras would prompt on the
    terminal). The temporary name carries this host and process id
    (`.run.keras_adamwr-<host>-<pid>-*.tmp.keras`); temporary files that a
    killed save of this host left beside `path` are removed by the next
    `atomic_save` there, once their process is gone. `kwargs` go to Keras'
    method.

    Args:
        model: The Keras model.
        path: A `.keras` or `.weights.h5` path; its folder must exist.
        overwrite: Replace an existing `path`. Defaults to `True`, as in
            Keras; `False` refuses an existing file, without prompting.

    Example:

        keras_adamwr.atomic_save(model, "run.keras")
    """
    path = os.path.abspath(os.fspath(path))
    suffix = next((s for s in (".weights.h5", ".keras") if path.endswith(s)), None)
    if suffix is None:
        raise ValueError(
            "Argument `path` must end in `.keras` or `.weights.h5`. "
            f"Received: path={path!r}")
    if overwrite not in (True, False):
        raise ValueError("Argument `overwrite` must be True or False. "
                         f"Received: overwrite={overwrite!r}")
    if not overwrite and os.path.lexists(path):
        raise _exists(path)
    folder = os.path.dirname(path)
    stem = os.path.basename(path)[:-len(suffix)]
    remove_stale_temporaries(folder, stem)
    descriptor, temporary = tempfile.mkstemp(
        suffix=".tmp" + suffix, prefix=_temporary_prefix(stem), dir=folder)
    os.close(descriptor)
    try:
        # Keras' `overwrite=False` would prompt about our own temporary file.
        if suffix == ".keras":
            model.save(temporary, overwrite=True, **kwargs)
        else:
            model.save_weights(temporary, overwrite=True, **kwargs)
        _fsync(temporary)
        if os.path.exists(path):
            shutil.copymode(path, temporary)  # keep the user's permissions
        else:
            os.chmod(temporary, 0o666 & ~_umask())
        if overwrite:
            os.replace(temporary, path)
        else:
            _rename_no_clobber(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    if os.name == "posix":
        _fsync(folder)  # the rename itself
    return path


def _exists(path):
    return FileExistsError(
        f"{path} already exists and `overwrite=False`: nothing was written. "
        "Pass `overwrite=True` to replace it, or choose another path.")


def _rename_no_clobber(source, target):
    """Renames `source` to `target` unless `target` exists (atomically where
    the file system has hard links)."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise _exists(target) from None
    except OSError:  # no hard links here (e.g. FAT): check, then rename
        if os.path.lexists(target):
            raise _exists(target) from None
        os.replace(source, target)
        return
    os.remove(source)


# Temporary names: ".<stem>.keras_adamwr-<host>-<pid>-<random>.tmp<suffix>"
# (files of `atomic_save`) or ".<stem>.keras_adamwr-<host>-<pid>-<random>"
# (folders of `export_training_state`). Only names of this form whose host
# is this one and whose process is gone are ever removed.
_MARK = ".keras_adamwr-"


def _host():
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"


def _temporary_prefix(stem):
    return f".{stem}{_MARK}{_host()}-{os.getpid()}-"


def _process_gone(pid):
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # e.g. PermissionError: it exists, as another user
        return False
    return False


def remove_stale_temporaries(folder, stem):
    """Removes temporary files and folders of saves to `<stem>` in `folder`
    whose writer (a process of this host) is gone: what killed saves left.
    Names of any other form are never touched."""
    pattern = re.compile(
        re.escape(f".{stem}{_MARK}{_host()}-") + r"(\d+)-[A-Za-z0-9_]+"
        r"(\.tmp\.keras|\.tmp\.weights\.h5)?$")
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = pattern.match(name)
        if match is None or not _process_gone(int(match.group(1))):
            continue
        target = os.path.join(folder, name)
        if match.group(2) is None:
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target, ignore_errors=True)
        elif os.path.isfile(target) and not os.path.islink(target):
            try:
                os.remove(target)
            except OSError:
                pass


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def export_training_state(model, path, input_signature=None):
    """Writes a SavedModel with a serving signature and the training state.

    `serving_default(inputs)` returns `model(inputs, training=False)`; the
    attributes `model_variables` and `optimizer_variables` hold every
    variable of `model.variables` and `model.optimizer.variables`, in order.
    The SavedModel is written to a new folder beside `path` and renamed
    into place when complete; an earlier export at `path` is replaced then
    (two renames: a crash between them leaves it in a folder `<name>.old-*`
    beside `path`). Missing parent folders are created (as `model.export`
    does), and the folders follow the umask, as `mkdir` does. Temporary
    folders that an export killed on this host left beside `path` are
    removed by the next export there.

    Args:
        model: A compiled model.
        path: The SavedModel folder to write.
        input_signature: The serving input, a `tf.TensorSpec`. Defaults to
            `None`: the spec of `model.inputs[0]` with any batch size (a
            Functional or Sequential model); a subclassed model has no
            `inputs`, so pass it, e.g. `tf.TensorSpec((None, 32), "float32")`.

    Example:

        keras_adamwr.export_training_state(model, "export/run")
    """
    import tensorflow as tf

    if input_signature is None:
        try:
            inputs = model.inputs
        except AttributeError:  # a subclassed model
            inputs = None
        if not inputs:
            raise ValueError(
                "Argument `input_signature` is needed for this model: "
                f"{type(model).__name__} has no `inputs` (a subclassed model), "
                "so the serving input is unknown. Pass e.g. "
                "`input_signature=tf.TensorSpec((None, *x.shape[1:]), x.dtype)` "
                "for inputs `x`. Received: input_signature=None")
        input_signature = tf.TensorSpec((None, *inputs[0].shape[1:]), inputs[0].dtype)
    if not isinstance(input_signature, tf.TensorSpec):
        raise ValueError(
            "Argument `input_signature` must be a `tf.TensorSpec`. "
            f"Received: input_signature={input_signature!r}")
    module = tf.Module()
    module.model_variables = list(model.variables)
    module.optimizer_variables = list(model.optimizer.variables)
    module.serve = tf.function(lambda inputs: model(inputs, training=False),
                               input_signature=[input_signature])
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    remove_stale_temporaries(parent, name)
    temporary = tempfile.mkdtemp(prefix=_temporary_prefix(name), dir=parent)
    try:
        os.chmod(temporary, 0o777 & ~_umask())  # mkdtemp's is 0700
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
