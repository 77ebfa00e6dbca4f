"""README.md and docs/ state what this version is (issue 18, item 11).

Version ranges come from one source, setup.cfg: every page that states the
Python or Keras range must state setup.cfg's. The private hooks the docs
count are counted in the code. Test counts are not written down (pytest's
last line gives them; a number that every new test changes would be stale
at once); `--quick`'s duration is written once per page, as
`examples/cifar10.py --help` says it.
"""

import configparser
import pathlib
import re

import keras
import pytest

import keras_adamwr
from keras_adamwr import _requirements

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


def _setup():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def _keras_requirement():
    requires = _setup()["options"]["install_requires"]
    (line,) = [line.strip() for line in requires.splitlines() if line.strip().startswith("keras")]
    low, high = re.fullmatch(r"keras>=(3\.\d+),<(3\.\d+)", line).groups()
    return line, low, high


def _python_range():
    spec = _setup()["options"]["python_requires"]
    low, high = re.fullmatch(r">=(3\.\d+),<(3\.\d+)", spec).groups()
    return low, f"3.{int(high.split('.')[1]) - 1}"


def _claims(pattern):
    return [(page.name, match) for page in PAGES
            for match in re.finditer(pattern, page.read_text())]


def test_the_keras_range_stated_is_setup_cfgs():
    line, low, high = _keras_requirement()
    last = f"3.{int(high.split('.')[1]) - 1}"
    stated = _claims(r"keras>=[\d.]+,<[\d.]+")
    assert stated and all(m.group(0) == line for _, m in stated), [
        (page, m.group(0)) for page, m in stated if m.group(0) != line]
    ranges = _claims(r"Keras (3\.\d+) to (3\.\d+)")
    assert all(m.groups() == (low, last) for _, m in ranges), [
        (page, m.group(0)) for page, m in ranges]
    assert _requirements.MIN_KERAS == tuple(map(int, low.split(".")))


def test_the_python_range_stated_is_setup_cfgs():
    low, last = _python_range()
    stated = _claims(r"Python (3\.\d+) ?(?:-|to|–) ?(3\.\d+)")
    assert stated and all(m.groups() == (low, last) for _, m in stated), [
        (page, m.group(0)) for page, m in stated]
    classifiers = re.findall(r"Python :: (3\.\d+)", _setup()["metadata"]["classifiers"])
    minors = range(int(low.split(".")[1]), int(last.split(".")[1]) + 1)
    assert classifiers == [f"3.{minor}" for minor in minors]


def _overridden_keras_hooks():
    base = keras.optimizers.Optimizer
    hooks = set()
    for cls in {*keras_adamwr.AdamW.__mro__, *keras_adamwr.SGDW.__mro__}:
        if not cls.__module__.startswith("keras_adamwr"):
            continue
        for name in vars(cls):
            if name.startswith("_") and not name.startswith("__") and hasattr(base, name):
                owner = next(c for c in base.__mro__ if name in vars(c))
                if owner.__module__.startswith("keras."):
                    hooks.add(name)
    return hooks


def test_the_private_hooks_counted_are_those_overridden():
    hooks = _overridden_keras_hooks()
    counts = _claims(r"\b(\w+) private\s+(?:Keras\s+)?(?:hooks|methods)")
    assert counts, "no page counts the private hooks"
    for page, match in counts:
        if match.group(1) in WORDS or match.group(1).isdigit():
            count = WORDS.get(match.group(1)) or int(match.group(1))
            assert count == len(hooks), (page, match.group(0), sorted(hooks))
    readme = (ROOT / "README.md").read_text()
    listed = re.search(r"private Keras hooks\s*\(([^)]*)", readme).group(1)
    assert set(re.findall(r"`(_\w+)`", listed)) == hooks


def test_no_page_states_a_test_count():
    # "679 tests" was stale the day a test was added: pytest prints the count.
    stated = _claims(r"\b\d[\d,]* (?:tests|passed)\b")
    assert not stated, [(page, m.group(0)) for page, m in stated]


def test_quick_duration_is_the_one_of_cifar10_help(capsys):
    from examples import cifar10

    with pytest.raises(SystemExit):
        cifar10.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    duration = re.search(r"--quick: [^;]*; ([^.]*)\.", text).group(1)
    for page in (ROOT / "README.md", ROOT / "docs" / "examples.md",
                 ROOT / "examples" / "cifar10.py"):
        for match in re.finditer(r"cifar10\.py --quick[^\n]*|train\.sh --quick`? \(([^)]*)\)|"
                                 r"`--quick` \(([^)]*)\)", page.read_text()):
            said = match.group(0)
            if re.search(r"minute|second|\d+ ?s\b", said):
                assert duration in said or "< 30 s" in said, (page.name, said, duration)


def test_train_sh_is_not_said_to_download():
    readme = (ROOT / "README.md").read_text()
    assert "which downloads" not in readme and "it never downloads" in readme
    assert "default (which downloads" not in (ROOT / "tools" / "train.sh").read_text()


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_plot_schedule_examples_say_where_the_figure_goes(page):
    # A `Figure` of matplotlib.figure shows nothing in a script: save it.
    for call in re.findall(r"plot_schedule\((?!\.\.\.)[^)]*\)", page.read_text()):
        assert "path=" in call, (page.name, call)
