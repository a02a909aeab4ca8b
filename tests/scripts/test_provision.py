"""scripts/provision: clear errors for bad targets, bad inventories and unreachable hosts."""

import subprocess

import pytest

from tests.conftest import REPO


def provision(*args):
    """Run scripts/provision; return (exit status, combined output)."""
    run = subprocess.run(
        [str(REPO / "scripts/provision"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    return run.returncode, run.stdout


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nope", "bad target nope"),
        ("root@", "bad target root@: expected USER@HOST[:PORT]"),
        ("missing-inventory.py", "inventory missing-inventory.py: no such file"),
        ("--frobnicate", "unknown option --frobnicate"),
    ],
)
def test_bad_target_is_refused_with_a_clear_error(target, message):
    code, out = provision(target)
    assert code != 0 and message in out


def test_broken_inventory_file_fails(tmp_path):
    inventory = tmp_path / "broken.py"
    inventory.write_text("hosts = [\n")
    code, out = provision(str(inventory))
    assert code != 0 and f"provision: inventory {inventory}: SyntaxError" in out, out


def test_unreachable_host_fails_and_says_so():
    # Port 1 on loopback: refused at once, and nothing leaves this box.
    code, out = provision("nobody@127.0.0.1:1")
    assert code != 0
    assert "Could not connect" in out or "No hosts remaining" in out


def test_help_names_targets_and_exit_status():
    code, out = provision("--help")
    assert code == 0 and "USER@HOST[:PORT]" in out and "Exit status" in out
