"""Releases under load: zero failed requests for a release, a rollback and every failed release.

Every test runs its action under ~20 clients browsing and adding todos through nginx
(tests/load.py) and checks the load saw no failure, that every acknowledged todo is in
the database, and which release and gunicorn masters serve afterwards.
"""

import json
import shlex
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests import helpers
from tests.helpers import query
from tests.load import Load
from tests.release.conftest import listed, release, release_tool

pytestmark = pytest.mark.destructive

PROBE = f"<!-- release probe {uuid.uuid4().hex} -->"


def current(host):
    """The current release id on the machine."""
    return host.file(f"/srv/{helpers.APP}/current").linked_to.rsplit("/", 1)[1]


def kept(host):
    """Release ids under /srv/<app>/releases, oldest first."""
    return sorted(host.check_output(f"ls /srv/{helpers.APP}/releases").split())


def masters(host, instances):
    """{instance: gunicorn master PID}."""
    return dict(zip(instances, host.check_output(f"supervisorctl pid {' '.join(instances)}").split(), strict=True))


VERSION = (
    "import http.client, socket, sys\n"
    "c = http.client.HTTPConnection('localhost'); c.sock = socket.socket(socket.AF_UNIX); c.sock.connect(sys.argv[1])\n"
    "c.request('GET', '/version'); print(c.getresponse().read().decode())"
)


def serving(host, instances):
    """{instance: release id its /version names}, asked on each instance's socket."""
    return {
        instance: json.loads(
            host.check_output(f"python3 -c {shlex.quote(VERSION)} /run/{helpers.APP}/{instance}.sock")
        )["release"]
        for instance in instances
    }


def assert_clean(load, host):
    """No failed request and every acknowledged todo stored (then the load's todos are deleted)."""
    try:
        assert load.failures == [], f"{len(load.failures)} failures, first: {load.failures[:5]}"
        assert load.acknowledged, "the load added no todo: it did not run"
        missing = set(load.acknowledged) - load.stored(host)
        assert not missing, f"{len(missing)} acknowledged todos are not in the database"
    finally:
        load.forget(host)


def add_probe(tree):
    base = Path(tree, "app/todo/templates/base.html")
    base.write_text(base.read_text().replace("</body>", f"{PROBE}\n</body>"))


def test_release_of_a_changed_app_under_load(clone, host, machine_address, instances, report):
    commit = clone.commit("app: release probe", add_probe)
    before, pids = current(host), masters(host, instances)
    with Load(machine_address) as load:
        result = release(clone, commit)
    report("release under load", f"{load.summary()}; {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_clean(load, host)
    after = current(host)
    assert after != before and after.endswith(commit[:7])
    assert serving(host, instances) == dict.fromkeys(instances, after)
    assert all(masters(host, instances)[i] != pids[i] for i in instances)
    assert PROBE in requests.get(f"https://{machine_address}/", timeout=10).text
    assert {before, after} <= set(load.releases), "pages of both releases were seen while it rolled"


def test_old_release_static_files_still_served(host, machine_address):
    older = [r for r in kept(host) if r < current(host)]
    response = requests.get(f"https://{machine_address}/static/{older[-1]}/style.css", timeout=10)
    assert response.status_code == 200


def test_rollback_under_load(clone, host, machine_address, instances, report):
    before, pids = current(host), masters(host, instances)
    previous = [r for r in kept(host) if r < before][-1]
    with Load(machine_address) as load:
        result = release(clone, "--rollback")
    report("rollback under load", load.summary())
    assert result.returncode == 0, result.stdout + result.stderr
    assert_clean(load, host)
    assert current(host) == previous
    assert serving(host, instances) == dict.fromkeys(instances, previous)
    assert all(masters(host, instances)[i] != pids[i] for i in instances)
    assert PROBE not in requests.get(f"https://{machine_address}/", timeout=10).text
    assert before in kept(host), "a rollback keeps the newer release"


def test_rollback_to_a_named_release(clone, host):
    newest = kept(host)[-1]
    result = release(clone, "--rollback", newest)
    assert result.returncode == 0, result.stdout + result.stderr
    assert current(host) == newest


def test_release_list_marks_the_current_release(clone, host):
    result = release(clone, "--list")
    assert result.returncode == 0, result.stderr
    marked = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("* ")]
    assert marked == [current(host)]
    assert all(r in result.stdout for r in kept(host))


def _broken_import(tree):
    path = Path(tree, "app/todo/__init__.py")
    path.write_text(path.read_text() + "\nimport todo_no_such_module  # noqa\n")


def _failing_migration(tree):
    Path(tree, "app/migrations/0002.release-probe.sql").write_text(
        "CREATE TABLE release_probe (id int);\nSELECT 1 / 0;\n"
    )


def _failing_health_check(tree):
    path = Path(tree, "app/todo/db.py")
    path.write_text(path.read_text().replace('return jsonify(status="ok")', 'return jsonify(status="broken"), 500'))


def _instance_will_not_start(tree):
    """The app fails as it is imported in an instance (supervisor's SUPERVISOR_PROCESS_NAME, <app>-N) but not
    in the release's check (<app>-check): the check passes, and the first instance's workers fail to boot,
    which stops its gunicorn master at once."""
    path = Path(tree, "app/todo/__init__.py")
    path.write_text(
        path.read_text() + "\n\nimport os  # noqa: E402\n\n"
        f"if os.environ.get('SUPERVISOR_PROCESS_NAME') != {helpers.APP + '-check'!r}:\n"
        "    raise RuntimeError('release probe')\n"
    )


