"""Release tests: ship, roll back and break releases on the local machine under a bounded load.

Changes are commits in a throwaway clone of this repo; scripts/release ships them
(``-C CLONE``) or they are pushed straight to the machine's push repository. The
module ends by releasing this repo's HEAD again, so the machine serves it afterwards.
"""

import os
import re
import shlex
import subprocess

import pytest

from tests.conftest import REPO

SSH_CONFIG = f"{os.environ.get('TODO_MACHINE_DIR', '/var/lib/todo-machine')}/ssh-config"
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "release test",
    "GIT_AUTHOR_EMAIL": "release-test@localhost",
    "GIT_COMMITTER_NAME": "release test",
    "GIT_COMMITTER_EMAIL": "release-test@localhost",
    # A new login for each push (no shared ControlMaster session from before the user joined the deploy group).
    "GIT_SSH_COMMAND": f"ssh -F {SSH_CONFIG} -o ControlPath=none",
}


def push_url(app):
    """The machine's push repository of app ``app`` (/srv/<app>/deploy.git)."""
    return f"ssh://default/srv/{app}/deploy.git"


class Clone:
    """A throwaway clone of this repo to make commits in."""

    def __init__(self, path, push_url):
        self.path, self.push_url = path, push_url
        self.git("clone", "--quiet", str(REPO), str(path), cwd=REPO)
        self.base = self.git("rev-parse", "HEAD").strip()

    def git(self, *args, cwd=None, check=True):
        out = subprocess.run(
            ["git", *args], cwd=cwd or self.path, env=GIT_ENV, capture_output=True, text=True, check=False
        )
        if check and out.returncode:
            raise AssertionError(f"git {' '.join(args)}: {out.stderr}")
        return out.stdout

    def commit(self, message, change):
        """Commit on top of the base commit: ``change(path)`` edits the tree; return the commit id."""
        self.git("checkout", "--quiet", "--detach", self.base)
        change(self.path)
        self.git("add", "-A")
        self.git("commit", "--quiet", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def push(self, commit, ref="refs/heads/main"):
        """git push --force COMMIT to REF (the deploy branch) on the machine; return the result.

        --force: the test commits sit on this repo's HEAD, not on what the machine serves.
        """
        return subprocess.run(
            ["git", "push", "--force", self.push_url, f"{commit}:{ref}"],
            cwd=self.path,
            env=GIT_ENV,
            capture_output=True,
            text=True,
            check=False,
        )


@pytest.fixture(scope="module")
def clone(tmp_path_factory, app_name):
    """A clone to commit changes in; afterwards this repo's HEAD is released again."""
    yield Clone(tmp_path_factory.mktemp("release") / "repo", push_url(app_name))
    subprocess.run([str(REPO / "scripts/release"), "HEAD"], cwd=REPO, check=True, capture_output=True)


def release(clone, *args):
    """Run scripts/release (args, e.g. a ref, --rollback) on the clone; return the CompletedProcess."""
    return subprocess.run(
        [str(REPO / "scripts/release"), "-C", str(clone.path), *args],
        env=GIT_ENV,
        capture_output=True,
        text=True,
        check=False,
    )


def release_tool(app, *args, clone=None, commit=None):
    """Run the machine's release tool (/usr/local/sbin/<app>-release ARGS) through ``sudo -n`` over a
    new SSH login, as a cluster release does; with ``commit``, the archive of ``clone``'s app/ at
    that commit on its standard input. Return the CompletedProcess (text)."""
    archive = None
    if commit:
        archive = subprocess.run(["git", "archive", "--format=tar", commit, "app"], cwd=clone.path,
                                 capture_output=True, check=True).stdout  # fmt: skip
    ssh = ["ssh", "-F", SSH_CONFIG, "-o", "ControlPath=none", "default"]
    # ssh joins its arguments into one command line for the remote shell: quote each one.
    tool = ["sudo", "-n", f"/usr/local/sbin/{app}-release", *map(shlex.quote, args)]
    done = subprocess.run([*ssh, *tool], input=archive, capture_output=True, check=False)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def listed(host, app):
    """What the release tool's ``list`` says: (the kept release ids, newest first as it orders them,
    the release a rollback goes to or None)."""
    out = host.check_output(f"/usr/local/sbin/{app}-release list")
    ids = [line[2:].split()[0] for line in out.splitlines() if re.match(r"^[* ] \d{8}-\d{6}-", line)]
    target = re.search(r"^A rollback goes to: (\d{8}-\d{6}-\w+)", out, re.M)
    return ids, target.group(1) if target else None
