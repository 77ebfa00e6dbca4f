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
    (AdamW, dict(jit_compile=2), "jit_compile", "True or False"),
    (SGDW, dict(nesterov=-1), "nesterov", "True or False"),
    # Keras' own keywords, passed through to Keras, checked first.
    (AdamW, dict(clipnorm=-1), "clipnorm", "> 0"),
    (AdamW, dict(clipvalue=0.0), "clipvalue", "> 0"),
    (SGDW, dict(global_clipnorm=float("nan")), "global_clipnorm", "> 0"),
    (AdamW, dict(loss_scale_factor=-2.0), "loss_scale_factor", "> 0"),
    (AdamW, dict(ema_momentum=1.5), "ema_momentum", "in [0, 1]"),
    (AdamW, dict(use_ema=True, ema_overwrite_frequency=0), "ema_overwrite_frequency", ">= 1"),
    (AdamW, dict(gradient_accumulation_steps=float("inf")), "gradient_accumulation_steps", ">= 2"),
    (SGDW, dict(gradient_accumulation_steps=2.5), "gradient_accumulation_steps", ">= 2"),
    # A decay factor c_t > 1 flips the weights' sign.
    (AdamW, dict(weight_decay=1.5), "weight_decay", "c_t < 1"),
    (SGDW, dict(learning_rate=2.0, weight_decay=0.6, decay_scaling="learning_rate"),
     "weight_decay", "c_t < 1"),
    (AdamW, dict(normalized_weight_decay=5.0, total_steps=16), "normalized_weight_decay", "c_t < 1"),
    (AdamWR, dict(first_cycle_steps=4, normalized_weight_decay=3.0), "normalized_weight_decay",
     "c_t < 1"),
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
    # Flags are not read by their truthiness: "False" and "no" are truthy.
    (AdamW, dict(amsgrad="False"), "amsgrad"),
    (SGDW, dict(nesterov="no"), "nesterov"),
    (AdamW, dict(jit_compile="auto"), "jit_compile"),
    (SGDWR, dict(RESTARTS, jit_compile=None), "jit_compile"),
    (AdamW, dict(use_ema="x"), "use_ema"),
    (AdamW, dict(amsgrad=1.0), "amsgrad"),
    (AdamW, dict(exclude_from_weight_decay=True), "exclude_from_weight_decay"),
    (AdamW, dict(exclude_from_weight_decay=["bias", 3]), "exclude_from_weight_decay"),
    (AdamW, dict(name=3), "name"),
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


def test_flags_keep_their_value():
    assert AdamW(amsgrad=np.True_).amsgrad is True
    assert AdamW(amsgrad=0).amsgrad is False
    assert SGDW(nesterov=1).nesterov is True
    assert AdamW(use_ema=np.False_).use_ema is False


def test_tampered_config_flag_is_refused():
    # A .keras config edited by hand: "false" is a truthy string.
    config = AdamW().get_config()
    config["amsgrad"] = "false"
    with pytest.raises(TypeError, match="`amsgrad`"):
        AdamW.from_config(config)


def test_keras_keywords_still_reach_keras():
    optimizer = SGDW(clipnorm=1.0, use_ema=True, ema_momentum=0.5,
                     ema_overwrite_frequency=3, gradient_accumulation_steps=2.0)
    assert (optimizer.clipnorm, optimizer.use_ema, optimizer.ema_momentum) == (1.0, True, 0.5)
    assert optimizer.ema_overwrite_frequency == 3
    assert optimizer.gradient_accumulation_steps == 2


def test_decay_factor_of_one_is_refused_and_unforeseeable_larger_ones_are_capped():
    # c_t = 1 sets the weights to 0: refused since issue 18 (it was accepted).
    # Factors that only a callable's value at run time shows are capped at 1.
    with pytest.raises(ValueError, match="c_t < 1"):
        SGDW(1e-12, weight_decay=1.0, momentum=0.0)
    optimizer = AdamW(lambda: 2.0, base_learning_rate=1.0, weight_decay=0.8)
    variable = keras.Variable(np.ones(2))
    optimizer.build([variable])
    assert float(optimizer.decay_coefficient()) == 1.0  # eta_t = 2, c_t = 1.6 uncapped
    optimizer.apply([np.zeros(2)], [variable])
    np.testing.assert_array_equal(variable.numpy(), 0.0)


