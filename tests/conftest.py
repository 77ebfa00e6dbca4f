"""Test set-up: the backend, quiet logs, float32 policy restored, and the
tests that need TensorFlow itself.

The backend is KERAS_BACKEND when set outside (tensorflow otherwise), so the
same suite runs as `KERAS_BACKEND=jax pytest tests` (see `tools/test.sh
--matrix`). Tests that use TensorFlow's own API (`tf.function`,
`tf.IndexedSlices`, `tf.train.Checkpoint`, SavedModel, `tf.distribute`,
`tf.summary`, `tf.data`, the XLA update of `keras_adamwr/optimizers/_compiled.py`) are
`tensorflow_only`: skipped on the other backends. To add one, either

- decorate it with `@pytest.mark.tensorflow_only` (a whole module:
  `pytestmark = pytest.mark.tensorflow_only`), or
- list its id in TENSORFLOW_ONLY below ("*" matches any text, so
  "tests/test_x.py::test_y[xla-*" selects some parameters of a test).

A test that one other backend cannot run goes in BACKEND_LIMITS with the
reason; one that needs float64 variables goes in FLOAT64 (JAX has none
unless JAX_ENABLE_X64 is set).

A test of code written for Keras on JAX only (examples/reproduce_gpu.py,
the protocol for GPU machines without TensorFlow) goes in JAX_ONLY: it runs
in the JAX cell and is skipped elsewhere.

A module whose tests do not depend on the backend or the Keras version (the
study scripts' statistics, docs claims, file locks, command-line tools) goes
in ONE_CELL: the other cells of `tools/test.sh --matrix` (which set
KERAS_ADAMWR_CELL) skip it, so CI runs it once; `tools/test.sh` alone and a
plain `pytest tests` run it.

A module that needs TensorFlow to import at all goes in TENSORFLOW_MODULES:
it is not collected on the other backends, where TensorFlow may not be
installed. A module that uses `tf` in some of its tests only imports it
with `try: import tensorflow as tf` / `except ImportError: tf = None`.
"""

import os
import re

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()

# Not collected unless the backend is TensorFlow (they import it at the top).
TENSORFLOW_MODULES = [
    "test_compiled.py",    # the XLA update of _compiled.py is TensorFlow's
    "test_distribute.py",  # tf.distribute
]

# Test ids ("*" = any text) that need TensorFlow.
TENSORFLOW_ONLY = [
    # One subprocess each on JAX and TensorFlow: it compares the two.
    "tests/test_backends.py::test_jax_backend_matches_reference_and_tensorflow",
    # jit_compile=True: the XLA update (keras_adamwr/optimizers/_compiled.py).
    "tests/test_optimizers.py::test_lockstep_with_paper[xla-*",
    # tf.function (with and without XLA).
    "tests/test_schedules.py::test_eager_function_and_xla_agree",
    # tf.IndexedSlices.
    "tests/test_optimizers.py::test_sparse_gradients_with_repeated_indices_are_the_gradient*",
    # tf.train.Checkpoint and SavedModel (export/restore_training_state).
    "tests/test_persistence.py::test_tf_train_checkpoint_resumes_exactly*",
    "tests/test_persistence.py::test_saved_model_*",
    "tests/test_persistence.py::test_tf_checkpoint_of_another_configuration_*",
    # tf.summary (TensorBoard) and tf.data.
    "tests/test_callbacks.py::test_tensorboard_scalars",
    "tests/test_callbacks.py::test_epochs_of_a_dataset_of_unknown_size",
    "tests/test_hyperparameters.py::test_dataset_of_unknown_size_gets_epoch_values_every_epoch",
    "tests/test_anytime_files.py::test_validation_errors_name_the_argument",
    "tests/test_schedules.py::test_batches_per_epoch_counts_as_keras",
    # A raw tf.Variable; tf.train.Checkpoint.
    "tests/test_arguments.py::test_raw_tf_variable_with_exclusions_builds",
    "tests/test_learning_rate.py::test_scale_survives_tf_train_checkpoint",
    "tests/test_persistence.py::test_v020_tf_checkpoint_restores*",
    "tests/test_saving_limits.py::test_dropout_resume_from_keras_file_is_not_exact",
    # TensorFlow's int64 counter past 2**31 (tf.constant, tf.function).
    "tests/test_schedules.py::test_step_2_32_is_not_flat",
    "tests/test_schedules.py::test_every_boundary_past_2_31_up_to_2_63*",
    "tests/test_schedules.py::test_adamwr_at_iteration_2_40_updates_and_decays",
    "tests/test_schedule_view.py::test_plot_returns_the_figure_and_saves_it",
]

