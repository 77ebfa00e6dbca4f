"""Cost of the package's callbacks per training step, against none.

    python benchmarks/callbacks_cost.py [--quick] [--json PATH]

The model of issue 16: `Dense(32) -> Dense(1)`, batch 4, 64 batches per
epoch, 8 epochs (512 steps), `AdamWR(1e-3, first_cycle_steps=64)` with
`t_mul=2` and with `t_mul=1.0006` (a cycle table of ~60,000 rows). Each
candidate is a `model.fit` of those 512 steps, timed side by side with
`_common.interleave` (rounds with rotating order, one model per candidate,
traced before timing). Reported: the median per-round ratio of the time
per step against the same fit without callbacks, all-in and without the
validation runs at cycle ends (`AnytimeRecorder` evaluates the model there:
that cost is the validation's, per cycle, not per step; it is reported as
milliseconds per evaluation).
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

import numpy as np  # noqa: E402

BATCH, BATCHES, EPOCHS = 4, 64, 8
TARGET = 1.10


def _timed_recorder():
    """AnytimeRecorder that adds the seconds spent in validation to `spent`."""
    import keras_adamwr

    class TimedRecorder(keras_adamwr.AnytimeRecorder):
        spent = [0.0, 0]

        def _evaluate(self):
            start = time.perf_counter()
            try:
                return super()._evaluate()
            finally:
                TimedRecorder.spent[0] += time.perf_counter() - start
                TimedRecorder.spent[1] += 1

    return TimedRecorder


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH * BATCHES, 8)).astype("float32")
    y = x.sum(axis=1, keepdims=True).astype("float32")
    return x, y, (x[:64], y[:64])


def _model(t_mul):
    import keras
    import keras_adamwr

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(keras_adamwr.AdamWR(1e-3, first_cycle_steps=64, t_mul=t_mul), "mse")
    return model


def run(rounds, t_muls=(2.0, 1.0006)):
    _common.quiet_tensorflow()
    import keras_adamwr
    from keras_adamwr.version import __version__

    _TimedRecorder = _timed_recorder()
    x, y, validation = _data()
    folder = tempfile.mkdtemp(prefix="callbacks_cost_")
    counter = [0]

    def callbacks(kind):
        if kind == "none":
            return []
        if kind == "logger":
            return [keras_adamwr.HyperparameterLogger()]
        if kind == "logger_per_batch":
            try:
                return [keras_adamwr.HyperparameterLogger(per_batch=True)]
            except TypeError:  # before 0.5: every step's logs, no argument
                return [keras_adamwr.HyperparameterLogger()]
        counter[0] += 1  # a new folder per fit: a folder holds one run
        return [_TimedRecorder(validation, log_dir=os.path.join(folder, str(counter[0])),
                               verbose=0)]

    results = {}
    for t_mul in t_muls:
        kinds = ("none", "logger", "logger_per_batch", "recorder")
        models = {kind: _model(t_mul) for kind in kinds}
        for kind, model in models.items():  # trace train (and test) functions
            model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False,
                      callbacks=callbacks(kind))
        evaluation = {}

        def candidate(kind):
            def fit(calls):
                before = list(_TimedRecorder.spent)
                models[kind].fit(x, y, batch_size=BATCH, epochs=EPOCHS * calls,
                                 verbose=0, shuffle=False, callbacks=callbacks(kind))
                evaluation.setdefault(kind, []).append(
                    (_TimedRecorder.spent[0] - before[0], _TimedRecorder.spent[1] - before[1]))
            return fit

        times = _common.interleave({kind: candidate(kind) for kind in kinds}, rounds, 1)
        steps = EPOCHS * BATCHES
        per_step = {kind: [seconds / steps for seconds in values]
                    for kind, values in times.items()}
        # Without the validation runs: subtract each round's evaluate time.
        spent = evaluation["recorder"][-rounds:]
        per_step["recorder_no_validation"] = [
            (seconds - used) / steps
            for seconds, (used, _) in zip(times["recorder"], spent)]
        entry = {"ms_per_step": {kind: 1e3 * float(np.median(values))
                                 for kind, values in per_step.items()},
                 "ratios": {kind: _common.ratio_summary(per_step, kind, "none")
                            for kind in per_step if kind != "none"},
                 "evaluations_per_fit": spent[0][1],
                 "ms_per_evaluation": 1e3 * sum(u for u, _ in spent) / max(
                     1, sum(n for _, n in spent))}
        results[str(t_mul)] = entry
        print(f"t_mul={t_mul}: " + ", ".join(
            f"{kind} {entry['ratios'][kind]['median']:.3f}x" for kind in entry["ratios"])
            + f" (none {entry['ms_per_step']['none']:.2f} ms/step, "
            f"{entry['evaluations_per_fit']} evaluations per fit, "
            f"{entry['ms_per_evaluation']:.1f} ms each)", flush=True)
    return {"version": __version__, "rounds": rounds, "batch": BATCH,
            "batches_per_epoch": BATCHES, "epochs": EPOCHS, "target": TARGET,
            "machine": _common.machine_info(), "results": results}


NAMES = {"logger": "`HyperparameterLogger()`",
         "logger_per_batch": "`HyperparameterLogger(per_batch=True)`",
         "recorder": "`AnytimeRecorder(val, log_dir)`, all-in",
         "recorder_no_validation": "`AnytimeRecorder`, without its validation runs"}


def _measured(result):
    """When and under which load, where the run recorded it."""
    machine = result.get("machine") or {}
    load = machine.get("load_average")
    text = ""
    if result.get("finished"):
        text += f" Measured {result['finished']} UTC"
        if result.get("command"):
            text += f" by `{result['command']}`"
    if load:
        text += (f"{',' if text else ' Measured'} load average "
                 f"{load[0]:.1f} on {machine.get('logical_cores', '?')} cores at the start.")
    elif text:
        text += "."
    return text


def section(result):
    """The Markdown section of docs/performance.md for these results."""
    lines = [
        "## Callbacks: cost per step",
        "",
        f"`benchmarks/callbacks_cost.py`, keras_adamwr {result['version']}: "
        f"`Dense(32) -> Dense(1)`, batch {result['batch']}, "
        f"{result['batches_per_epoch']} batches x {result['epochs']} epochs, "
        "`AdamWR(1e-3, first_cycle_steps=64)`; time per step of `fit` with the "
        "callback over the same fit without callbacks (median of "
        f"{result['rounds']} interleaved rounds, quartiles in brackets). "
        f"Target: <= {result['target']:.2f}x without validation runs."
        + _measured(result),
        "",
        "| callback | t_mul=2 | t_mul=1.0006 |",
        "|---|---|---|",
    ]
    runs = result["results"]
    for kind, label in NAMES.items():
        cells = []
        for t_mul in ("2.0", "1.0006"):
            if t_mul not in runs:
                cells.append("not run")
                continue
            summary = runs[t_mul]["ratios"][kind]
            cells.append(f"{summary['median']:.3f}x [{summary['q25']:.3f}, "
                         f"{summary['q75']:.3f}]")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Without callbacks: " + ", ".join(
            f"{runs[t]['ms_per_step']['none']:.2f} ms/step (t_mul={t})" for t in runs)
        + ". `AnytimeRecorder` validates at each cycle end: " + ", ".join(
            f"{runs[t]['evaluations_per_fit']} runs of {runs[t]['ms_per_evaluation']:.1f} ms "
            f"per fit (t_mul={t})" for t in runs)
        + "; that is the cost of `Model.evaluate` on the validation data, paid "
        "once per cycle. `per_batch=True` reads the update counter after every "
        "step (a wait for the device each step).",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--t-mul", type=float, action="append",
                        help="only this t_mul (repeatable; default 2 and 1.0006)")
    parser.add_argument("--rounds", type=int, help="default: 7, 3 with --quick")
    args = parser.parse_args(argv)
    result = run(args.rounds or (3 if args.quick else 7), tuple(args.t_mul or (2.0, 1.0006)))
    result["finished"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    shown = [arg for arg in (argv or sys.argv[1:]) if arg not in (args.json, "--json")]
    result["command"] = " ".join(["python benchmarks/callbacks_cost.py", *shown])
    if args.json:
        _common.write_json(args.json, result)
    print(section(result))


if __name__ == "__main__":
    main()
