"""tools/train.sh's stderr filter (issue 18, item 13): TensorFlow's early
C++ log lines are dropped as TF_CPP_MIN_LOG_LEVEL asks, the cuInit failure
only on a machine without an NVIDIA device, and real errors never."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
INFO = "I0000 00:00:1796598763.992374   20652 port.cc:153] oneDNN custom operations are on."
CUINIT = ("E0000 00:00:1796598801.297089   20652 cuda_platform.cc:52] failed call to "
          "cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")
REAL = "E0000 00:00:1796598801.297089   20652 cuda_platform.cc:52] something else failed"
TRACEBACK = "Traceback (most recent call last):"


def _filtered(level, device):
    lines = [BANNER, INFO, CUINIT, REAL, TRACEBACK]
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail; source tools/_tf_log.sh; tf_log_filter"],
        input="\n".join(lines) + "\n", capture_output=True, text=True, cwd=ROOT, check=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL=str(level),
                 TF_LOG_NVIDIA_DEVICE="/dev/null" if device else "/nonexistent/nvidiactl"))
    return result.stdout.splitlines()


@pytest.mark.parametrize("device", [False, True])
def test_only_hidden_levels_and_a_gpu_less_cuinit_are_dropped(device):
    kept = _filtered(2, device)
    assert kept == ([CUINIT] if device else []) + [REAL, TRACEBACK]
    assert _filtered(0, device) == [INFO] + ([CUINIT] if device else []) + [REAL, TRACEBACK]


def test_tf_filtered_filters_stderr_only_and_keeps_the_exit_status():
    command = (f'python3 -c "import sys; print(\'out\'); print({CUINIT!r}, file=sys.stderr); '
               f'print({REAL!r}, file=sys.stderr); sys.exit(3)"')
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail; source tools/_tf_log.sh\n"
         f"status=0; tf_filtered {command} || status=$?; exit $status"],
        capture_output=True, text=True, cwd=ROOT, check=False,
        env=dict(os.environ, TF_LOG_NVIDIA_DEVICE="/nonexistent/nvidiactl"))
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", REAL + "\n")


def test_train_sh_and_ci_run_their_python_through_the_filter():
    script = (ROOT / "tools" / "train.sh").read_text()
    assert 'source "$ROOT/tools/_tf_log.sh"' in script
    assert 'tf_filtered python examples/cifar10.py "$@"' in script
    ci = (ROOT / ".ci" / "run").read_text()
    assert "tf_filtered python examples/reproduce.py --quick" in ci
