"""Provisioning again changes nothing and restarts nothing (same PIDs)."""

import os
import re
import shlex
import subprocess

import pytest

from tests.conftest import REPO
from tests.helpers import MACHINE, OTHER_CLIENT, connects, new_session, wait_until

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
    _, changed = grand_total(provision())
    assert changed == 0
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
        assert dry_run_changes(output) == [
            "nginx | Ensure nginx's configuration: nginx.conf, the snippets and this host's sites (nginx -t)."
        ]
        assert "- # drift" in output  # the diff
        assert host.file("/etc/nginx/nginx.conf").content_string.endswith("# drift\n")  # not applied
    finally:
        host.run("sed -i '/^# drift$/d' /etc/nginx/nginx.conf")


@pytest.mark.destructive
def test_provision_reloads_a_flushed_firewall(host):
    """Drift the config files cannot show: the rules were flushed by hand, the file is intact.
    fail2ban's table went with them: provisioning restarts fail2ban, which enforces its bans again."""
    host.check_output(f"fail2ban-client set sshd banip {OTHER_CLIENT}")
    try:
        wait_until(lambda: not connects(22), timeout=10)
        host.check_output("nft flush ruleset")
        assert connects(22), "the ban outlived the flush: this test proves nothing"
        provision()
        assert "policy drop;" in host.check_output("nft list chain inet filter input")
        wait_until(lambda: not connects(22), timeout=10)
    finally:
        host.run("nft list chain inet filter input >/dev/null 2>&1 || systemctl reload nftables")
        host.run(f"fail2ban-client unban {OTHER_CLIENT} || true")


def grand_total(output):
    """(operations, changed) from pyinfra's results table ("Grand total  ops  success  error  no change")."""
    total = re.search(r"Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+)", output)
    assert total, output[-2000:]
    ops, changed, errors, _ = total.groups()
    assert errors == "-", total.group(0)
    return int(ops), 0 if changed == "-" else int(changed)


#: (what drifts, the command that drifts it, a shell check that passes once it is repaired).
DRIFT = [
    ("secrets file mode", "chmod 0644 /etc/{app}/{app}.env", "[ $(stat -c %a /etc/{app}/{app}.env) = 640 ]"),
    ("config dir owner", "chown root:root /etc/{app}", "[ $(stat -c %U:%G /etc/{app}) = root:{app} ]"),
    ("release dir mode", "chmod 0777 /srv/{app}/releases", "[ $(stat -c %a /srv/{app}/releases) = 755 ]"),
    ("socket dir mode", "chmod 0755 /run/{app}", "[ $(stat -c %a /run/{app}) = 750 ]"),
    ("TLS key mode", "chmod 0644 /etc/ssl/{app}/{app}.key", "[ $(stat -c %a /etc/ssl/{app}/{app}.key) = 600 ]"),
    ("sudoers mode", "chmod 0640 /etc/sudoers.d/{app}-deploy", "[ $(stat -c %a /etc/sudoers.d/{app}-deploy) = 440 ]"),
    # Writing ip_forward resets every conf.*.accept_redirects to 1: the file is unchanged.
    ("live sysctl values", "sysctl -qw net.ipv4.ip_forward=1",
     "[ $(sysctl -n net.ipv4.ip_forward) = 0 ] && [ $(sysctl -n net.ipv4.conf.all.accept_redirects) = 0 ]"),
    ("loaded firewall rules", "nft flush ruleset", "nft list chain inet filter input | grep -q 'policy drop'"),
    ("enabled unit", "systemctl disable --quiet nginx", "systemctl is-enabled --quiet nginx"),
    ("stopped instance", "supervisorctl stop {app}-0", "supervisorctl status {app}-0 | grep -qE 'RUNNING|STARTING'"),
    # A log left by an instance no longer run (after fewer instances): nothing would rotate it.
    ("an old instance's log", "touch /var/log/{app}/{app}-9.log", "[ ! -e /var/log/{app}/{app}-9.log ]"),
    # The second login role a password rotation needs must stay a member of the app's role.
    ("login role membership", "runuser -u postgres -- psql -d {app} -qc 'REVOKE {app} FROM {app}_b'",
     "runuser -u postgres -- psql -d {app} -Atc \"SELECT pg_has_role('{app}_b', '{app}', 'MEMBER')\" | grep -qx t"),
]  # fmt: skip