@pytest.mark.parametrize(
    ("change", "step", "restarts"),
    [
        (_broken_import, "check", False),
        (_failing_migration, "release command", False),
        (_failing_health_check, "health check", True),
        (_instance_will_not_start, "start", True),
    ],
    ids=["broken-import", "failing-migration", "failing-health-check", "instance-will-not-start"],
)
def test_failed_release_keeps_the_old_one_serving(
    clone, host, machine_address, instances, report, change, step, restarts
):
    commit = clone.commit(f"app: {change.__name__}", change)
    before, releases, pids = current(host), kept(host), masters(host, instances)
    with Load(machine_address) as load:
        result = release(clone, commit)
    report(f"failed release ({step}) under load", load.summary())
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"failed at step '{step}'" in output
    assert "pre-receive hook declined" in output
    assert_clean(load, host)
    assert current(host) == before and kept(host) == releases, "the failed release is gone, the old one current"
    assert set(load.releases) == {before}, "no client got a page from the failed release"
    assert serving(host, instances) == dict.fromkeys(instances, before)
    after = masters(host, instances)
    assert all(after[i] == pids[i] for i in instances[1:]), "the release stopped at the first instance"
    assert (after[instances[0]] != pids[instances[0]]) == restarts
    if step == "release command":
        tables = query(host, "\\dt")
        assert "release_probe" not in tables, "the failed migration was rolled back"


def test_negative_control_restarting_all_instances_at_once_fails_requests(host, machine_address, instances, report):
    """The load harness sees downtime: supervisorctl restart of every instance loses requests."""
    with Load(machine_address, max_seconds=40) as load:
        time.sleep(1)
        host.check_output(f"supervisorctl restart {' '.join(instances)}")
        time.sleep(1)
    report("supervisorctl restart of all instances under load", load.summary())
    load.forget(host)
    assert load.failures, "the load saw no failure: it cannot see downtime"
    assert any(code in (502, 503) for code, _ in load.failures)


def test_git_push_releases_the_pushed_commit(clone, host, app_name):
    commit = clone.commit("app: pushed", add_probe)
    result = clone.push(commit)
    assert result.returncode == 0, result.stderr
    assert "remote: " in result.stderr and "done: release" in result.stderr
    assert current(host).endswith(commit[:7])
    assert host.check_output(f"git --git-dir=/srv/{app_name}/deploy.git rev-parse main") == commit


def test_git_push_of_a_broken_commit_is_rejected(clone, host, app_name):
    before = current(host)
    branch = host.check_output(f"git --git-dir=/srv/{app_name}/deploy.git rev-parse main")
    result = clone.push(clone.commit("app: broken import", _broken_import))
    assert result.returncode != 0
    assert "pre-receive hook declined" in result.stderr and "failed at step 'check'" in result.stderr
    assert current(host) == before
    assert host.check_output(f"git --git-dir=/srv/{app_name}/deploy.git rev-parse main") == branch


def test_git_push_to_another_branch_is_refused(clone):
    result = clone.push(clone.base, ref="refs/heads/feature")
    assert result.returncode != 0 and "only pushes to main are released" in result.stderr


def keep_releases(host, app_name):
    """How many releases the machine's release tool keeps (keep_releases in its settings)."""
    return int(json.loads(host.check_output(f"cat /etc/{app_name}/release.json"))["keep_releases"])


def _touch(n):
    """A change to the tree: a static file that says ``n``."""

    def change(tree):
        Path(tree, "app/todo/static/prune.txt").write_text(f"prune {n}\n")

    return change


def release_until_kept(clone, host, count):
    """Release changed commits until at least ``count`` releases are kept."""
    n = 0
    while len(kept(host)) < count:
        result = release(clone, clone.commit(f"app: prune {n}", _touch(n)))
        assert result.returncode == 0, result.stdout + result.stderr
        n += 1


def test_pruning_keeps_five_releases_and_the_current_one(clone, host, app_name):
    """The current release is kept even when it is not among the newest: with one release more
    than keep_releases kept (a prepared one, the newest), activating the oldest prunes one."""
    keep = keep_releases(host, app_name)
    release_until_kept(clone, host, keep)
    oldest = listed(host, app_name)[0][-1]
    commit = clone.commit("app: prepared, never served", _touch("prepared"))
    prepared = release_tool(app_name, "deploy", "--commit", commit, "--prepare", clone=clone, commit=commit)
    assert prepared.returncode == 0, prepared.stdout[-3000:] + prepared.stderr[-3000:]
    newest = next(r for r in kept(host) if r.endswith(commit[:7]))
    try:
        assert len(kept(host)) > keep, "one more release than it keeps: activating prunes one"
        activated = host.run(f"/usr/local/sbin/{app_name}-release activate {oldest}")
        assert activated.rc == 0, activated.stdout[-3000:] + activated.stderr[-3000:]
        releases = kept(host)
        assert len(releases) == keep
        assert current(host) == oldest and oldest in releases
        assert newest in releases
    finally:
        host.run(f"/usr/local/sbin/{app_name}-release discard {newest}")


def test_pruning_keeps_the_release_a_rollback_goes_to(clone, host, app_name):
    """Rolled back to the oldest kept release, then a new release: the oldest is not among the
    newest keep_releases, but it served before the new one, so it is kept and a rollback goes there."""
    keep = keep_releases(host, app_name)
    release_until_kept(clone, host, keep)
    oldest = listed(host, app_name)[0][-1]
    if current(host) != oldest:
        rolled = release(clone, "--rollback", oldest)
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    result = release(clone, clone.commit("app: after a rollback", _touch("after a rollback")))
    assert result.returncode == 0, result.stdout + result.stderr
    releases, target = listed(host, app_name)
    assert len(releases) == keep, releases
    assert oldest in releases, "the release a rollback goes to was pruned"
    assert target == oldest