# Test ids that run on the JAX backend only (code written for Keras on JAX).
ONE_CELL = [
    "tests/test_reproduce.py::*",
    "tests/test_study_v3.py::*",
    "tests/test_docs_claims.py::*",
    "tests/test_anytime_lock.py::*",
    "tests/test_tools_logs.py::*",
    "tests/test_example_cli.py::*",
    "tests/test_example_folders.py::*",
]
CELL = os.environ.get("KERAS_ADAMWR_CELL", "tensorflow")

JAX_ONLY = [
    "tests/test_reproduce_gpu.py::test_quick_*",
    "tests/test_reproduce_gpu.py::test_crop_flip_*",
]


# Test ids one other backend cannot run, with the reason.
LOSS_SCALE_APPLY = ("Keras: an eager LossScaleOptimizer.apply leaks JAX tracers "
                    "(keras.optimizers.Adam too; fit uses stateless_apply)")
NUMPY_GRADIENTS = ("the test feeds NumPy gradients, which Keras' own optimizers "
                   "refuse on torch")
DOCS_TABLE = ("the table in docs/algorithms.md was computed on TensorFlow; float32 "
              "rounding differs in the last printed digit elsewhere")
BACKEND_LIMITS = {
    "jax": {
        "tests/test_schedule_view.py::test_docs_table_is_what_schedule_table_gives": DOCS_TABLE,
        # HyperparameterLogger reads the step's returned state on JAX
        # (keras.StatelessScope); these two probe the TF/torch path.
        "tests/test_hyperparameters.py::test_keras_fit_calls_the_train_function_attribute":
            "Keras on JAX: the train function returns (logs, state), not logs",
        "tests/test_hyperparameters.py::test_batch_logs_carry_the_next_updates_values":
            "Keras on JAX syncs optimizer.iterations into Python only at epoch ends",
        # Keras on JAX runs the update at every micro-batch and keeps it
        # only at weight updates (jnp.where), so the spy sees 4 calls.
        "tests/test_keras_hooks.py::test_backend_update_step_receives_every_step_and_the_learning_rate":  # noqa: E501
            "Keras on JAX calls _backend_update_step at every micro-batch",
        "tests/test_precision.py::test_loss_scale_optimizer_update_matches_float32_reference":
            LOSS_SCALE_APPLY,
        "tests/test_precision.py::test_skipped_mixed_float16_steps_leave_weights_slots_and_schedule_alone":  # noqa: E501
            LOSS_SCALE_APPLY,
        "tests/test_precision.py::test_loss_scale_optimizer_skips_nonfinite_gradient":
            LOSS_SCALE_APPLY,
    },
    "torch": {
        "tests/test_callbacks.py::test_steps_per_execution_records_every_crossed_boundary":
            "Keras: steps_per_execution must be 1 with the PyTorch backend",
        "tests/test_hyperparameters.py::test_batch_logs_carry_the_next_updates_values":
            "Keras: steps_per_execution must be 1 with the PyTorch backend",
        "tests/test_migration.py::test_keras_adamw_without_epsilon": NUMPY_GRADIENTS,
        "tests/test_migration.py::test_keras_adamw_with_cosine_decay_restarts": NUMPY_GRADIENTS,
        "tests/test_migration.py::test_keras_sgd_weight_decay": NUMPY_GRADIENTS,
        "tests/test_migration.py::test_keras_epsilon_is_epsilon_hat": NUMPY_GRADIENTS,
        "tests/test_migration.py::test_readme_keras_conversion_keeps_every_keras_default":
            NUMPY_GRADIENTS,
        "tests/test_precision.py::test_nonfinite_gradient_without_loss_scaling_propagates_like_keras":  # noqa: E501
            NUMPY_GRADIENTS,
        "tests/test_schedule_view.py::test_docs_table_is_what_schedule_table_gives": DOCS_TABLE,
    },
}

