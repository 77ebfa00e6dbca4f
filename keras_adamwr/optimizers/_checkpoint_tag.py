"""A format tag in `tf.train.Checkpoint`s of our optimizers (TensorFlow).

Keras' saving stores carry the tag of `_state.py`; TensorFlow's checkpoints
hold only the optimizer's variables, by position, so a Keras
`SGD(momentum=0.9)` checkpoint (momentum `-lr * g`) would restore into
`SGDW` (momentum `+lr * g`) unnoticed. On TensorFlow every optimizer of
this package therefore has one more checkpoint dependency, an empty object
whose *name* is the tag (`keras_adamwr_format__SGDW__1`), listed first.
Restoring reads the checkpoint's dependencies of the optimizer in order,
before assigning any value: a first dependency other than our tag means
state of another optimizer (or of keras_adamwr 0.3.0 or older, which wrote
none), and the restore raises `ValueError` there. Such old checkpoints
restore inside `keras_adamwr.untagged_checkpoint_state()`.

Since 0.5.0 a second empty dependency is named by the list of the model
variables the optimizer's variables belong to, in order (`VARIABLES_PREFIX`
+ JSON); restoring compares it with the optimizer's own list (at once if
built, else at the end of `build`) and refuses state saved for the same
variables in another order (see `_state.py`). Checkpoints without it
restore as before.

Hooks: TensorFlow's `Trackable._trackable_children` (saving) and
`_lookup_dependency` (restoring; called with the dependencies dict), pinned
by tests/test_checkpoint_tag.py.
"""

import contextlib
import json
import threading

TAG_PREFIX = "keras_adamwr_format__"
# A second empty dependency (0.5.0), named by the JSON list of the model
# variable of each optimizer variable (see `_state.py`): restoring state
# saved for the same variables in another order is refused.
VARIABLES_PREFIX = "keras_adamwr_variables__"
_untagged = threading.local()


@contextlib.contextmanager
def untagged_checkpoint_state():
    """Lets `tf.train.Checkpoint.restore` read optimizer state without a
    keras_adamwr format tag, as keras_adamwr 0.3.0 and older wrote it.

    Such state cannot be told from another optimizer's by its variables
    (Keras' `SGD(momentum=0.9)` has `SGDW`'s layout, with the momentum's
    sign flipped), so outside this context it is refused. Use it only for
    a checkpoint that keras_adamwr 0.3.0 or older wrote with the same
    optimizer:

    ```python
    with keras_adamwr.untagged_checkpoint_state():
        status = checkpoint.restore(path)
    ```
    """
    previous = getattr(_untagged, "allowed", False)
    _untagged.allowed = True
    try:
        yield
    finally:
        _untagged.allowed = previous


class CheckpointTag:
    """Mixin of `DecoupledWeightDecay`: the tag dependency (TensorFlow)."""

    def _checkpoint_tag_name(self):
        return TAG_PREFIX + self._state_format().replace("keras_adamwr.", "").replace(
            "/", "__")

    def _checkpoint_tag(self, key="_checkpoint_tag_object"):
        tag = self.__dict__.get(key)
        if tag is None:
            import tensorflow as tf

            tag = tf.__internal__.tracking.AutoTrackable()
            # Not an attribute assignment: Keras' TF trackable would track it
            # a second time under the attribute's name.
            self.__dict__[key] = tag
        return tag

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        children = super()._trackable_children(save_type, **kwargs)
        name = self._checkpoint_tag_name()
        tags = {name: self._checkpoint_tag()}
        if self.built and save_type == "checkpoint":
            owners = VARIABLES_PREFIX + json.dumps(self._variable_owners())
            tags[owners] = self._checkpoint_tag("_checkpoint_variables_object")
        return {**tags, **children}

    def _lookup_dependency(self, name, cached_dependencies=None):
        if cached_dependencies is None:  # not a restore (e.g. tracking)
            return super()._lookup_dependency(name, cached_dependencies)
        restore = self._update_uid
        if name == self._checkpoint_tag_name():
            self.__dict__["_checkpoint_tag_restore"] = restore
            return self._checkpoint_tag()
        if name.startswith(VARIABLES_PREFIX):
            owners = json.loads(name[len(VARIABLES_PREFIX):])
            if self.built:
                self._check_variable_owners(owners)
            else:  # checked at the end of `build`
                self._scratch.pending_owners = owners
            return self._checkpoint_tag("_checkpoint_variables_object")
        if name.startswith(TAG_PREFIX):
            raise ValueError(
                f"Optimizer {self.name!r} ({type(self).__name__}) cannot restore "
                f"this checkpoint's optimizer state: its format is {name[len(TAG_PREFIX):]!r}"
                f" and this optimizer's is {self._checkpoint_tag_name()[len(TAG_PREFIX):]!r}"
                " (saved by another optimizer class or a newer keras_adamwr). "
                "Restore it into the optimizer that wrote it."
            )
        tagged = self.__dict__.get("_checkpoint_tag_restore") == restore
        if not tagged and not getattr(_untagged, "allowed", False):
            raise ValueError(
                f"Optimizer {self.name!r} ({type(self).__name__}) cannot restore "
                "this checkpoint's optimizer state: it carries no keras_adamwr "
                "format tag, so it was written by another optimizer (e.g. "
                "keras.optimizers.SGD, whose momentum is -lr * g where SGDW's is "
                "+lr * g) or by keras_adamwr 0.3.0 or older; its variables "
                "cannot tell which. Nothing was restored. If keras_adamwr 0.3.0 "
                "or older wrote it with this optimizer, restore it inside `with "
                "keras_adamwr.untagged_checkpoint_state():`; to restore the "
                "model only, leave the optimizer out of the `tf.train.Checkpoint`."
            )
        return super()._lookup_dependency(name, cached_dependencies)
