"""Membership of the deploy group is not root: what a deployer pushes or passes never runs as root,
and what a build runs cannot outlive the build or change the release it built.

A throwaway user in <app>-deploy (and nothing else) tries the escalations the sudo rule used to
allow; a pushed package whose build runs code records who ran it; another leaves a process behind.
"""

import hashlib
import io
import shlex
import tarfile
import uuid
from pathlib import Path

import pytest

from tests.release.conftest import release

pytestmark = pytest.mark.destructive

#: A deployer with the deploy group's rights only (created and removed by the fixture).
DEPLOYER = "deploy-probe"


@pytest.fixture(scope="module")
def deployer(host, app_name):
    """Run a shell command on the machine as a member of <app>-deploy with no other sudo rule."""
    host.check_output(f"useradd --system --no-create-home --groups {app_name}-deploy --shell /bin/sh {DEPLOYER}")
    yield lambda command: host.run(f"runuser -u {DEPLOYER} -- sh -c {shlex.quote(command)}")
    host.run(f"userdel {DEPLOYER}")


#: What sudo's rule lets through (its wildcards: deploy --commit *, rollback *, migrate *, activate *,
#: discard *): the tool itself must refuse each, before it changes anything.
THROUGH_SUDO = [
    "{tool} discard ../../../etc",
    "{tool} discard {current}",  # the serving release
    "{tool} rollback ../../../tmp",
    "{tool} activate /etc",
    "{tool} migrate ../../../tmp/x",
    "{tool} deploy --commit {sha} --ref x --release ../../../tmp/x",
    "{tool} deploy --commit {sha} --ref 'x\"; id; \"' --release 20000101-000000-0000000",
    "{tool} deploy --commit '$(id)' --ref x",
]
#: What sudo's rule refuses.
REFUSED_BY_SUDO = [
    "{tool} list --verbose",
    "{tool} restart",  # not a deployer's command
    "{tool} rotate secret-key",
    "/bin/sh -c id",
    "-u {app} id",
]


@pytest.mark.parametrize(
    ("attempt", "by_sudo"),
    [*((a, False) for a in THROUGH_SUDO), *((a, True) for a in REFUSED_BY_SUDO)],
    ids=[*THROUGH_SUDO, *REFUSED_BY_SUDO],
)
def test_deploy_group_cannot_pass_its_way_to_root(host, app_name, deployer, attempt, by_sudo):
    """Each attempt is refused, by sudo or (what sudo lets through) by the tool itself, and runs and
    changes nothing."""
    releases = host.check_output(f"ls /srv/{app_name}/releases")
    current = host.file(f"/srv/{app_name}/current").linked_to.rsplit("/", 1)[1]
    command = attempt.format(app=app_name, tool=f"/usr/local/sbin/{app_name}-release", sha="0" * 40, current=current)
    result = deployer(f"sudo -n {command} </dev/null")
    said = result.stdout + result.stderr
    assert result.rc != 0, said
    # sudo -n's refusal names the password it may not ask for; the tool's names its own step.
    assert ("a password is required" in said) is by_sudo, said
    assert "uid=0" not in said
    assert host.check_output(f"ls /srv/{app_name}/releases") == releases
    assert host.file(f"/srv/{app_name}/current").linked_to.rsplit("/", 1)[1] == current


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


#: pyproject.toml of the probe sdists: its build backend is its own backend.py.
PYPROJECT = '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'

#: A process a build leaves behind: in a session of its own, ignoring SIGTERM, with none of the
#: build's files open; it adds its PID to the file its argument names, then sleeps for an hour.
SLEEPER = """\
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(sys.argv[1], "a") as marker:
    marker.write(f"{os.getpid()}\\n")
time.sleep(3600)
"""

#: A PEP 517 backend that starts SLEEPER (and waits until it has written its PID to MARKER), then
#: builds a wheel of one empty module: the build goes on and the release is made.
LEAVING_BACKEND = """\
import base64, hashlib, os, subprocess, sys, time, zipfile

MARKER = {marker!r}


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    subprocess.Popen([sys.executable, os.path.abspath("sleeper.py"), MARKER], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if os.path.exists(MARKER):
            break
        time.sleep(0.1)
    files = {{
        "probe.py": b"",
        "probe-0.0.1.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: probe\\nVersion: 0.0.1\\n",
        "probe-0.0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\\nGenerator: probe\\nRoot-Is-Purelib: true\\n"
        b"Tag: py3-none-any\\n",
    }}
    digest = lambda data: base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record = "".join(f"{{name}},sha256={{digest(data)}},{{len(data)}}\\n" for name, data in files.items())
    files["probe-0.0.1.dist-info/RECORD"] = (record + "probe-0.0.1.dist-info/RECORD,,\\n").encode()
    name = "probe-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
    return name
"""


