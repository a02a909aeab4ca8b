"""Releases across the app hosts (scripts/release --target deploy/inventories/cluster.py): built on
both, migrated once, switched one host at a time under load with no failed request, and rolled back
the same way; a release that fails on the second host puts the first one back."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.cluster.conftest import APP_HOSTS, INVENTORY, LB, app_request
from tests.conftest import REPO
from tests.helpers import query
from tests.load import Load
from tests.release.conftest import GIT_ENV, Clone

pytestmark = pytest.mark.destructive

MIGRATION = "app/migrations/0003.cluster-release-probe.sql"


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A clone of this repo to commit test releases in."""
    return Clone(tmp_path_factory.mktemp("cluster-release") / "repo", push_url=None)


def release(clone, *args):
    """scripts/release on the cluster from the clone; (exit status, output)."""
    done = subprocess.run([str(REPO / "scripts/release"), "-C", str(clone.path), "--target", INVENTORY, *args],
                          env=GIT_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                          timeout=900, check=False)  # fmt: skip
    return done.returncode, done.stdout


def versions(lb):
    """{app host: the release its instances name on /version} (asked from the load balancer)."""
    return {name: json.loads(app_request(lb, name, path="/version")[2])["release"] for name in APP_HOSTS}


def history_of(host):
    """The release history's entries (/var/log/todo/releases.log), oldest first."""
    return [json.loads(line) for line in host.check_output("cat /var/log/todo/releases.log").splitlines()]


def history(host, release):
    """The release history's entries for ``release``."""
    return [e for e in history_of(host) if e["release"] == release]


def with_migration(tree):
    """A release with a new, harmless migration (a comment on the todo table)."""
    Path(tree, MIGRATION).write_text(
        "-- A release test's probe (tests/cluster): applied once per release, not once per app host.\n"
        "-- depends: 0002.todo-page-index\n"
        "COMMENT ON TABLE todo IS 'cluster release probe';\n"
    )


def test_a_release_and_its_rollback_roll_host_by_host_under_load_and_migrate_once(lb, apps, db_host, clone, report):
    before = versions(lb)
    assert len(set(before.values())) == 1, before
    commit = clone.commit("cluster release probe", with_migration)
    with Load(LB, clients=8, max_seconds=300) as load:
        code, out = release(clone, commit)
    load.forget(db_host)
    report("release under load", load.summary())
    assert code == 0, out[-4000:]
    assert not load.failures, load.failures[:5]
    new = versions(lb)
    assert len(set(new.values())) == 1 and next(iter(new.values())).endswith(commit[:7]), new
    target = next(iter(new.values()))
    migrated = {name: [e["action"] for e in history(host, target)] for name, host in apps.items()}
    assert migrated == {"app1": ["prepare", "migrate", "activate"], "app2": ["prepare", "activate"]}, migrated
    sql = "SELECT count(*) FROM _yoyo_log WHERE migration_id = '0003.cluster-release-probe' AND operation = 'apply'"
    applied = query(db_host, sql)
    assert applied == "1"
    # Both releases were served while it rolled (host by host: pages name their release's static
    # path), and only those two.
    assert set(load.releases) == {*before.values(), target}, load.releases

    with Load(LB, clients=8, max_seconds=300) as load:
        code, out = release(clone, "--rollback")
    load.forget(db_host)
    report("rollback under load", load.summary())
    assert code == 0, out[-4000:]
    assert not load.failures, load.failures[:5]
    assert versions(lb) == before


def test_a_release_that_fails_on_the_second_app_host_puts_the_first_back(lb, apps, clone):
    """app2's instances fail to start there alone (a marker file the release reads as it starts; its
    check, which imports it as todo-check, passes), after app1 had switched."""
    before = versions(lb)

    def broken_on_app2(tree):
        init = Path(tree, "app/todo/__init__.py")
        init.write_text(
            init.read_text() + "\n\nimport os  # noqa: E402\n\n"
            "if os.path.exists('/etc/todo/fail-release-here') and "
            "os.environ.get('SUPERVISOR_PROCESS_NAME') != 'todo-check':\n"
            "    raise RuntimeError('this host refuses the release')\n"
        )

    commit = clone.commit("fails on app2", broken_on_app2)
    apps["app2"].check_output("touch /etc/todo/fail-release-here")
    try:
        code, out = release(clone, commit)
    finally:
        apps["app2"].check_output("rm -f /etc/todo/fail-release-here")
    assert code == 1, out[-4000:]
    assert versions(lb) == before
    failed = next(r for r in (e["release"] for e in history_of(apps["app1"])) if r and r.endswith(commit[:7]))
    # app1 had switched to it, and was put back; app2 failed to activate it and put itself back.
    assert [e["action"] for e in history(apps["app1"], failed)] == ["prepare", "migrate", "activate", "discard"]
    assert [e["action"] for e in history(apps["app1"], before["app1"])][-1] == "rollback"
    assert [(e["action"], e["outcome"]) for e in history(apps["app2"], failed)][-2:] == [
        ("activate", "failed"),
        ("discard", "ok"),
    ]
    for name, host in apps.items():
        kept = host.check_output("ls /srv/todo/releases").split()
        assert failed not in kept, f"{name} kept the failed release: {kept}"
    assert f"app1 serves {before['app1']}" in out and f"app2 serves {before['app2']}" in out
