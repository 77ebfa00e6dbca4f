"""Cost of one optimizer step, in ns per parameter, eager / graph / XLA.

Times `optimizer.apply(grads, variables)` for keras_adamwr's AdamW and AdamWR
against Keras' Adam, AdamW and AdamW with CosineDecayRestarts, on shared
float32 variables with fixed random gradients:

* eager: `apply` called from Python;
* graph: inside `tf.function`;
* XLA: inside `tf.function(jit_compile=True)`.

Each optimizer is built, its function traced and called a few times, then
all candidates are timed side by side in rounds (see `_common.interleave`);
each call's result (one element of a variable, read after the update) is
copied to the host, so a timing ends when the update has. Also measured:
graph ops per step and per variable, optimizer state in bytes, host syncs.

    python benchmarks/optimizer_step.py --quick --json /tmp/step.json
"""

import argparse
import collections
import gc
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

_common.quiet_tensorflow()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.framework import ops as tf_ops  # noqa: E402

import keras_adamwr  # noqa: E402

FIRST_CYCLE_STEPS = 1000
COLUMNS = 500  # every variable is a (rows, 500) matrix
MODES = ("eager", "graph", "xla")

# name -> (description, factory). The decays are equivalent: Keras scales by
# lr (1e-3 * 0.004), keras_adamwr by the schedule multiplier (4e-6).
CANDIDATES = {
    "keras_adam": (
        "`keras.optimizers.Adam(1e-3)`",
        lambda: keras.optimizers.Adam(1e-3)),
    "keras_adamw": (
        "`keras.optimizers.AdamW(1e-3, weight_decay=0.004)`",
        lambda: keras.optimizers.AdamW(1e-3, weight_decay=0.004)),
    "keras_adamw_cdr": (
        "`keras.optimizers.AdamW(CosineDecayRestarts(1e-3, 1000), "
        "weight_decay=0.004)`",
        lambda: keras.optimizers.AdamW(
            keras.optimizers.schedules.CosineDecayRestarts(1e-3, FIRST_CYCLE_STEPS),
            weight_decay=0.004)),
    "adamw": (
        "`keras_adamwr.AdamW(1e-3, weight_decay=4e-6)`",
        lambda: keras_adamwr.AdamW(1e-3, weight_decay=4e-6)),
    "adamwr": (
        "`keras_adamwr.AdamWR(1e-3, first_cycle_steps=1000, "
        "normalized_weight_decay=0.025)` (schedule + normalized decay)",
        lambda: keras_adamwr.AdamWR(
            1e-3, first_cycle_steps=FIRST_CYCLE_STEPS,
            normalized_weight_decay=0.025)),
    "adamwr_kernels": (
        "the same with `jit_compile=False`: the same update code run as one "
        "TensorFlow kernel per op (not XLA-compiled) in eager and graph mode",
        lambda: keras_adamwr.AdamWR(
            1e-3, first_cycle_steps=FIRST_CYCLE_STEPS,
            normalized_weight_decay=0.025, jit_compile=False)),
}
TARGET_CANDIDATES = ("keras_adamw", "keras_adamw_cdr", "adamwr")


class TouchState:
    """Not an optimizer: `v += g; m += g; theta -= g`, one in-place kernel each.

    The least a step that keeps m and v can do in a framework (36 bytes per
    parameter, three kernels per variable); its cost per variable shows the
    framework's own per-variable overhead.
    """

    def __init__(self):
        self.slots = None

    def build(self, variables):
        self.slots = [
            (tf.Variable(tf.zeros(v.shape)), tf.Variable(tf.zeros(v.shape)))
            for v in variables
        ]

    def apply(self, grads, variables):
        for grad, variable, (m, v) in zip(grads, variables, self.slots):
            m.assign_add(grad)
            v.assign_add(grad)
            variable.assign_sub(grad)


REFERENCE = {
    "touch_state": (
        "reference, not an optimizer: `m += g; v += g; theta -= g` "
        "(3 kernels per variable, 36 B/param)",
        TouchState),
}

# (label, parameters, tensors, full rounds, quick rounds or None to skip).
# Many short rounds: a ratio is taken between timings a fraction of a second
# apart, so drifts in the machine's load cancel.
SIZES = (
    ("10M x 20", 10_000_000, 20, 25, 10),
    ("100M x 20", 100_000_000, 20, 7, None),
    ("2M x 500", 2_000_000, 500, 15, 5),
)


