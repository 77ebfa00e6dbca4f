"""The examples write every run to its own folder, never over results."""

import os

import pytest

pytest.importorskip("tensorflow_datasets")

from examples import _common, cifar10, compare  # noqa: E402


def test_default_folders_are_fresh_and_quick_runs_separate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cifar10.parse_args([]).output_dir == os.path.join("runs", "cifar10-adamwr")
    quick = cifar10.parse_args(["--quick"]).output_dir
    assert quick == os.path.join("runs", "cifar10-adamwr-quick")
    os.makedirs(quick)
    assert cifar10.parse_args(["--quick"]).output_dir == quick  # empty: reused
    open(os.path.join(quick, "metrics.json"), "w").close()
    assert cifar10.parse_args(["--quick"]).output_dir == quick + "-2"
    os.makedirs(quick + "-2")
    open(os.path.join(quick + "-2", "anytime.json"), "w").close()
    assert cifar10.parse_args(["--quick"]).output_dir == quick + "-3"
    assert compare.parse_args(["--quick"])[0].output_dir == os.path.join(
        "runs", "compare-quick")


def test_a_given_folder_with_results_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs("taken")
    open(os.path.join("taken", "metrics.json"), "w").close()
    for main in (cifar10.main, compare.main):
        with pytest.raises(_common.ExampleError, match="--output-dir taken already "
                           "holds files of an earlier run"):
            main(["--quick", "--output-dir", "taken", "--data-dir", str(tmp_path)])
    assert os.listdir("taken") == ["metrics.json"]