# Known failures on older Keras: (first Keras without it, test id, reason);
# xfail(strict=True) below that version.
KERAS_VERSION_LIMITS = [
] + [
    ((3, 15), f"tests/test_decoupled.py::{test}[Muon]",
     "Keras 3.10's own Muon fails on TensorFlow (its update_step reads variable.path of "
     "a tf.Variable); 3.15 works (versions between not checked)")
    for test in ("test_steps_are_the_base_update_plus_the_decay_across_a_restart",
                 "test_keras_own_weight_decay_is_the_learning_rate_convention_where_the_update_ignores_theta")  # noqa: E501
] + [
    ((3, 15), test_id, "the 0.2.0 and 0.4.0 fixture .keras files were written by Keras 3.15, "
     "whose layer configs (quantization_config) older Keras cannot read")
    for test_id in ("tests/test_persistence.py::test_v020_keras_file_loads_and_resumes",
                    "tests/test_persistence.py::test_v020_state_under_a_custom_name_needs_that_name",
                    "tests/test_persistence.py::test_v040_keras_file_of_the_flat_layout_*")
]
KERAS_VERSION = tuple(int(part) for part in keras.__version__.split(".")[:2])

# Test ids that need float64 variables: skipped on JAX unless JAX_ENABLE_X64
# is set (without it, JAX has no float64 and Keras makes them float32).
FLOAT64 = [
    "tests/test_optimizers.py::test_lockstep_with_paper[*-float64]",
    "tests/test_optimizers.py::test_golden_*",
    "tests/test_optimizers.py::test_gradient_accumulation_counts_weight_updates",
    "tests/test_optimizers.py::test_excluded_variables_are_not_decayed",
    # Other libraries compared in float64 to 1e-12.
    "tests/test_migration.py::test_torch_*",
    "tests/test_migration.py::test_optax_*",
    "tests/test_migration.py::test_keras_*",
    "tests/test_migration.py::test_tf_addons_*",
]


def _float64_missing():
    if BACKEND != "jax":
        return False
    import jax

    return not jax.config.jax_enable_x64


def _pattern(test_id):
    return re.compile(".*".join(map(re.escape, test_id.split("*"))) + r"(\[.*)?\Z")


_TENSORFLOW_ONLY = [_pattern(test_id) for test_id in TENSORFLOW_ONLY]
_FLOAT64 = [_pattern(test_id) for test_id in FLOAT64]
_JAX_ONLY = [_pattern(test_id) for test_id in JAX_ONLY]
_ONE_CELL = [_pattern(test_id) for test_id in ONE_CELL]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "tensorflow_only: needs TensorFlow's own API; skipped on other backends")


def pytest_ignore_collect(collection_path, config):
    if BACKEND != "tensorflow" and collection_path.name in TENSORFLOW_MODULES:
        return True
    return None


def pytest_report_header(config):
    header = f"keras {keras.__version__}, backend {BACKEND}"
    if BACKEND != "tensorflow":
        header += ("; not collected (TensorFlow only): "
                   + ", ".join(TENSORFLOW_MODULES))
    return header


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(pattern.match(item.nodeid) for pattern in _TENSORFLOW_ONLY):
            item.add_marker(pytest.mark.tensorflow_only)
    if BACKEND != "tensorflow":
        skip = pytest.mark.skip(reason=f"needs TensorFlow (backend: {BACKEND})")
        for item in items:
            if item.get_closest_marker("tensorflow_only"):
                item.add_marker(skip)
    if BACKEND != "jax":
        skip = pytest.mark.skip(reason=f"Keras on JAX only (backend: {BACKEND})")
        for item in items:
            if any(pattern.match(item.nodeid) for pattern in _JAX_ONLY):
                item.add_marker(skip)
    if CELL != "tensorflow":
        skip = pytest.mark.skip(
            reason=f"backend-independent: runs in the tensorflow cell (cell: {CELL})")
        for item in items:
            if any(pattern.match(item.nodeid) for pattern in _ONE_CELL):
                item.add_marker(skip)
    for test_id, reason in BACKEND_LIMITS.get(BACKEND, {}).items():
        pattern = _pattern(test_id)
        for item in items:
            if pattern.match(item.nodeid):
                item.add_marker(pytest.mark.skip(reason=reason))
    for version, test_id, reason in KERAS_VERSION_LIMITS:
        if KERAS_VERSION < version:
            pattern = _pattern(test_id)
            for item in items:
                if pattern.match(item.nodeid):
                    item.add_marker(pytest.mark.xfail(strict=True, reason=reason))
    if _float64_missing():
        skip = pytest.mark.skip(reason="float64 on JAX needs JAX_ENABLE_X64=1")
        for item in items:
            if any(pattern.match(item.nodeid) for pattern in _FLOAT64):
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _float32_policy():
    yield
    keras.config.set_dtype_policy("float32")