def test_default_names_are_unique_as_in_keras():
    names = [AdamW().name, AdamW().name, SGDW().name, AdamWR(**RESTARTS).name]
    assert len(set(names)) == 4
    assert names[0].startswith("adam_w")
    keras_name = keras.optimizers.AdamW().name
    if keras_name != "adamw":  # Keras 3.11+ names its optimizers uniquely too
        assert keras_name.startswith("adam_w")
    assert AdamW(name="mine").name == "mine"
    assert AdamW.from_config(dict(AdamW().get_config(), name="adamw")).name == "adamw"


def test_raw_tf_variable_with_exclusions_builds():
    import tensorflow as tf

    kernel = tf.Variable(np.ones(2, "float32"), name="kernel")
    bias = tf.Variable(np.ones(2, "float32"), name="bias")
    optimizer = SGDW(0.1, weight_decay=0.5, momentum=0.0, exclude_from_weight_decay=["bias"])
    optimizer.apply([np.zeros(2, "float32")] * 2, [kernel, bias])
    np.testing.assert_allclose(kernel.numpy(), 0.5)
    np.testing.assert_allclose(bias.numpy(), 1.0)


# The decay convention trap: Keras/PyTorch values in the paper's convention.

def _decay_warnings(**kwargs):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kwargs.pop("constructor", AdamW)(**kwargs)
    return [w for w in caught if issubclass(w.category, keras_adamwr.DecayConventionWarning)]


@pytest.mark.parametrize("kwargs", [
    dict(learning_rate=1e-3, weight_decay=0.004),  # keras.optimizers.AdamW's default
    dict(learning_rate=1e-3, weight_decay=0.01),  # torch.optim.AdamW's default
    dict(constructor=AdamWR, learning_rate=1e-3, first_cycle_steps=100, weight_decay=0.05),
    dict(constructor=SGDW, learning_rate=0.1, weight_decay=5e-3),
])
def test_keras_like_weight_decay_warns_with_both_conventions(kwargs):
    caught = _decay_warnings(**kwargs)
    assert len(caught) == 1
    message = str(caught[0].message)
    decay, rate = kwargs["weight_decay"], kwargs["learning_rate"]
    assert f"by {decay:.4g} per update" in message  # this library's convention
    assert f"decay of {decay * rate:.3g} per update" in message  # Keras/PyTorch's
    assert f"weight_decay={decay * rate:.3g}" in message and "decay_scaling='learning_rate'" in message


@pytest.mark.parametrize("kwargs", [
    dict(learning_rate=1e-3, weight_decay=1e-4),  # the default, paper-typical
    dict(learning_rate=1e-3, weight_decay=1e-3),  # the threshold itself
    dict(constructor=AdamWR, first_cycle_steps=10),  # AdamWR defaults (normalized 0.025)
    dict(constructor=SGDWR, first_cycle_steps=4, normalized_weight_decay=0.05),
    dict(normalized_weight_decay=0.05, total_steps=100),
    dict(learning_rate=1e-3, weight_decay=0.004, decay_scaling="learning_rate"),
])
def test_paper_typical_decay_does_not_warn(kwargs):
    assert _decay_warnings(**kwargs) == []


def test_decay_warning_can_be_silenced():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=keras_adamwr.DecayConventionWarning)
        AdamW(1e-3, weight_decay=0.004)
    assert not [w for w in caught if issubclass(w.category, keras_adamwr.DecayConventionWarning)]


@pytest.mark.parametrize("constructor", [AdamW, AdamWR, SGDW])
def test_decay_convention_warning_points_at_the_users_line(constructor):
    # Issue 18, item 13: AdamWR's warning named the package's own line.
    import warnings

    kwargs = dict(weight_decay=0.05)
    if constructor is AdamWR:
        kwargs["first_cycle_steps"] = 100
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        constructor(1e-3, **kwargs)  # the line the warning must name
    caught = [w for w in caught if issubclass(w.category, keras_adamwr.DecayConventionWarning)]
    assert len(caught) == 1
    assert caught[0].filename == __file__, caught[0].filename


# Issue 18, item 3: a decay factor that reaches 1 (weights zeroed) is refused.

