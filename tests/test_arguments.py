"""Bad input: a ValueError naming the argument, its range and the value."""

import keras
import numpy as np
import pytest

import keras_adamwr
from keras_adamwr import AdamW
from keras_adamwr import AdamWR
from keras_adamwr import CosineWarmRestarts
from keras_adamwr import SGDW
from keras_adamwr import SGDWR

SCHEDULE = dict(initial_learning_rate=1.0, first_cycle_steps=10)
RESTARTS = dict(first_cycle_steps=10)

# (constructor, keyword arguments, argument named, text of the allowed range)
INVALID = [
    (CosineWarmRestarts, dict(SCHEDULE, initial_learning_rate=-1.0), "initial_learning_rate", "> 0"),
    (CosineWarmRestarts, dict(SCHEDULE, initial_learning_rate=0.0), "initial_learning_rate", "> 0"),
    (CosineWarmRestarts, dict(SCHEDULE, first_cycle_steps=0), "first_cycle_steps", "in [1, "),
    (CosineWarmRestarts, dict(SCHEDULE, first_cycle_steps=2.5), "first_cycle_steps", "integer"),
    (CosineWarmRestarts, dict(SCHEDULE, t_mul=0.0), "t_mul", "> 0"),
    (CosineWarmRestarts, dict(SCHEDULE, t_mul=-1), "t_mul", "> 0"),
    (CosineWarmRestarts, dict(SCHEDULE, t_mul=float("inf")), "t_mul", "> 0"),
    (CosineWarmRestarts, dict(SCHEDULE, t_mul=1.00001), "t_mul", "far enough from 1"),
    (CosineWarmRestarts, dict(SCHEDULE, m_mul=-0.5), "m_mul", "in [0, 1]"),
    (CosineWarmRestarts, dict(SCHEDULE, min_lr_ratio=1.5), "min_lr_ratio", "in [0, 1]"),
    (CosineWarmRestarts, dict(SCHEDULE, alpha=1.5), "min_lr_ratio", "in [0, 1]"),
    (CosineWarmRestarts, dict(SCHEDULE, alpha=0.1, min_lr_ratio=0.1), "alpha", "the same"),
    (CosineWarmRestarts, dict(initial_learning_rate=1.0, first_cycle_steps=5, first_decay_steps=5),
     "first_decay_steps", "the same"),
    # Bounded by what the step counter (int64) can hold: refused at construction.
    (CosineWarmRestarts, dict(SCHEDULE, warmup_steps=2**63), "warmup_steps", "[0, 9223372036854775807]"),
    (CosineWarmRestarts, dict(SCHEDULE, warmup_steps=1e30), "warmup_steps", "[0, 9223372036854775807]"),
    (CosineWarmRestarts, dict(SCHEDULE, first_cycle_steps=2**63, t_mul=1.0),
     "first_cycle_steps", "[1, 9223372036854775807]"),
    (CosineWarmRestarts, dict(SCHEDULE, m_mul=1e30), "m_mul", "in [0, 1]"),
    (CosineWarmRestarts, dict(SCHEDULE, m_mul=1.1), "m_mul", "in [0, 1]"),
    (CosineWarmRestarts, dict(SCHEDULE, cycle_limit=0), "cycle_limit", ">= 1"),
    (CosineWarmRestarts, dict(SCHEDULE, cycle_limit=2.5), "cycle_limit", "integer"),
    (CosineWarmRestarts, dict(SCHEDULE, warmup_start_ratio=-0.1), "warmup_start_ratio", "in [0, 1]"),
    (CosineWarmRestarts, dict(SCHEDULE, steps_per_epoch=0), "steps_per_epoch", "> 0"),
    (CosineWarmRestarts, dict(initial_learning_rate=1.0), "first_cycle_steps", "must be given"),
    (CosineWarmRestarts, dict(SCHEDULE, first_cycle_epochs=1, steps_per_epoch=10),
     "first_cycle_steps", "mutually exclusive"),
    (CosineWarmRestarts, dict(SCHEDULE, warmup_steps=3, warmup_epochs=1, steps_per_epoch=10),
     "warmup_steps", "mutually exclusive"),
    (CosineWarmRestarts, dict(initial_learning_rate=1.0, first_cycle_epochs=2),
     "steps_per_epoch", "must be given with `first_cycle_epochs`"),
    (CosineWarmRestarts, dict(initial_learning_rate=1.0, first_cycle_epochs=0.5, steps_per_epoch=391),
     "first_cycle_epochs", "whole number of steps"),
    (CosineWarmRestarts, dict(SCHEDULE, warmup_epochs=0.1, steps_per_epoch=391),
     "warmup_epochs", "whole number of steps"),
    (CosineWarmRestarts, dict(initial_learning_rate=1.0, first_cycle_epochs=0, steps_per_epoch=3),
     "first_cycle_epochs", "> 0"),
    (CosineWarmRestarts, dict(initial_learning_rate=1.0, first_cycle_epochs=1e30, steps_per_epoch=3),
     "first_cycle_epochs", "[1, 9223372036854775807]"),
    (keras_adamwr.batches_per_epoch, dict(num_examples=0, batch_size=1), "num_examples", ">= 1"),
    (keras_adamwr.batches_per_epoch, dict(num_examples=10, batch_size=20, drop_remainder=True),
     "batch_size", "<= num_examples"),
    (CosineWarmRestarts, dict(SCHEDULE, warmup_steps=-1), "warmup_steps", "in [0, "),
    (AdamW, dict(learning_rate=-1e-3), "learning_rate", "> 0"),
    (AdamW, dict(weight_decay=-1e-4), "weight_decay", ">= 0"),
    (AdamW, dict(beta_1=1.0), "beta_1", "in [0, 1)"),
    (AdamW, dict(beta_1=-0.1), "beta_1", "in [0, 1)"),
    (AdamW, dict(beta_2=1.5), "beta_2", "in [0, 1)"),
    (AdamW, dict(epsilon=-1e-8), "epsilon", ">= 0"),
    (AdamW, dict(normalized_weight_decay=-0.1, total_steps=10), "normalized_weight_decay", ">= 0"),
    (AdamW, dict(weight_decay=1e-4, normalized_weight_decay=0.05), "weight_decay", "mutually exclusive"),
    (AdamW, dict(normalized_weight_decay=0.05), "total_steps", "integer >= 1"),
    (AdamW, dict(normalized_weight_decay=0.05, total_steps=0), "total_steps", ">= 1"),
    (AdamW, dict(weight_decay=1e-4, total_steps=100), "total_steps", "only used"),
    (AdamW, dict(decay_scaling="lr"), "decay_scaling", "'schedule', 'learning_rate'"),
    (AdamW, dict(exclude_from_weight_decay=["("]), "exclude_from_weight_decay", "regular expressions"),
    (AdamW, dict(base_learning_rate=0.0), "base_learning_rate", "> 0"),
    (AdamW, dict(learning_rate=lambda: 1e-3), "base_learning_rate", "> 0"),
    (AdamW, dict(gradient_accumulation_steps=1), "gradient_accumulation_steps", ">= 2"),
    (AdamW, dict(jit_compile="auto"), "jit_compile", "True, False"),
    (SGDWR, dict(RESTARTS, jit_compile=None), "jit_compile", "True, False"),
    (SGDW, dict(momentum=1.0), "momentum", "in [0, 1)"),
    (SGDW, dict(learning_rate=0.0), "learning_rate", "> 0"),
    (SGDW, dict(weight_decay=-1.0), "weight_decay", ">= 0"),
    (AdamWR, dict(RESTARTS, t_mul=0.0), "t_mul", "> 0"),
    (AdamWR, dict(first_cycle_steps=0), "first_cycle_steps", "in [1, "),
    (AdamWR, dict(RESTARTS, beta_2=1.0), "beta_2", "in [0, 1)"),
    (AdamWR, dict(RESTARTS, normalized_weight_decay=-1.0), "normalized_weight_decay", ">= 0"),
    (SGDWR, dict(RESTARTS, min_lr_ratio=-0.1), "min_lr_ratio", "in [0, 1]"),
    (SGDWR, dict(RESTARTS, alpha=0.1), "alpha", "`min_lr_ratio=`"),
    (AdamWR, dict(RESTARTS, alpha=1e-3), "alpha", "`learning_rate=`"),
    (AdamWR, dict(), "first_cycle_steps", "must be given"),
    (AdamWR, dict(RESTARTS, first_cycle_epochs=3, steps_per_epoch=4), "first_cycle_steps",
     "mutually exclusive"),
    (SGDWR, dict(RESTARTS, weight_decay=1e-4, normalized_weight_decay=0.1), "weight_decay", "mutually exclusive"),
    (keras_adamwr.normalized_weight_decay, dict(lambda_norm=0.05, batch_size=0, num_examples=10, epochs=1), "batch_size", ">= 1"),
    (keras_adamwr.normalized_weight_decay, dict(lambda_norm=0.05, batch_size=1, num_examples=10, epochs=0), "epochs", "> 0"),
]


