"""Backups off the database server (issue 12): pgBackRest's repository on the backup host, and
what it is for. The repository, its passphrase and the timers are on the backup host only; the
app keeps serving and taking writes while the backup host is unreachable, with a warning, and
archiving catches up when it is back; and a server that is lost entirely (its machine destroyed)
comes back on a new machine from the backup host, with every write acknowledged up to the last
archived WAL. Measured: RPO and RTO. These tests stop and destroy machines: destructive."""

import json
import os
import time
from pathlib import Path

import pytest

import tests.host.test_idempotence as idempotence
from tests.backuphost.conftest import BACKUP_ADDRESS, INVENTORY, backup, backup_machine, run
from tests.conftest import _trust_certificate
from tests.helpers import add_todo, new_session, query, wait_until

pytestmark = pytest.mark.destructive

SERVER_ADDRESS = "192.168.56.10"


def status(host):
    """The server's backup status (<app>-backup status --json) as (exit status, the JSON object)."""
    done = host.run("/usr/local/sbin/todo-backup status --json")
    return done.rc, json.loads(done.stdout)


def stored(host, texts):
    """Which of ``texts`` are in the todo table."""
    listed = ",".join(f"'{text}'" for text in texts)
    return set(query(host, f"SELECT text FROM todo WHERE text IN ({listed})").split())


def switch_and_wait_archived(host, timeout=120):
    """Close the current WAL segment and wait until PostgreSQL has archived it to the backup host."""
    segment = query(host, "SELECT pg_walfile_name(pg_switch_wal())")
    wait_until(lambda: query(host, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") >= segment,
               timeout=timeout)  # fmt: skip


def changed_operations(output):
    """The operations pyinfra's output says changed something ("Success"), with the host."""
    changed, operation = [], None
    for line in output.splitlines():
        if line.startswith("--> Starting operation: "):
            operation = line.removeprefix("--> Starting operation: ").strip()
        elif line.strip().endswith("Success"):
            changed.append(f"{line.split()[0]} {operation}")
    return changed


def test_a_second_provision_of_both_hosts_changes_nothing(backup_host):
    code, out = run("scripts/provision", INVENTORY, timeout=900)
    assert code == 0, out[-3000:]
    assert idempotence.grand_total(out)[1] == 0, changed_operations(out)


def test_the_repository_its_passphrase_and_the_timers_are_on_the_backup_host_only(host, backup_host):
    code, found = status(host)
    assert code == 0 and not found["warnings"], found
    assert found["same_disk"] is False and BACKUP_ADDRESS in found["repository"], found
    conf = host.file("/etc/pgbackrest/pgbackrest.conf").content_string
    assert f"repo1-host={BACKUP_ADDRESS}" in conf and "repo1-path" not in conf and "cipher" not in conf.split("[")[1]
    assert not host.run("ls /etc/pgbackrest/conf.d/*cipher* 2>/dev/null").stdout.strip()
    assert not host.file("/etc/systemd/system/todo-backup-full.timer").exists
    info = backup_host.file("/var/lib/pgbackrest/backup/todo/backup.info")
    assert info.exists and info.user == "pgbackrest"
    repo = backup_host.file("/var/lib/pgbackrest")
    assert (repo.user, repo.group, repo.mode) == ("pgbackrest", "pgbackrest", 0o750)
    cipher = backup_host.file("/etc/pgbackrest/conf.d/todo-cipher.conf")
    assert (cipher.user, cipher.mode) == ("pgbackrest", 0o600) and "repo1-cipher-pass=" in cipher.content_string
    for kind in ("full", "diff"):
        timer = backup_host.service(f"todo-backup-{kind}.timer")
        assert timer.is_enabled and timer.is_running
    # Each side accepts exactly the other's key, for pgBackRest only, from the other's address only.
    for side, home, peer in ((host, "/var/lib/postgresql", BACKUP_ADDRESS), (backup_host, "/home/pgbackrest",
                                                                             SERVER_ADDRESS)):  # fmt: skip
        lines = side.file(f"{home}/.ssh/authorized_keys").content_string.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f'restrict,from="{peer}",command="/usr/bin/pgbackrest '), lines
    # Each side pins the other's host key: the one the other host has.
    for side, home, other in ((host, "/var/lib/postgresql", backup_host), (backup_host, "/home/pgbackrest", host)):
        pinned = side.file(f"{home}/.ssh/known_hosts").content_string.split()[1:3]
        assert pinned == other.file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[:2]
    # The key runs pgBackRest only, whatever command the client asks for.
    shell = host.run(f"runuser -u postgres -- ssh {BACKUP_ADDRESS} id")
    assert "uid=" not in shell.stdout, shell.stdout
    # Nothing but SSH answers on the backup host, and its firewall admits nothing else.
    rules = backup_host.check_output("nft list chain inet filter input")
    opened = [line.strip() for line in rules.splitlines() if line.strip().startswith("tcp dport")]
    assert [line for line in opened if line.endswith("accept")] == ["tcp dport 22 accept"], rules
    listening = backup_host.run("ss -Htln | awk '{print $4}'").stdout.split()
    assert all(a.endswith(":22") or a.startswith(("127.", "[::1]")) for a in listening), listening


