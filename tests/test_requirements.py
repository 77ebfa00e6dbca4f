"""Installs the library does not run on fail at import with what to install.

A fake `keras` package first on the path stands in for an old Keras (3.9
lacks `add_optimizer_variables`; 3.6 wraps `keras.Variable`) and for a Keras
whose backend package is missing (`pip install keras_adamwr` with no extra).
"""

import configparser
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

from keras_adamwr import _requirements

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _import_with_fake_keras(tmp_path, keras_source, backend="tensorflow"):
    (tmp_path / "keras").mkdir()
    (tmp_path / "keras" / "__init__.py").write_text(keras_source)
    env = dict(os.environ, KERAS_BACKEND=backend,
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    done = subprocess.run([sys.executable, "-c", "import keras_adamwr"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode != 0
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("version", ["3.9.2", "3.6.0", "2.15.0"])
def test_old_keras_is_refused_at_import_naming_the_minimum(tmp_path, version):
    last_line = _import_with_fake_keras(tmp_path, f"__version__ = {version!r}\n")
    assert last_line.startswith("ImportError: keras_adamwr needs Keras >= 3.10."), last_line
    assert f"Found Keras {version}." in last_line


def test_missing_backend_package_says_what_to_install(tmp_path):
    source = ("raise ModuleNotFoundError(\"No module named 'jax'\", name='jax')\n")
    last_line = _import_with_fake_keras(tmp_path, source, backend="jax")
    assert last_line.startswith("ImportError: keras_adamwr needs a Keras backend"), last_line
    assert "'jax'" in last_line
    assert 'pip install "keras_adamwr[tensorflow]"' in last_line


@pytest.mark.parametrize("backend", _requirements.BACKEND_PACKAGES)
def test_real_keras_without_its_backend_package(backend):
    if importlib.util.find_spec(backend) is not None:
        pytest.skip(f"{backend} is installed")
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", "import keras_adamwr"], env=env,
                          capture_output=True, text=True, timeout=300)
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError: keras_adamwr needs a Keras backend"), last_line
    assert f"No module named '{backend}'" in last_line


def test_check_keras_version_bounds():
    for version in ("3.10.0", "3.15.1", "3.16.0.dev2026113003", "4.0.0"):
        _requirements.check_keras_version(version)
    for version in ("3.9.2", "3.1", "nonsense"):
        with pytest.raises(ImportError, match=re.escape("Keras >= 3.10")):
            _requirements.check_keras_version(version)


def test_setup_cfg_states_the_same_keras_range():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    requirements = config["options"]["install_requires"]
    lower = re.search(r"keras>=(\d+)\.(\d+)", requirements)
    assert tuple(map(int, lower.groups())) == _requirements.MIN_KERAS
