"""A host's first release fails: nothing keeps running against it (supervisor would restart it)."""

import time

import pytest

from tests.helpers import wait_until
from tests.release.test_release import _failing_health_check

pytestmark = pytest.mark.destructive


def test_a_failed_first_release_leaves_no_program_running(clone, host, app_name, instances):
    """With no release serving (``current`` moved aside, instances stopped), a push whose health
    check fails is rejected, and the tool stops and removes the programs it had started."""
    srv, names = f"/srv/{app_name}", " ".join(instances)
    commit = clone.commit("app: failing health check", _failing_health_check)
    host.check_output(f"supervisorctl stop {names} && mv {srv}/current {srv}/current.probe-saved")
    try:
        pushed = clone.push(commit)
        output = pushed.stdout + pushed.stderr
        assert pushed.returncode != 0 and "failed at step 'health check'" in output, output[-2000:]
        assert f"no release serves: stopped and removed {', '.join(instances)}" in output
        assert not host.file(f"{srv}/current").exists
        time.sleep(5)  # longer than startsecs (3 s): a program left behind would be running again by now
        status = host.run("supervisorctl status").stdout
        assert not [name for name in instances if name in status], status
        assert host.run("pgrep -f '[b]in/gunicorn'").rc == 1, "a gunicorn process is left"
    finally:
        host.run(f"rm -f {srv}/current && mv {srv}/current.probe-saved {srv}/current")
        host.run(f"supervisorctl update; supervisorctl restart {names}")  # also one a broken tool left behind
        for name in instances:
            wait_until(lambda: host.file(f"/run/{app_name}/{name}.sock").mode == 0o660, timeout=60)  # noqa: B023
