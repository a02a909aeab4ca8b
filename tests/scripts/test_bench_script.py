"""scripts/bench: bad usage is refused before anything is measured (no machine needed)."""

import subprocess

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("args", [["--seconds", "0"], ["--connections", "0"], ["--target", "nope"]])
def test_bad_usage_is_refused(args):
    run = subprocess.run([str(REPO / "scripts/bench"), *args], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