def _sdist_that_records_its_builder(marker):
    """A source distribution whose build backend writes its uid to ``marker`` and stops the build."""
    return _sdist({
        "probe-0.0.1/pyproject.toml": PYPROJECT,
        "probe-0.0.1/backend.py": f"import os\nopen({marker!r}, 'w').write(str(os.getuid()))\n"
        "raise SystemExit('escalation probe: the build stops here')\n",
    })  # fmt: skip


def _sdist_that_leaves_a_process(marker):
    """A source distribution whose build leaves a process behind (SLEEPER, which adds its PID to
    ``marker``) and then succeeds."""
    return _sdist({
        "probe-0.0.1/pyproject.toml": PYPROJECT,
        "probe-0.0.1/backend.py": LEAVING_BACKEND.format(marker=marker),
        "probe-0.0.1/sleeper.py": SLEEPER,
    })  # fmt: skip


def _sdist(files):
    """A gzipped tar of ``files`` ({path: text}), as bytes."""
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
    serving = host.file(f"/srv/{app_name}/current").linked_to
    try:
        pushed = clone.push(clone.commit("escalation probe", _requiring(_sdist_that_records_its_builder(marker))))
        assert pushed.returncode != 0 and "failed at step 'build'" in pushed.stderr, pushed.stderr[-2000:]
        probe = host.file(marker)
        assert probe.exists, "the probe did not run: the test proves nothing"
        build_uid = host.user(f"{app_name}-build").uid
        assert (probe.user, probe.content_string) == (f"{app_name}-build", str(build_uid))
        assert host.file(f"/srv/{app_name}/current").linked_to == serving
    finally:
        host.run(f"rm -f {marker}")


def _requiring(sdist):
    """A change to the tree: ``sdist`` (bytes) beside the app, required by hash in requirements.txt."""
    digest = hashlib.sha256(sdist).hexdigest()

    def change(tree):
        Path(tree, "app/probe-0.0.1.tar.gz").write_bytes(sdist)
        requirements = Path(tree, "app/requirements.txt")
        requirements.write_text(requirements.read_text() + f"./probe-0.0.1.tar.gz --hash=sha256:{digest}\n")

    return change


@pytest.fixture(scope="module")
def left_behind(clone, host, app_name):
    """(the release a build that left a process behind made, the PIDs that process wrote); the
    release serving before is serving again afterwards, the new one is removed, and a process
    left behind (by a tool that let it live) is killed."""
    marker = f"/tmp/build-leftover-probe-{uuid.uuid4().hex[:8]}"
    before = host.file(f"/srv/{app_name}/current").linked_to.rsplit("/", 1)[1]
    commit = clone.commit("build leftover probe", _requiring(_sdist_that_leaves_a_process(marker)))
    new, pids = None, []
    try:
        result = release(clone, commit)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        new = host.file(f"/srv/{app_name}/current").linked_to.rsplit("/", 1)[1]
        assert new.endswith(commit[:7]), new
        probe = host.file(marker)
        assert probe.exists, "the build left no process behind: the test proves nothing"
        pids = probe.content_string.split()
        yield new, pids
    finally:
        for pid in pids:  # only the probe's own processes, by the marker in their command line
            host.run(f"grep -qF {marker} /proc/{pid}/cmdline && kill -KILL {pid}")
        host.run(f"rm -f {marker}")
        if new:
            rolled = release(clone, "--rollback", before)
            assert rolled.returncode == 0, rolled.stdout[-3000:] + rolled.stderr[-3000:]
            host.check_output(f"/usr/local/sbin/{app_name}-release discard {new}")


def test_a_process_a_build_leaves_behind_does_not_outlive_the_build(host, app_name, left_behind):
    """A build-time process that forks away into its own session and ignores SIGTERM is gone once
    the release is done, and no process of the build user is left."""
    _, pids = left_behind
    alive = [pid for pid in pids if host.run(f"test -e /proc/{pid}").rc == 0]
    assert not alive, f"left behind by the build, still running: {alive}"
    assert host.run(f"pgrep -u {app_name}-build").rc == 1, "a process of the build user is left"


def test_a_built_release_is_read_only_to_the_build_user(host, app_name, left_behind):
    """Once built, the release is root:<app> and writable by root alone: the build user (and the
    app user) can neither write a file of it nor chmod it back."""
    path = f"/srv/{app_name}/releases/{left_behind[0]}"
    assert host.check_output(f"find {path} ! -user root -print | head -5") == ""
    assert host.check_output(f"find {path} ! -group {app_name} -print | head -5") == ""
    assert host.check_output(f"find {path} ! -type l -perm /022 -print | head -5") == ""
    assert host.check_output(f"runuser -u {app_name}-build -- find {path} -writable -print | head -5") == ""
