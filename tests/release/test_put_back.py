"""A failed release whose put-back fails too: the new release stays on disk while an instance runs
it, and the release tool names what each instance runs (not "the previous release is serving")."""

from pathlib import Path

import pytest

from tests.release.conftest import release
from tests.release.test_release import current, kept, serving

pytestmark = pytest.mark.destructive


def _fails_to_start_on(instance):
    """A change whose instance ``instance`` fails as it starts (its check, as <app>-check, passes)."""

    def change(tree):
        # The app fails as it is imported in that instance alone (supervisor's SUPERVISOR_PROCESS_NAME):
        # its workers fail to boot, which stops its gunicorn master at once.
        path = Path(tree, "app/todo/__init__.py")
        path.write_text(
            path.read_text() + "\n\nimport os  # noqa: E402\n\n"
            f"if os.environ.get('SUPERVISOR_PROCESS_NAME') == {instance!r}:\n"
            "    raise RuntimeError('put-back probe')\n"
        )

    return change


def test_a_failed_put_back_keeps_the_release_its_instances_run_and_names_each(clone, host, app_name, instances):
    """The last instance fails on the new release, and the previous release cannot start there
    either (its gunicorn made unexecutable meanwhile): the instances before it stay on the new
    release, which is kept, and the output says which instance runs what."""
    if len(instances) < 2:
        pytest.skip("needs two instances: one that runs the new release, one that fails on it")
    before, last = current(host), instances[-1]
    commit = clone.commit(f"app: fails to start on {last}", _fails_to_start_on(last))
    gunicorn = host.file(f"/srv/{app_name}/releases/{before}/venv/bin/gunicorn")
    mode = gunicorn.mode
    host.check_output(f"chmod a-x {gunicorn.path}")
    new = None
    try:
        result = release(clone, commit)
        output = result.stdout + result.stderr
        assert result.returncode == 1, output[-3000:]
        new = next((r for r in kept(host) if r.endswith(commit[:7])), None)
        assert new, f"the new release was removed while instances run it:\n{output[-3000:]}"
        assert serving(host, instances[:-1]) == dict.fromkeys(instances[:-1], new)
        for instance in instances[:-1]:
            assert f"{instance} runs {new}" in output, output[-3000:]
        assert f"{last} is down" in output, output[-3000:]
    finally:
        host.check_output(f"chmod {mode:o} {gunicorn.path}")
        # What a deployer may run (not restart): a rollback to the current release rolls the
        # instances that run another back onto it.
        host.check_output(f"/usr/local/sbin/{app_name}-release rollback {before}")
        if new:
            host.check_output(f"/usr/local/sbin/{app_name}-release discard {new}")
    assert current(host) == before
    assert serving(host, instances) == dict.fromkeys(instances, before)
