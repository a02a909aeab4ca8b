"""Membership of the deploy group is not root: what a deployer pushes or passes never runs as root.

A throwaway user in <app>-deploy (and nothing else) tries the escalations the sudo rule used to
allow; a pushed package whose build runs code records who ran it.
"""

import hashlib
import io
import tarfile
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.destructive

#: A deployer with the deploy group's rights only (created and removed by the fixture).
DEPLOYER = "deploy-probe"


@pytest.fixture(scope="module")
def deployer(host, app_name):
    """Run a shell command on the machine as a member of <app>-deploy with no other sudo rule."""
    host.check_output(f"useradd --system --no-create-home --groups {app_name}-deploy --shell /bin/sh {DEPLOYER}")
    yield lambda command: host.run(f"runuser -u {DEPLOYER} -- sh -c {command!r}")
    host.run(f"userdel {DEPLOYER}")


@pytest.mark.parametrize(
    "attempt",
    [
        "sudo -n /usr/local/sbin/{app}-release --config /tmp/evil.json list",  # settings naming app "root"
        "sudo -n /usr/local/sbin/{app}-release restart",  # not a deployer's command
        "sudo -n /usr/local/sbin/{app}-release deploy --commit {sha} --ref x --config /tmp/evil.json",
        "sudo -n /usr/local/sbin/{app}-release deploy --commit {sha} --ref x --archive /etc/shadow",
        "sudo -n /bin/sh -c id",
        "sudo -n -u {app} id",
    ],
)
def test_deploy_group_cannot_pass_its_way_to_root(host, app_name, deployer, attempt):
    """Each attempt is refused (by sudo, or by the tool before it reads anything), and runs nothing."""
    host.check_output('echo \'{"app_name": "root"}\' > /tmp/evil.json')
    try:
        releases = host.check_output(f"ls /srv/{app_name}/releases")
        result = deployer(attempt.format(app=app_name, sha="0" * 40) + " </dev/null")
        assert result.rc != 0, result.stdout
        assert "uid=0" not in result.stdout
        assert host.check_output(f"ls /srv/{app_name}/releases") == releases
    finally:
        host.run("rm -f /tmp/evil.json")


@pytest.mark.parametrize(
    "attempt",
    [
        "echo '[core] hooksPath = /tmp' >> /srv/{app}/deploy.git/config",  # hooks run as the next pusher
        "printf '#!/bin/sh\\nid > /tmp/probe\\n' > /srv/{app}/deploy.git/hooks/reference-transaction",
        "mv /srv/{app}/deploy.git/hooks /srv/{app}/deploy.git/hooks-old",
        "ln -s /etc/apt/apt.conf.d /srv/{app}/deploy.git/hooks2",
    ],
)
def test_deploy_group_cannot_plant_what_the_next_pusher_runs(host, app_name, deployer, attempt):
    """An operator with sudo pushes too: the repository's config and hooks must not be the group's."""
    config = host.file(f"/srv/{app_name}/deploy.git/config").content_string
    result = deployer(attempt.format(app=app_name))
    assert result.rc != 0, result.stdout
    assert host.file(f"/srv/{app_name}/deploy.git/config").content_string == config
    assert host.check_output(f"ls /srv/{app_name}/deploy.git/hooks") == "pre-receive"


def test_deploy_group_may_list_releases(app_name, deployer):
    """The rule still lets a deployer do its job (deploy is the push hook's; rollback is tested with releases)."""
    listed = deployer(f"sudo -n /usr/local/sbin/{app_name}-release list")
    assert listed.rc == 0 and "RELEASE" in listed.stdout, listed.stderr


def _sdist_that_records_its_builder(marker):
    """A source distribution whose build backend writes its uid to ``marker`` and stops the build."""
    files = {
        "probe-0.0.1/pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\n'
        'backend-path = ["."]\n',
        "probe-0.0.1/backend.py": f"import os\nopen({marker!r}, 'w').write(str(os.getuid()))\n"
        "raise SystemExit('escalation probe: the build stops here')\n",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_pushed_code_that_runs_at_build_time_does_not_run_as_root(clone, host, app_name):
    """A pushed requirement built from source (its backend runs while pip builds it) runs as the
    build user, the push is rejected, and the serving release is untouched."""
    marker = f"/tmp/escalation-probe-{uuid.uuid4().hex[:8]}"
    sdist = _sdist_that_records_its_builder(marker)
    digest = hashlib.sha256(sdist).hexdigest()

    def change(tree):
        Path(tree, "app/probe-0.0.1.tar.gz").write_bytes(sdist)
        requirements = Path(tree, "app/requirements.txt")
        requirements.write_text(requirements.read_text() + f"./probe-0.0.1.tar.gz --hash=sha256:{digest}\n")

    serving = host.file(f"/srv/{app_name}/current").linked_to
    try:
        pushed = clone.push(clone.commit("escalation probe", change))
        assert pushed.returncode != 0 and "failed at step 'build'" in pushed.stderr, pushed.stderr[-2000:]
        probe = host.file(marker)
        assert probe.exists, "the probe did not run: the test proves nothing"
        build_uid = host.user(f"{app_name}-build").uid
        assert (probe.user, probe.content_string) == (f"{app_name}-build", str(build_uid))
        assert host.file(f"/srv/{app_name}/current").linked_to == serving
    finally:
        host.run(f"rm -f {marker}")