@pytest.mark.parametrize("constructor,kwargs,argument,allowed", INVALID,
                         ids=lambda v: v if isinstance(v, str) else None)
def test_invalid_value_names_argument_range_and_value(constructor, kwargs, argument, allowed):
    with pytest.raises(ValueError) as error:
        constructor(**kwargs)
    message = str(error.value)
    assert f"`{argument}`" in message
    assert allowed in message
    assert "Received:" in message and f"{argument}=" in message


@pytest.mark.parametrize("constructor,kwargs,argument", [
    (AdamW, dict(learning_rate="0.001"), "learning_rate"),
    (SGDW, dict(weight_decay="1e-4"), "weight_decay"),
    (AdamW, dict(weight_decay=CosineWarmRestarts(1.0, 10)), "weight_decay"),
    (CosineWarmRestarts, dict(SCHEDULE, initial_learning_rate=CosineWarmRestarts(1.0, 10)),
     "initial_learning_rate"),
    (CosineWarmRestarts, dict(SCHEDULE, first_cycle_steps="10"), "first_cycle_steps"),
    (keras_adamwr.batches_per_epoch, dict(num_examples=10, batch_size=3, drop_remainder="no"),
     "drop_remainder"),
])
def test_wrong_type_is_a_type_error(constructor, kwargs, argument):
    with pytest.raises(TypeError, match=f"`{argument}`"):
        constructor(**kwargs)


