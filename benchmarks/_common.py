"""Helpers shared by the benchmark scripts: the machine, timing, JSON.

Every figure the benchmarks report is a ratio of candidates timed side by
side in one process: `interleave` runs the candidates in rounds, rotating
their order each round, and keeps one timing per candidate per round, so a
ratio can be taken within each round (both sides saw the same machine load)
and summarized by its median and quartiles.
"""

import json
import os
import platform
import statistics
import sys
import threading
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def quiet_tensorflow():
    """Silence TF's C++ start-up chatter; call before importing TF."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def machine_info():
    """CPU model, cores, memory, load and library versions, as a dict."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gib = None
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemTotal:"):
                    memory_gib = int(line.split()[1]) / 2**20
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = {
        "cpu_model": model,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": memory_gib,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    for name in ("tensorflow", "keras"):
        module = sys.modules.get(name)
        if module is not None:
            info[name] = module.__version__
    return info


def copy_bandwidth(megabytes=400, repeats=5, threads=None):
    """Memory bandwidth of a large `np.copyto`, in GB/s (10**9 bytes/s).

    Counts the bytes read plus the bytes written (2 x `megabytes` per copy),
    the same accounting as the optimizer floor of 28 bytes per parameter
    (16 read, 12 written). Measures one thread and `threads` threads
    (default: the usable cores) each copying a slice; numpy releases the GIL
    while copying. Returns medians and the best of the two.
    """
    count = int(megabytes * 1e6) // 4
    source = np.ones(count, np.float32)
    target = np.empty_like(source)
    np.copyto(target, source)  # touch every page first
    threads = threads or machine_info()["usable_cores"] or 1

    def copy_slices(workers):
        bounds = np.linspace(0, count, workers + 1).astype(int)

        def copy(index):
            part = slice(bounds[index], bounds[index + 1])
            np.copyto(target[part], source[part])

        pool = [threading.Thread(target=copy, args=(i,)) for i in range(workers)]
        start = time.perf_counter()
        for worker in pool:
            worker.start()
        for worker in pool:
            worker.join()
        return time.perf_counter() - start

    result = {"megabytes": megabytes, "threads": threads}
    for label, workers in (("one_thread", 1), ("all_threads", threads)):
        seconds = [copy_slices(workers) for _ in range(repeats)]
        result[f"{label}_gb_s"] = 2 * source.nbytes / statistics.median(seconds) / 1e9
    result["gb_s"] = max(result["one_thread_gb_s"], result["all_threads_gb_s"])
    return result


def interleave(candidates, rounds, calls):
    """Time candidates side by side: `rounds` rounds, rotating the order.

    Args:
        candidates: dict name -> function(calls) that runs `calls` calls and
            returns once the last one's result has been synchronized.
        rounds: How many rounds.
        calls: dict name -> calls per timing (so each timing is long enough
            to read the clock well), or one int for all.

    Returns:
        dict name -> list of seconds per call, one entry per round.
    """
    names = list(candidates)
    if isinstance(calls, int):
        calls = dict.fromkeys(names, calls)
    times = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            candidates[name](calls[name])
            times[name].append((time.perf_counter() - start) / calls[name])
    return times


def quartiles(values):
    """(25th percentile, median, 75th percentile) of a list."""
    low, mid, high = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(low), float(mid), float(high)


def ratio_summary(times, name, reference):
    """Median and quartiles of the per-round ratio `name / reference`."""
    ratios = [a / b for a, b in zip(times[name], times[reference])]
    low, mid, high = quartiles(ratios)
    return {"median": mid, "q25": low, "q75": high, "rounds": len(ratios)}


def write_json(path, data):
    """Write `data` as indented JSON (creating the parent directory)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as file:
        json.dump(data, file, indent=1, sort_keys=True, default=float)
        file.write("\n")


def default_tfds_dir():
    """$TFDS_DATA_DIR, else ../shared/data/tfds beside the repository, else None."""
    if os.environ.get("TFDS_DATA_DIR"):
        return os.environ["TFDS_DATA_DIR"]
    shared = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data", "tfds")
    return shared if os.path.isdir(shared) else None
