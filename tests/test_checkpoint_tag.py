"""`tf.train.Checkpoint`: optimizer state of another optimizer is refused.

Regression (issue 10, item 4): a Keras `SGD(momentum=0.9)` checkpoint has
`SGDW`'s variables by position (its momentum holds `-lr * g`, ours
`+lr * g`) and restored into `SGDW` unnoticed; the next step went the wrong
way. The checkpoint now carries a tag dependency (keras_adamwr/optimizers/_checkpoint_tag.py,
which pins TensorFlow's `_trackable_children` / `_lookup_dependency` hooks).
0.2.0 checkpoints: tests/test_persistence.py::test_v020_tf_checkpoint_restores.
"""

import numpy as np
import pytest

import keras
import keras_adamwr

pytestmark = pytest.mark.tensorflow_only
tf = pytest.importorskip("tensorflow")


def _trained(optimizer, seed=0, steps=2):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer, "mse")
    x = np.linspace(0, 1, 12, dtype="float32").reshape(4, 3)
    model.fit(x, x[:, :2] * 2, epochs=steps, verbose=0)
    return model


def _save(model, path):
    return tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(str(path))


def _state(model):
    return [np.array(v) for v in model.variables + model.optimizer.variables]


SOURCES = {
    "keras_sgd": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
    "keras_adamw": lambda: keras.optimizers.AdamW(1e-2),
    "adamw": lambda: keras_adamwr.AdamW(1e-2, weight_decay=1e-4),
}
TARGETS = {
    "sgdw": lambda: keras_adamwr.SGDW(0.1, momentum=0.9, weight_decay=0.0),
    "adamw": lambda: keras_adamwr.AdamW(1e-2, weight_decay=1e-4),
}


@pytest.mark.parametrize("built", [True, False], ids=["built", "unbuilt"])
@pytest.mark.parametrize("source,target", [
    ("keras_sgd", "sgdw"), ("keras_adamw", "adamw"), ("adamw", "sgdw")])
def test_state_of_another_optimizer_is_refused(tmp_path, source, target, built):
    path = _save(_trained(SOURCES[source]()), tmp_path / "ckpt")
    model = _trained(TARGETS[target](), seed=1, steps=1 if built else 0)
    before = _state(model)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    match = "format" if source == "adamw" else "no keras_adamwr format tag"
    with pytest.raises(ValueError, match=match):
        checkpoint.restore(path)
    keras_adamwr.build_optimizer(model)
    for old, new in zip(before, _state(model)):  # nothing restored
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_own_state_restores_exactly(tmp_path, name):
    saved = _trained(TARGETS[name]())
    path = _save(saved, tmp_path / "ckpt")
    model = _trained(TARGETS[name](), seed=1, steps=0)
    status = tf.train.Checkpoint(model=model, optimizer=model.optimizer).restore(path)
    keras_adamwr.build_optimizer(model)
    status.assert_consumed()
    for old, new in zip(_state(saved), _state(model)):
        np.testing.assert_array_equal(old, new)


def test_checkpoint_lists_the_tag_first(tmp_path):
    path = _save(_trained(TARGETS["sgdw"]()), tmp_path / "ckpt")
    graph = tf.train.load_checkpoint(path).get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH")
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    proto = trackable_object_graph_pb2.TrackableObjectGraph.FromString(graph)
    root = {c.local_name: c.node_id for c in proto.nodes[0].children}
    children = [c.local_name for c in proto.nodes[root["optimizer"]].children]
    assert children[0] == "keras_adamwr_format__SGDW__1", children


# Issue 18, item 4: a checkpoint names the model variable of each optimizer
# variable; state for the same variables in another order is refused.

@pytest.mark.parametrize("built", [True, False], ids=["built", "unbuilt"])
def test_checkpoint_saved_for_variables_in_another_order_is_refused(built, tmp_path):
    from keras_adamwr import build_optimizer
    from tests.test_persistence import _two_layers

    rng = np.random.default_rng(0)
    source = _two_layers(True, keras_adamwr.AdamW(1e-2))
    source.fit(rng.normal(size=(16, 3)), rng.normal(size=(16, 3)), verbose=0, batch_size=8)
    path = tf.train.Checkpoint(model=source, optimizer=source.optimizer).write(
        str(tmp_path / "ckpt"))
    same = _two_layers(True, keras_adamwr.AdamW(1e-2))
    tf.train.Checkpoint(model=same, optimizer=same.optimizer).read(path)
    build_optimizer(same)
    for a, b in zip(same.optimizer.variables, source.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    swapped = _two_layers(False, keras_adamwr.AdamW(1e-2))
    if built:
        build_optimizer(swapped)
        before = [v.numpy() for v in swapped.optimizer.variables]
    with pytest.raises(ValueError, match="another order") as error:
        tf.train.Checkpoint(model=swapped, optimizer=swapped.optimizer).read(path)
        build_optimizer(swapped)  # unbuilt: checked when `build` makes the slots
    assert "/b/kernel:momentum'" in str(error.value)
    if built:  # refused before any optimizer value was restored
        for a, b in zip(swapped.optimizer.variables, before):
            np.testing.assert_array_equal(a.numpy(), b)
