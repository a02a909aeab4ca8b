"""The release tool, its settings, the push repository and who may push (the first release
itself is scripts/provision's last step: scripts/release --if-none)."""

from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File, FileContents, FindDirectories, FindFiles
from pyinfra.operations import files, git, server

from deploy.operations import config_files, server_tool
from deploy.settings import RELEASE_SETTINGS

#: What the push repository's HEAD names: a branch nobody pushes (see below).
UNBORN_HEAD = "refs/heads/no-branch-checked-out"


@deploy("Releases")
def releases(s):
    """Ensure the release tool, its settings, the deploy group's sudo rule and the push repository."""
    server_tool(s, "release", {key: s[key] for key in RELEASE_SETTINGS})
    # Beside server_common.py, which they import (deploy.py's server_common step put it there).
    for src, dest, mode in (("launch.py", "launch", "755"), ("gunicorn.conf.py", "gunicorn.conf.py", "644"),
                            ("healthcheck.py", "healthcheck.py", "644"),
                            ("gunicorn-requirements.txt", "gunicorn-requirements.txt", "644")):  # fmt: skip
        files.put(
            name=f"Ensure {s['lib']}/{dest} (the stack's part of every process of the app).",
            src=f"deploy/server/{src}",
            dest=f"{s['lib']}/{dest}",
            user="root",
            group="root",
            mode=mode,
        )
    files.put(
        name=f"Ensure {s['etc']}/environment: the app's environment from the inventory (app_environment).",
        src=StringIO("".join(f"{key}={value}\n" for key, value in sorted(s["environment"].items()))),
        dest=f"{s['etc']}/environment",
        user="root",
        group="root",
        mode="644",
    )
    # The operator's configuration (scripts/config): made empty once, never rewritten here.
    server.shell(
        name=f"Ensure {s['etc']}/config.env exists (root:{s['app_name']} 0640; scripts/config).",
        commands=[f"install -m 0640 -o root -g {s['app_name']} /dev/null {s['etc']}/config.env"],
        _if=lambda: host.get_fact(File, path=f"{s['etc']}/config.env") is None,
    )
    files.file(name=f"Ensure {s['etc']}/config.env is root:{s['app_name']} 0640.", path=f"{s['etc']}/config.env",
               user="root", group=s["app_name"], mode="640")  # fmt: skip
    group = s["deploy_group"]
    server.group(name=f"Ensure the {group} group (may push releases) exists.", group=group, system=True)
    login_user = s["login_user"]
    if login_user != "root":
        server.user(
            name=f"Ensure the login user {login_user} may push releases ({group}).",
            user=login_user,
            groups=[group],
            append=True,
            ensure_home=False,
        )
    config_files(
        name=f"Ensure {group} may ship, roll back and list releases as root, and nothing else (sudoers).",
        files=[("hardening/sudoers.d/deploy-group.j2", f"/etc/sudoers.d/{group}", "440", s)],
        check="visudo -cqf {}",
    )
    # A release built before releases were sealed (or a build killed before its seal) is still the
    # build user's: sealed now, so no kept release is code the build user can change.
    server.shell(
        name=f"Seal every kept release {s['build_user']} still owns (root:{s['app_name']}, writable by root alone).",
        commands=[f"{s['release_tool']} seal"],
        _if=lambda: bool(
            host.get_fact(FindDirectories, path=f"{s['srv']}/releases", maxdepth=1, args=["-user", s["build_user"]])
        ),  # fmt: skip
    )
    git_dir = s["git_dir"]
    server.shell(
        name=f"Ensure the push repository {git_dir} exists (bare, shared with {group}).",
        commands=[
            f"git init --quiet --bare --shared=group --initial-branch={s['deploy_branch']} {git_dir} "
            # Releases may go back to an older commit; deleting the branch is refused (the hook says why).
            f"&& git -C {git_dir} config receive.denyNonFastForwards false "
            f"&& git -C {git_dir} config receive.denyDeletes true "
            # Only what a push writes is the group's: objects and refs.
            f"&& chgrp -R {group} {git_dir}/objects {git_dir}/refs && chmod -R g+rwX {git_dir}/objects {git_dir}/refs "
            f"&& find {git_dir}/objects {git_dir}/refs -type d -exec chmod g+s {{}} +"
        ],
        _if=lambda: host.get_fact(File, path=f"{git_dir}/HEAD") is None,
    )
    # git locks HEAD (HEAD.lock beside it, in the root-owned repository) when a push updates the
    # branch HEAD names: so HEAD names no branch a push updates, and pushes touch refs/ only.
    # Before the owners and modes below: git rewrites HEAD with the repository's shared mode (0664).
    server.shell(
        name=f"Ensure {git_dir}/HEAD names no deployed branch (a push then needs no lock beside it).",
        commands=[f"git --git-dir={git_dir} symbolic-ref HEAD {UNBORN_HEAD}"],
        _if=lambda: host.get_fact(FileContents, path=f"{git_dir}/HEAD") != [f"ref: {UNBORN_HEAD}"],
    )
    # Hooks and config run as whoever pushes next, an operator with sudo among them: a deployer
    # who could write them would be root. So the repository itself, its config, hooks and info
    # are root's, and only objects/ and refs/ are writable by the deploy group.
    # 2755: git init --shared=group sets the setgid bit, which a numeric chmod keeps on a
    # directory (coreutils); harmless here, as the group may not write.
    for path in (git_dir, f"{git_dir}/hooks", f"{git_dir}/info"):
        files.directory(name=f"Ensure {path} is root:root 2755.", path=path, user="root", group="root", mode="2755")
    for path in (f"{git_dir}/config", f"{git_dir}/HEAD", f"{git_dir}/description", f"{git_dir}/info/exclude"):
        files.file(name=f"Ensure {path} is root:root 0644.", path=path, user="root", group="root", mode="644")
    server.shell(
        name=f"Ensure no sample or planted file in {git_dir}/hooks but pre-receive (root's).",
        commands=[f"find {git_dir}/hooks -mindepth 1 ! -name pre-receive -delete"],
        _if=lambda: (
            bool(host.get_fact(FindFiles, path=f"{git_dir}/hooks", quote_path=True))
            and set(host.get_fact(FindFiles, path=f"{git_dir}/hooks", quote_path=True))
            != {f"{git_dir}/hooks/pre-receive"}
        ),
    )
    for path in (f"{git_dir}/objects", f"{git_dir}/refs"):
        files.directory(
            name=f"Ensure {path} is root:{group} 2775 (a push writes there).", path=path, user="root", group=group,
            mode="2775",
        )  # fmt: skip
    git.config(
        name=f"Ensure git trusts {git_dir} for every deployer (safe.directory).",
        key="safe.directory",
        value=git_dir,
        multi_value=True,
        system=True,
    )
    files.template(
        name="Ensure the push repository's pre-receive hook (a push releases).",
        src="deploy/hooks/pre-receive.j2",
        dest=f"{git_dir}/hooks/pre-receive",
        user="root",
        group="root",
        mode="755",
        **s,
    )