@pytest.mark.parametrize("kwargs", [
    dict(learning_rate=1e-3, base_learning_rate=1e-6, weight_decay=1e-3),  # the issue's case
    dict(learning_rate=keras.optimizers.schedules.CosineDecay(1e-2, 100),
         base_learning_rate=1e-4, weight_decay=0.01),  # the schedule's peak counts
    dict(learning_rate=1.0, weight_decay=1.0),  # c_t = 1 exactly
    dict(learning_rate=0.5, weight_decay=2.0, decay_scaling="learning_rate"),
])
def test_decay_factor_of_one_or_more_at_any_step_is_refused(kwargs):
    with pytest.raises(ValueError, match="c_t < 1") as error:
        AdamW(**kwargs)
    message = str(error.value)
    assert "`weight_decay`" in message and "Received: weight_decay=" in message
    assert "learning_rate=" in message


def test_issue_case_would_zero_the_weights():
    # What the refusal prevents: c_t = (1e-3 / 1e-6) * 1e-3 = 1.
    variable = keras.Variable(np.array([1.0, -2.0, 3.0], "float32"))
    with pytest.raises(ValueError, match="base_learning_rate=1e-06"):
        AdamW(1e-3, base_learning_rate=1e-6, weight_decay=1e-3).apply(
            [np.zeros(3, "float32")], [variable])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), [1.0, -2.0, 3.0])


@pytest.mark.parametrize("make", [
    lambda: AdamW(1e-3, weight_decay=1e-4),  # eta = x / 1e-3
    lambda: AdamWR(1e-3, first_cycle_steps=4, weight_decay=1e-4),  # scale of the schedule
], ids=["float", "schedule"])
def test_setting_a_rate_whose_decay_factor_reaches_one_is_refused(make):
    optimizer = make()
    optimizer.build([keras.Variable(np.ones(3, "float32"))])
    optimizer.learning_rate = 0.5  # c_t = 0.5e3 * 1e-4 = 0.05: fine
    with pytest.raises(ValueError, match="Argument `learning_rate` cannot be set"):
        optimizer.learning_rate = 20.0  # c_t = 2e4 * 1e-4 = 2
    np.testing.assert_allclose(float(optimizer.learning_rate), 0.5, rtol=1e-6)


# Issue 18, item 12: PyTorch and timm names get the corresponding argument.

@pytest.mark.parametrize("constructor,kwargs,foreign,ours", [
    (AdamWR, dict(learning_rate=1e-3, T_0=10), "T_0", "first_cycle_steps"),
    (AdamWR, dict(T_mult=2, first_cycle_steps=4), "T_mult", "t_mul"),
    (SGDWR, dict(eta_min=1e-5, first_cycle_steps=4), "eta_min", "min_lr_ratio"),
    (AdamW, dict(lr=1e-3), "lr", "learning_rate"),
    (AdamW, dict(betas=(0.9, 0.99)), "betas", "beta_2"),
    (AdamWR, dict(eps=1e-6, first_cycle_steps=4), "eps", "epsilon"),
    (SGDW, dict(eps=1e-6), "eps", "AdamW"),
    (AdamW, dict(T_0=10), "T_0", "AdamWR"),
    (SGDW, dict(t_initial=10), "t_initial", "SGDWR"),
    (SGDWR, dict(cycle_mul=2, first_cycle_steps=4), "cycle_mul", "t_mul"),
    (AdamWR, dict(warmup_t=3, first_cycle_steps=4), "warmup_t", "warmup_epochs"),
    (AdamWR, dict(warmup_lr_init=1e-5, first_cycle_steps=4), "warmup_lr_init",
     "warmup_start_ratio"),
    (SGDWR, dict(lr_min=1e-5, first_cycle_steps=4), "lr_min", "min_lr_ratio"),
    (CosineWarmRestarts, dict(initial_learning_rate=1e-3, T_0=10), "T_0", "first_cycle_steps"),
    (CosineWarmRestarts, dict(initial_learning_rate=1e-3, t_initial=10, lr_min=0.0),
     "t_initial", "first_cycle_epochs"),
    (CosineWarmRestarts, dict(initial_learning_rate=1e-3, first_cycle_steps=3, eta_min=0.0),
     "eta_min", "min_lr_ratio"),
])
def test_pytorch_and_timm_names_say_what_corresponds(constructor, kwargs, foreign, ours):
    with pytest.raises(TypeError) as error:
        constructor(**kwargs)
    message = str(error.value)
    assert f"'{foreign}'" in message and f"`{ours}`" in message or ours in message
    assert "docs/migration.md" in message and f"{foreign}=" in message


def test_unknown_schedule_argument_is_still_a_type_error():
    with pytest.raises(TypeError, match="unexpected keyword argument 'cycles'"):
        CosineWarmRestarts(1e-3, 10, cycles=3)