def make_tensors(parameters, tensors, seed=0):
    """Shared variables and fixed random gradients, `tensors` (rows, 500)."""
    rows = parameters // tensors // COLUMNS
    rng = np.random.default_rng(seed)
    variables, grads = [], []
    for index in range(tensors):
        value = rng.standard_normal((rows, COLUMNS), dtype=np.float32) * 0.05
        variables.append(keras.Variable(value, name=f"kernel_{index}"))
        grads.append(tf.constant(rng.standard_normal((rows, COLUMNS), dtype=np.float32) * 1e-3))
    return variables, grads


def step_function(optimizer, variables, mode):
    """A function(grads) -> scalar tensor that applies one update."""
    last = variables[-1]

    def step(grads):
        optimizer.apply(grads, variables)
        return last.value[0, 0]  # read after the update: ordered behind it

    if mode == "eager":
        return step
    return tf.function(step, jit_compile=(mode == "xla"))


def count_host_reads(function, *args):
    """How many times `function(*args)` copies an eager tensor to the host."""
    original = tf_ops._EagerTensorBase._numpy
    count = [0]

    def counting(self):
        count[0] += 1
        return original(self)

    tf_ops._EagerTensorBase._numpy = counting
    try:
        function(*args)
    finally:
        tf_ops._EagerTensorBase._numpy = original
    return count[0]


def time_size(label, parameters, tensors, rounds, names, seconds_per_timing, log):
    """All modes for one size: per-call times, first-call times, op counts."""
    variables, grads = make_tensors(parameters, tensors)
    factories = {**{n: CANDIDATES[n][1] for n in names}, **{n: REFERENCE[n][1] for n in REFERENCE}}
    optimizers = {}
    for name, factory in factories.items():
        optimizers[name] = factory()
        optimizers[name].build(variables)
    result = {"label": label, "parameters": parameters, "tensors": tensors,
              "rounds": rounds, "modes": {}}
    for mode in MODES:
        functions, runners, first, calls, ops, eager_reads, traces = {}, {}, {}, {}, {}, {}, {}
        for name, optimizer in optimizers.items():
            function = step_function(optimizer, variables, mode)
            start = time.perf_counter()
            function(grads).numpy()
            first[name] = time.perf_counter() - start
            if mode == "eager" and name in CANDIDATES:
                eager_reads[name] = count_host_reads(function, grads)
            warm_calls = 1 if mode == "eager" else 2  # eager has nothing to compile
            start = time.perf_counter()
            for _ in range(warm_calls):
                function(grads).numpy()
            warm = (time.perf_counter() - start) / warm_calls
            calls[name] = int(min(50, max(1, round(seconds_per_timing / max(warm, 1e-6)))))
            if mode != "eager":
                graph = function.get_concrete_function(grads).graph
                ops[name] = len(graph.get_operations())
            functions[name] = function

            def run(count, function=function):
                for _ in range(count):
                    out = function(grads)
                out.numpy()

            runners[name] = run
            log(f"  {label} {mode:5s} {name:16s} first call {first[name]:7.2f} s, "
                f"warm {warm * 1e3:9.2f} ms, {calls[name]} calls per timing")
        times = _common.interleave(runners, rounds, calls)
        if mode != "eager":
            traces = {name: f.experimental_get_tracing_count() for name, f in functions.items()}
        entry = {"times": times, "first_call_s": first, "calls_per_timing": calls}
        if ops:
            entry["graph_ops"] = ops
            entry["tracing_count"] = traces
        if eager_reads:
            entry["eager_host_reads"] = eager_reads
        result["modes"][mode] = entry
        for name in runners:
            seconds = float(np.median(times[name]))
            log(f"  {label} {mode:5s} {name:16s} {seconds * 1e3:9.2f} ms "
                f"{seconds / parameters * 1e9:8.2f} ns/param")
        del functions, runners
        gc.collect()
    del optimizers, variables, grads
    gc.collect()
    return result


def _xla_calls(graph):
    """Calls in `graph` to functions XLA must compile (`jit_compile=True`)."""
    return sum(1 for op in graph.get_operations()
               if "_XlaMustCompile" in op.node_def.attr and op.get_attr("_XlaMustCompile"))


def _hlo_fusions(function, grads):
    """Fused loops (`fusion` instructions) XLA makes of `function(grads)`."""
    hlo = function.experimental_get_compiler_ir(grads)(stage="optimized_hlo")
    return len(re.findall(r"^\s*\S+ = \S+ fusion\(", hlo, re.MULTILINE))


