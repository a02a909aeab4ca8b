"""scripts/status and the status tool (deploy/server/status.py) against the local machine: on the
healthy machine every instance is RUNNING and open to nginx and nothing needs attention, in text
and as JSON (requests of the last 30 s: the 5xx a destructive or chaos test caused minutes
before are the past, not this host's state); the textfile for node_exporter is valid exposition
format; an instance stopped by hand needs attention (destructive: it is started again and waited
for until open to nginx)."""

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers import assert_exposition, wait_until


def status(*args):
    """scripts/status ARGS against the local machine; (exit status, stdout, stderr)."""
    run = subprocess.run([str(REPO / "scripts/status"), *args], stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, cwd=REPO, timeout=180)  # fmt: skip
    return run.returncode, run.stdout, run.stderr


def serving(host, app_name):
    """The release /srv/<app>/current points to."""
    return Path(host.file(f"/srv/{app_name}/current").linked_to).name


def test_status_shows_every_instance_running_and_open_and_nothing_needing_attention(host, app_name, instances):
    code, out, err = status("--window=30")
    assert code == 0, out + err
    for name in instances:
        line = next((line for line in out.splitlines() if line.split()[:1] == [name]), "")
        assert "RUNNING" in line and "open to nginx" in line, out
    assert serving(host, app_name) in out, out
    assert "ATTENTION" not in out, out


def test_status_json_lists_the_instances_and_no_attention(host, app_name, instances):
    code, out, err = status("--json", "--window=30")
    assert code == 0, out + err
    state = json.loads(out)
    assert [i["name"] for i in state["instances"]] == instances, state
    assert all(i["state"] == "RUNNING" and i["open"] for i in state["instances"]), state
    assert state["release"]["name"] == serving(host, app_name), state
    assert state["attention"] == [], state


def test_the_textfile_is_valid_exposition_format(host, app_name, instances):
    path = f"/tmp/{app_name}-status-test-{uuid.uuid4().hex[:8]}.prom"
    try:
        run = host.run(f"/usr/local/sbin/{app_name}-status --window 30 --textfile {path}")
        assert run.rc == 0, run.stdout + run.stderr
        assert host.file(path).mode == 0o644
        lines = host.file(path).content_string.splitlines()
    finally:
        host.run(f"rm -f {path}")
    for name in instances:
        assert f'todo_instance_up{{name="{name}"}} 1' in lines, lines
        assert f'todo_instance_open{{name="{name}"}} 1' in lines, lines
    assert "todo_status_attention 0" in lines, lines
    assert_exposition(lines)


@pytest.mark.destructive
def test_a_stopped_instance_needs_attention(host, app_name, instances):
    victim = instances[1] if len(instances) > 1 else instances[0]
    try:
        assert host.run(f"supervisorctl stop {victim}").rc == 0
        code, out, err = status()
        assert code == 1, out + err
        assert any(line.startswith("ATTENTION: ") and victim in line for line in out.splitlines()), out
        code, out, _ = status("--json")
        assert code == 1 and any(victim in reason for reason in json.loads(out)["attention"]), out
    finally:
        host.run(f"supervisorctl start {victim}")
        sock = f"/run/{app_name}/{victim}.sock"
        wait_until(lambda: host.file(sock).exists and host.file(sock).mode == 0o660, timeout=60)
