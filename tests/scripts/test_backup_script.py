"""scripts/backup: options that do not go together are refused, and a restore asked for
without --yes restores nothing unless the operator types yes (no machine needed)."""

import subprocess

import pytest

from tests.conftest import REPO


def backup(*args, answer=""):
    run = subprocess.run([str(REPO / "scripts/backup"), *args], input=answer, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    return run.returncode, run.stdout + run.stderr


@pytest.mark.parametrize(
    "args", [["now", "--time=2026-11-22 10:00:00+00"], ["list", "--yes"], ["restore", "--type=full"]]
)
def test_options_of_another_command_are_refused(args):
    code, out = backup(*args)
    assert code == 2 and "--type goes with now" in out, out


def test_a_restore_not_confirmed_restores_nothing(tmp_path):
    """Declined at the prompt: exit 2 before any host is reached (the inventory names a host
    that does not exist, so reaching it would fail differently)."""
    inventory = tmp_path / "inventory.py"
    inventory.write_text("hosts = [('nohost.invalid', {'ssh_user': 'admin'})]\n")
    code, out = backup("restore", "--target", str(inventory), answer="no\n")
    assert code == 2 and "not restored" in out, out
