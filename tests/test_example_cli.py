"""examples/cifar10.py's command line answers without importing TensorFlow."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("tensorflow", "tensorflow_datasets", "keras", "jax", "torch")


def _modules_loaded_by(argv, script="cifar10.py"):
    """Run examples/`script` with `argv` in a fresh interpreter; return the
    heavy modules it imported, and its output."""
    probe = (
        "import runpy, sys\n"
        f"sys.argv = [{script!r}] + {argv!r}\n"
        "sys.path.insert(0, 'examples')\n"
        "try:\n"
        f"    runpy.run_path('examples/{script}', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    return result.stdout.splitlines()[-1], result.stdout + result.stderr


def test_help_does_not_import_tensorflow():
    loaded, output = _modules_loaded_by(["--help"])
    assert loaded == "[]", output
    assert "--optimizer {adam_l2,adamw,adamwr,sgdw,sgdwr,keras_adamw}" in output
    assert "--arch {preact_resnet,shake_shake}" in output


def test_compare_help_does_not_import_tensorflow():
    # Was 18 s, TensorFlow's logs first (issue 18, item 13).
    loaded, output = _modules_loaded_by(["--help"], "compare.py")
    assert loaded == "[]", output
    assert "--optimizers" in output and "cuInit" not in output


def test_bad_argument_is_reported_without_importing_tensorflow():
    loaded, output = _modules_loaded_by(["--epochs", "0"])
    assert loaded == "[]", output
    assert "argument --epochs: must be >= 1, got 0" in output


def test_parse_args_still_resolves_architecture_defaults():
    from examples import _models, cifar10

    assert cifar10.ARCHS == tuple(sorted(_models.ARCHS))
    args = cifar10.parse_args(["--arch", "shake_shake"])
    assert (args.depth, args.width) == _models.ARCH_DEFAULTS["shake_shake"]
    args = cifar10.parse_args(["--quick"])
    assert (args.depth, args.width) == (1, 8)
    model = cifar10.build_model("preact_resnet", 1, 4)
    assert model.count_params() > 0
