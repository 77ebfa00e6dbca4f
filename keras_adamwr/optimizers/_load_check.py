"""`Model.load_weights` checks our optimizer's saved state before loading.

Keras' `load_weights` restores the layers first and the optimizer last, and
an error of one object is raised only after the others were loaded: when
our optimizer refuses the file's optimizer state (saved by another
optimizer class, or with another variable count), the model's weights
would already be those of the file. So `keras.Model.load_weights` is
wrapped once, at import: for a model whose optimizer is one of ours (also
inside a `LossScaleOptimizer`), the optimizer's part of a `.weights.h5` or
`.keras` file is checked first (format tag, the saving optimizer's name
of untagged state, the variable count of a built optimizer), and a
refusal raises `ValueError` before any variable changes. Everything else
(other models, `skip_mismatch=True`, `objects_to_skip`, legacy `.h5`) goes
to Keras unchanged, as does a subclass that overrides `load_own_variables`;
what the check cannot read is left to Keras' own load.

Depends on the layout of Keras' H5 store (group `optimizer/vars`, keys
"0", "1", ..., attribute `name`), pinned by tests/test_saving_edges.py
(a refusal there must leave the weights unchanged).
"""

import functools
import json
import os
import zipfile

import keras
import numpy as np

from keras_adamwr.optimizers._state import FORMAT_KEY
from keras_adamwr.optimizers._state import VARIABLES_KEY

_WRAPPED = "_keras_adamwr_checks_optimizer_state"


class _Store:
    """What `load_own_variables` reads, on an h5py group (Keras' H5Entry
    has the same `keys`, `[]` and `_h5_entry_group`)."""

    def __init__(self, group):
        self._h5_entry_group = group

    def keys(self):
        return list(self._h5_entry_group.keys())

    def __getitem__(self, key):
        return np.asarray(self._h5_entry_group[key])


def _ours(model):
    from keras_adamwr.optimizers.base import DecoupledWeightDecay

    optimizer = getattr(model, "optimizer", None)
    path = ["optimizer"]
    while isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
        path.append("inner_optimizer")
    # A user's subclass that overrides `load_own_variables` decides itself.
    own = getattr(type(optimizer).load_own_variables, "__module__", "") or ""
    if isinstance(optimizer, DecoupledWeightDecay) and own.startswith("keras_adamwr."):
        return optimizer, "/".join(path + ["vars"])
    return None, None


def check_before_loading(model, filepath):
    """Raises what our optimizer would raise on `filepath`'s optimizer
    state, before anything is loaded; returns quietly when it would load
    or when the file cannot be read here."""
    optimizer, group_path = _ours(model)
    if optimizer is None:
        return
    import h5py

    filepath = os.fspath(filepath)
    archive = None
    try:
        if filepath.endswith(".keras"):
            archive = zipfile.ZipFile(filepath, "r")
            handle = h5py.File(archive.open("model.weights.h5"), "r")
        elif filepath.endswith(".weights.h5"):
            handle = h5py.File(filepath, "r")
        else:
            return
    except Exception:  # noqa: BLE001 (Keras' own load reports it)
        if archive is not None:
            archive.close()
        return
    try:
        group = handle.get(group_path)
        if group is None:
            return
        store = _Store(group)
        keys = set(store.keys())
        tagged = FORMAT_KEY in keys
        if tagged:
            optimizer._check_format_tag(store[FORMAT_KEY])
            keys.discard(FORMAT_KEY)
        else:
            optimizer._check_untagged_state(store)
        owners = None
        if VARIABLES_KEY in keys:  # 0.5.0 and newer: the slots' model variables
            keys.discard(VARIABLES_KEY)
            owners = json.loads(bytes(np.asarray(store[VARIABLES_KEY], np.uint8)).decode())
        if optimizer.built:
            _check_count(optimizer, len(keys), tagged)
            if owners is not None:
                optimizer._check_variable_owners(owners)
    finally:
        handle.close()
        if archive is not None:
            archive.close()


def _check_count(optimizer, count, tagged):
    expected = len(optimizer.variables)
    scale = getattr(optimizer, "_learning_rate_scale", None)
    if count == expected or (not tagged and scale is not None and count == expected - 1):
        return
    raise ValueError(
        f"Optimizer {optimizer.name!r} ({type(optimizer).__name__}) has "
        f"{expected} variables but the saved state has {count}: it was saved "
        "by an optimizer with other settings (`amsgrad`, `momentum`, a float "
        "or a schedule learning rate) or for other model variables. Nothing "
        "was loaded. Compile with the optimizer that wrote the file, or pass "
        "`skip_mismatch=True` to `load_weights` to load the model weights only."
    )


def install():
    """Wraps `keras.Model.load_weights` (once per process)."""
    original = keras.Model.load_weights
    if getattr(original, _WRAPPED, False):
        return

    @functools.wraps(original)
    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        if not skip_mismatch and kwargs.get("objects_to_skip") is None:
            check_before_loading(self, filepath)
        return original(self, filepath, skip_mismatch=skip_mismatch, **kwargs)

    setattr(load_weights, _WRAPPED, True)
    keras.Model.load_weights = load_weights
