"""Provisioning again changes nothing and restarts nothing (same PIDs)."""

import os
import re
import subprocess

import pytest

from tests.conftest import REPO

#: What scripts/provision is pointed at for the re-run (local machine by default).
TARGET = os.environ.get("TODO_PROVISION_TARGET", "local")


def provision(*options):
    """Run scripts/provision [OPTIONS] TARGET; return its output (fails the test on a non-zero exit)."""
    run = subprocess.run(
        [str(REPO / "scripts/provision"), *options, TARGET],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    return run.stdout


def service_pids(host):
    """PIDs of every long-running process of the stack."""
    pids = {
        "nginx": host.process.get(user="root", comm="nginx").pid,
        "supervisord": host.process.get(comm="supervisord").pid,
        "postgres": int(host.check_output("head -1 /var/lib/postgresql/15/main/postmaster.pid")),
    }
    for line in host.check_output("supervisorctl status").splitlines():
        name, state, *rest = line.split()
        pids[name] = re.search(r"pid (\d+)", line).group(1) if state == "RUNNING" else state
    return pids


@pytest.mark.destructive
def test_second_provision_changes_nothing_and_restarts_nothing(host):
    before = service_pids(host)
    output = provision()
    # pyinfra's results table: "Grand total  <ops>  <success>  <error>  <no change>"
    total = re.search(r"Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+)", output)
    assert total, output[-2000:]
    ops, changed, errors, unchanged = total.groups()
    assert (changed, errors) == ("-", "-") and ops == unchanged, total.group(0)
    assert service_pids(host) == before


def dry_run_changes(output):
    """Operations that pyinfra's dry run says it would change: rows of its 'Detected changes' table."""
    table = output.split("--> Detected changes:", 1)[1].split("Detected changes may not include", 1)[0]
    rows = [re.split(r"\s{2,}", line.strip()) for line in table.splitlines()[2:] if line.strip()]
    return [row[0] for row in rows if row[1] != "-"]


@pytest.mark.destructive
def test_dry_run_shows_drift_and_changes_nothing(host):
    def dry_run():
        return provision("--dry-run")

    assert dry_run_changes(dry_run()) == []
    host.run("echo '# drift' >> /etc/nginx/nginx.conf")
    try:
        output = dry_run()
        assert dry_run_changes(output) == ["Ensure /etc/nginx/nginx.conf."]
        assert "- # drift" in output  # the diff
        assert host.file("/etc/nginx/nginx.conf").content_string.endswith("# drift\n")  # not applied
    finally:
        host.run("sed -i '/^# drift$/d' /etc/nginx/nginx.conf")


@pytest.mark.destructive
def test_provision_reloads_a_flushed_firewall(host):
    """Drift the config files cannot show: the rules were flushed by hand, the file is intact."""
    host.check_output("nft flush ruleset")
    try:
        provision()
        assert "policy drop;" in host.check_output("nft list chain inet filter input")
    finally:
        host.run("nft list chain inet filter input >/dev/null 2>&1 || systemctl reload nftables")
