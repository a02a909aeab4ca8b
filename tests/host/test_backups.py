"""Backups on the host, checked the way a tester checks a VM: timers, who may read the
repository and its passphrase, WAL archiving (deploy/tasks/backups.py)."""

import json

import pytest


@pytest.mark.parametrize("kind", ["full", "diff"])
def test_backup_timer_is_enabled_and_waiting(host, app_name, kind):
    timer = host.service(f"{app_name}-backup-{kind}.timer")
    assert timer.is_enabled and timer.is_running


def test_backup_repository_is_postgres_only(host, app_name):
    repo = host.file("/var/lib/pgbackrest")
    assert (repo.user, repo.group, repo.mode) == ("postgres", "postgres", 0o750)
    assert host.run(f"runuser -u {app_name} -- ls /var/lib/pgbackrest/backup").rc != 0


def test_backup_passphrase_is_postgres_only(host, app_name):
    cipher = host.file(f"/etc/pgbackrest/conf.d/{app_name}-cipher.conf")
    assert (cipher.user, cipher.mode) == ("postgres", 0o600)
    assert "repo1-cipher-pass=" in cipher.content_string
    assert "repo1-cipher-type=aes-256-cbc" in host.file("/etc/pgbackrest/pgbackrest.conf").content_string


def test_postgresql_archives_its_wal_into_the_repository(host, app_name):
    settings = host.check_output(
        "runuser -u postgres -- psql -Atc \"SELECT current_setting('archive_mode'), "
        "current_setting('archive_command'), current_setting('archive_timeout')\""
    )
    assert settings == f"on|pgbackrest --stanza={app_name} archive-push %p|1min", settings
    info = host.check_output(f"runuser -u postgres -- pgbackrest --stanza={app_name} info")
    assert "status: ok" in info, info


def test_every_backup_status_says_the_repository_shares_the_servers_disk(host, app_name):
    """Until the repository is off the server, the backup tool's status and the stack's status say
    so out loud: it undoes a DROP TABLE, not the loss of the server."""
    tool = host.run(f"/usr/local/sbin/{app_name}-backup status")
    assert "SAME DISK: the repository /var/lib/pgbackrest is on this server" in tool.stdout, tool.stdout
    status = host.run(f"/usr/local/sbin/{app_name}-status --window 30")
    assert "SAME DISK: the repository /var/lib/pgbackrest is on this server" in status.stdout, status.stdout


@pytest.mark.destructive
def test_the_archive_status_stands_on_the_repository_when_postgresqls_statistics_are_lost(host, app_name):
    """After a crash PostgreSQL's cumulative statistics are lost or old (pg_stat_archiver among
    them): the last archived WAL's time comes from the repository too, and what waits is
    PostgreSQL's own queue (.ready files), so the status neither goes blind nor cries wolf.
    Resetting the archiver's statistics stands in for the crash (it changes nothing else)."""
    host.check_output("runuser -u postgres -- psql -qAtc \"SELECT pg_stat_reset_shared('archiver')\"")
    state = json.loads(host.run(f"/usr/local/sbin/{app_name}-backup status --json").stdout)
    assert state["last_archived_wal"] is not None and not state["warnings"], state