@pytest.mark.destructive
def test_provision_repairs_drifted_state_then_changes_nothing(host, app_name):
    """Drift every kind of state the stack owns by hand; one provision repairs all of it, the next changes nothing."""
    for _, drift, _ in DRIFT:
        host.check_output(drift.format(app=app_name))
    try:
        provision()
        broken = [what for what, _, repaired in DRIFT if host.run(repaired.format(app=app_name)).rc != 0]
        assert broken == [], f"not repaired by provisioning: {broken}"
        _, changed = grand_total(provision())
        assert changed == 0
    finally:
        host.run("nft list chain inet filter input >/dev/null 2>&1 || systemctl reload nftables")
        host.run(f"systemctl enable --quiet nginx; supervisorctl start {app_name}-0")


@pytest.mark.destructive
def test_a_refused_config_file_fails_every_run_and_leaves_the_old_one(host, tmp_path):
    """A firewall template nft refuses: provisioning fails, and fails again on the next run (the
    file in place still differs from the repo), while the old rules stay on disk and loaded."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in (".venv", ".git"):
            subprocess.run(["cp", "-a", str(entry), str(repo)], check=True)
    (repo / ".venv").symlink_to(REPO / ".venv")
    template = repo / "hardening/nftables.conf.j2"
    template.write_text(template.read_text().replace("policy drop;", "policy drop;\n        this is not nftables"))
    on_disk = host.file("/etc/nftables.conf").sha256sum
    loaded = host.check_output("nft list chain inet filter input")
    for attempt in (1, 2):
        run = subprocess.run(
            [str(repo / "scripts/provision"), TARGET],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=repo,
        )  # fmt: skip
        assert run.returncode != 0, f"provision {attempt} passed with a broken firewall template"
        assert "refused by the check" in run.stdout, run.stdout[-2000:]
        assert host.file("/etc/nftables.conf").sha256sum == on_disk
        assert host.check_output("ls -A /etc/.todo-stage") == ""  # the refused copy is gone
        assert host.check_output("nft list chain inet filter input") == loaded


@pytest.mark.destructive
@pytest.mark.parametrize(
    ("path", "text", "named"),
    [
        ("/etc/nginx/conf.d/zz-todo-broken.conf", "this is not nginx;\n", "nginx -t:"),
        ("/etc/supervisor/conf.d/zz-todo-broken.conf", "[program:broken]\n", "supervisor:"),
        ("/etc/systemd/system/nginx.service.d/zz-todo-broken.conf", "[Service]\nKillMode=bogus\n",
         "systemd-analyze verify:"),
    ],
    ids=["nginx", "supervisor", "systemd"],
)  # fmt: skip
def test_a_broken_config_the_run_did_not_change_fails_every_run(host, path, text, named):
    """A file nginx or systemd would refuse at its next start, which no step of the run rewrites (an
    operator's leftover, a mismatched certificate from an earlier run): every run fails and names it."""
    host.check_output(f"printf %s {shlex.quote(text)} > {path}")
    try:
        for attempt in (1, 2):
            run = subprocess.run([str(REPO / "scripts/provision"), TARGET], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)  # fmt: skip
            assert run.returncode != 0, f"provision {attempt} passed with {path} broken"
            assert named in run.stdout, run.stdout[-2000:]
    finally:
        host.check_output(f"rm -f {path}")
    assert grand_total(provision())[1] == 0


@pytest.mark.destructive
def test_provisioning_that_changes_nginxs_rules_empties_its_caches(host, app_name):
    """What older rules let into a cache does not outlive them: a drifted site put back by
    provisioning leaves the API's microcache empty."""
    cache = f"/var/cache/nginx/{app_name}-api"
    assert new_session(MACHINE).get(f"https://{MACHINE}/api/todos", timeout=10).status_code == 200
    assert host.check_output(f"find {cache} -type f | wc -l") != "0", "nothing was cached: no proof"
    host.check_output(f"echo '# drift' >> /etc/nginx/sites-available/{app_name}.conf")
    provision()
    assert host.check_output(f"find {cache} -type f | wc -l") == "0"


@pytest.mark.destructive
def test_provisioning_seals_a_release_the_build_user_still_owns(host, app_name):
    """A kept release the build user owns (the serving one, built by a release tool from before
    releases were sealed) is sealed by the next provision: root's, group the app's, writable by root alone."""
    release = host.file(f"/srv/{app_name}/current").linked_to  # the serving one, as at an upgrade
    host.check_output(f"chown -R --no-dereference {app_name}-build:{app_name}-build {release} && chmod u+w {release}")
    provision()
    assert (host.file(release).user, host.file(release).group) == ("root", app_name)
    assert host.check_output(f"find {release} ! -user root -print -quit") == ""
    assert host.check_output(f"runuser -u {app_name}-build -- find {release} -writable -print -quit") == ""