def test_no_assert_on_user_input():
    # Python -O strips asserts; validation must not depend on them.
    import pathlib

    for path in pathlib.Path(keras_adamwr.__file__).parent.glob("*.py"):
        assert "assert " not in path.read_text(), path


def test_valid_edge_values_are_accepted():
    AdamW(weight_decay=0.0, beta_1=0.0, beta_2=0.0, epsilon=0.0)
    SGDW(momentum=0.0)
    CosineWarmRestarts(1.0, 1, t_mul=0.01, m_mul=0.0, min_lr_ratio=1.0, warmup_steps=0)
    CosineWarmRestarts(1.0, 1, m_mul=1.0, cycle_limit=1, warmup_start_ratio=1.0)
    largest = 2**63 - 1  # an int64 counter's limit: accepted, and usable
    for schedule in [CosineWarmRestarts(1.0, largest, t_mul=1.0),
                     CosineWarmRestarts(1.0, 10, warmup_steps=largest),
                     CosineWarmRestarts(1.0, largest, t_mul=1.5)]:
        assert np.isfinite(np.asarray(schedule(np.array([0, 5, largest], "int64")))).all()
    AdamW(learning_rate=keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9))
    AdamW(learning_rate=lambda: 1e-3, decay_scaling="learning_rate")


def test_jit_compile_takes_bools_and_their_integer_spellings():
    assert AdamW(jit_compile=1).jit_compile is True
    assert SGDW(jit_compile=np.False_).jit_compile is False
    assert AdamWR(**RESTARTS).jit_compile is True