def op_profile(names, small=10, large=20):
    """Graph ops of one traced step: fixed part and per variable, by kind.

    Traces a `tf.function` step at `small` and `large` variables of shape
    (8, 500) and takes differences. Ops whose output is a full (8, 500)
    tensor, and assignments to variables, are "tensor kernels": each reads
    and writes whole tensors (memory traffic); the rest are scalar or
    bookkeeping ops (launch overhead). Reads, identities, placeholders and
    constants are not counted as kernels. Calls to XLA functions (the
    library's compiled update) are counted apart, and for every candidate
    the fused loops XLA makes of the whole step under `jit_compile=True`.
    """
    shape = (8, COLUMNS)
    assigns = {"AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp"}
    views = {"ReadVariableOp", "Identity", "Placeholder", "Const"}
    profile = {}
    for name in names:
        counts = {}
        for size in (small, large):
            variables, grads = make_tensors(size * shape[0] * COLUMNS, size, seed=1)
            optimizer = CANDIDATES[name][1]()
            optimizer.build(variables)
            graph = step_function(optimizer, variables, "graph").get_concrete_function(grads).graph
            operations = graph.get_operations()
            xla_calls = _xla_calls(graph)
            fusions = _hlo_fusions(step_function(optimizer, variables, "xla"), grads)
            kinds = collections.Counter()
            host = []
            for op in operations:
                full = any(tuple(o.shape) == shape for o in op.outputs)
                if op.type in assigns or (full and op.type not in views):
                    kinds["tensor:" + op.type] += 1
                if op.type in ("PyFunc", "EagerPyFunc", "PyFuncStateless"):
                    host.append(op.type)
            counts[size] = (len(operations), kinds, host, xla_calls, fusions)
            if size == small:
                param_bytes = sum(int(np.prod(v.shape)) * 4 for v in variables)
                state = [(v.name, tuple(v.shape), keras.backend.standardize_dtype(v.dtype))
                         for v in optimizer.variables]
                state_bytes = sum(int(np.prod(s)) * np.dtype(d).itemsize for _, s, d in state)
                extra = [f"{n} {list(s)} {d}" for n, s, d in state
                         if not n.endswith(("_momentum", "_velocity"))]
        ops_small, kinds_small, host, xla_calls, fusions_small = counts[small]
        ops_large, kinds_large, _, _, fusions_large = counts[large]
        per_variable = (ops_large - ops_small) / (large - small)
        kernels = {k: (kinds_large[k] - kinds_small.get(k, 0)) / (large - small)
                   for k in kinds_large}
        profile[name] = {
            "ops_per_variable": per_variable,
            "fixed_ops": ops_small - small * per_variable,
            "tensor_kernels_per_variable": sum(kernels.values()),
            "xla_calls_per_step": xla_calls,
            "xla_fusions_per_variable": (fusions_large - fusions_small) / (large - small),
            "tensor_kernels_by_type": {
                k.split(":", 1)[1]: v for k, v in sorted(kernels.items()) if v},
            "host_ops": host,
            "param_bytes": param_bytes,
            "state_bytes": state_bytes,
            "state_bytes_beyond_m_v": state_bytes - 2 * param_bytes,
            "state_variables_beyond_m_v": extra,
        }
    return profile


def run(quick=False, log=print):
    """All measurements; returns a JSON-ready dict."""
    started = time.perf_counter()
    result = {"machine": _common.machine_info(), "quick": quick,
              "candidates": {n: d for n, (d, _) in CANDIDATES.items()},
              "reference": {n: d for n, (d, _) in REFERENCE.items()},
              "first_cycle_steps": FIRST_CYCLE_STEPS}
    log("copy bandwidth ...")
    result["bandwidth"] = _common.copy_bandwidth(repeats=3 if quick else 7)
    log(f"  {result['bandwidth']['gb_s']:.1f} GB/s")
    log("graph op profile ...")
    result["op_profile"] = op_profile(list(CANDIDATES))
    result["sizes"] = []
    for label, parameters, tensors, full_rounds, quick_rounds in SIZES:
        rounds = quick_rounds if quick else full_rounds
        if rounds is None:
            continue
        names = list(CANDIDATES)
        if quick and tensors > 100:  # tracing 500 variables is slow
            names = list(TARGET_CANDIDATES) + ["adamwr_kernels"]
        log(f"{label}: {', '.join(names)}, {rounds} rounds")
        result["sizes"].append(time_size(label, parameters, tensors, rounds, names,
                                         0.1 if quick else 0.12, log))
    result["seconds"] = time.perf_counter() - started
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="drop 100M parameters, fewer rounds, and at 500 "
                        "tensors only the targets' candidates and AdamWR "
                        "with jit_compile=False")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    result = run(args.quick, log=lambda text: print(text, flush=True))
    if args.json:
        _common.write_json(args.json, result)
    print(f"done in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