def test_the_app_keeps_taking_writes_while_the_backup_host_is_unreachable(host, machine_address, report):
    """The backup host stops: writes go on, the status warns; it comes back: archiving catches up,
    and the writes made meanwhile are in the repository (verify restores them)."""
    session = new_session(machine_address)
    backup_machine("stop")
    try:
        started = time.monotonic()
        during = [add_todo(session) for _ in range(10)]
        assert session.get(f"{session.base}/", timeout=10).status_code == 200
        query(host, "SELECT pg_switch_wal()")  # a segment to archive now, not in archive_timeout
        # The warnings that matter: WAL archiving fails (not only "the repository cannot be read").
        archiving = ("WAL archiving fails", "WAL segments wait to be archived")
        warned, _ = wait_until(lambda: [w for w in status(host)[1]["warnings"] if any(a in w for a in archiving)],
                               timeout=150)  # fmt: skip
        assert status(host)[0] == 1, warned
        report("backup host down: writes go on; the status warns after", f"{time.monotonic() - started:.1f} s")
        assert stored(host, during) == set(during)
    finally:
        backup_machine("start")
    back = time.monotonic()
    wait_until(lambda: status(host)[0] == 0, timeout=180, interval=2)
    report("backup host back: WAL archived again and no warning after", f"{time.monotonic() - back:.1f} s")
    code, out = backup("verify")  # restores the newest backup plus the WAL up to now, and compares
    assert code == 0 and "as live" in out, out


def test_a_lost_server_comes_back_from_the_backup_host(request, host, machine_address, report):
    """The disaster: the server's power is cut and its disk is gone. A new machine, the secrets file put back
    (the operator's copy), one provision and one restore: every write acknowledged before the last
    WAL archived before the loss is back. RPO: the acknowledged writes lost, in seconds."""
    env = host.check_output("cat /etc/todo/todo.env")  # the copy the README says to keep off the server
    session = new_session(machine_address)
    switch_and_wait_archived(host)
    safe = [add_todo(session)]  # archived for certain: the next switch below closes its segment
    switch_and_wait_archived(host)
    acknowledged = []  # (text, when) of every write the app acknowledged, for the default archive_timeout
    until = time.time() + 75
    while time.time() < until:
        acknowledged.append((add_todo(session), time.time()))
        time.sleep(0.5)
    code, out = run("scripts/machine", "crash", timeout=300)  # the power cut: nothing shuts down cleanly
    lost_at = time.time()
    assert code == 0, out
    code, out = run("scripts/machine", "destroy", timeout=300)  # and the disk is gone
    assert code == 0, out

    code, out = run("scripts/machine", "start", timeout=600)
    assert code == 0, out
    code, out = run("scripts/machine", "ssh", "sudo install -d -m 755 /etc/todo && sudo sh -c "
                    "'umask 077; cat > /etc/todo/todo.env'", stdin=env)  # fmt: skip
    assert code == 0, out
    provisioned = time.monotonic()
    code, out = run("scripts/provision", INVENTORY, timeout=1200)
    assert code == 0, out[-3000:]
    report("new server provisioned from bare (with the backup host)", f"{time.monotonic() - provisioned:.0f} s")
    _trust_certificate(request.config, Path(os.environ["REQUESTS_CA_BUNDLE"]))  # the new server's certificate

    started = time.monotonic()
    code, out = backup("restore", "--yes")
    assert code == 0, out
    new_session_ = new_session(machine_address)
    wait_until(lambda: new_session_.get(f"{new_session_.base}/", timeout=5).status_code == 200, timeout=120)
    report("restore on the new server, from the command to 200 again (RTO)", f"{time.monotonic() - started:.1f} s")
    report("from the loss to 200 again (machine, provision, restore)", f"{time.time() - lost_at:.0f} s")

    texts = [text for text, _ in acknowledged]
    back = stored(host, safe + texts)
    assert set(safe) <= back, "a write archived before the loss was not restored"
    kept = [when for text, when in acknowledged if text in back]
    lost = [when for text, when in acknowledged if text not in back]
    # Restored writes are a prefix of the acknowledged ones: none missing before the last one back.
    assert not kept or not [when for when in lost if when < kept[-1]], "a gap in the restored writes"
    rpo = (acknowledged[-1][1] - kept[-1]) if kept else acknowledged[-1][1] - acknowledged[0][1]
    report("RPO: acknowledged writes lost with the server (archive_timeout 60 s)",
           f"{rpo:.1f} s ({len(lost)} of {len(acknowledged)} writes)")  # fmt: skip
    assert rpo <= 60 + 10, f"{rpo:.0f} s of writes lost: more than archive_timeout (60 s) allows"

    # The new server is backed up again: a backup from the backup host, and writes are taken;
    # and provisioning it again changes nothing.
    add_todo(new_session_)
    code, out = backup("now")
    assert code == 0, out
    code, out = run("scripts/provision", INVENTORY, timeout=900)
    assert code == 0 and idempotence.grand_total(out)[1] == 0, changed_operations(out)
