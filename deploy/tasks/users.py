"""The app's system users and the directories it owns, with their owners and modes."""

from pyinfra.api import deploy
from pyinfra.operations import files, server, systemd

from deploy.operations import config_files


@deploy("Users and directories")
def users_and_directories(s):
    """Ensure the app user, the build user and every directory of the stack (owner, group, mode)."""
    app = s["app_name"]
    server.group(name=f"Ensure the {app} group exists.", group=app, system=True)
    server.user(
        name=f"Ensure the {app} system user exists.",
        user=app,
        group=app,
        # Member of nginx's group only to hand its sockets to that group (gunicorn.conf.py, when_ready).
        groups=["www-data"],
        home=s["srv"],
        shell="/usr/sbin/nologin",
        system=True,
        ensure_home=False,
    )
    # Builds pushed code (unpack, virtualenv, pip, gzip): pushed content never runs as root, and
    # the release it builds is not writable by the app user that serves it.
    server.group(name=f"Ensure the {s['build_user']} group exists.", group=s["build_user"], system=True)
    server.user(
        name=f"Ensure the {s['build_user']} system user (builds releases) exists.",
        user=s["build_user"],
        group=s["build_user"],
        home=f"{s['cache']}/build",
        shell="/usr/sbin/nologin",
        system=True,
        ensure_home=False,
    )
    for path, owner, group, mode in [
        (s["srv"], "root", "root", "755"),
        (f"{s['srv']}/releases", "root", "root", "755"),
        (s["etc"], "root", app, "750"),
        (s["log"], "root", app, "750"),
        (s["cache"], "root", "root", "755"),
        (f"{s['cache']}/build", s["build_user"], s["build_user"], "700"),
        # The app's directories kept across releases (shared_dirs): root's above each one, which is the app's.
        (f"/var/lib/{app}", "root", "root", "755"),
        (s["shared"], "root", "root", "755"),
    ]:
        files.directory(name=f"Ensure {path} ({owner}:{group} {mode}).", path=path, user=owner, group=group, mode=mode)

    config_files(
        name=f"Ensure the release history {s['log']}/releases.log is rotated (logrotate).",
        files=[("logrotate.d/todo.j2", f"/etc/logrotate.d/{app}", "644", s)],
        check="logrotate --debug {} >/dev/null 2>&1",
    )
    systemd.service(name="Ensure logrotate runs every day.", service="logrotate.timer", running=True, enabled=True)
    config_files(
        name=f"Ensure {s['run']} is recreated at boot (tmpfiles.d).",
        files=[("systemd/tmpfiles.d/todo.conf.j2", f"/etc/tmpfiles.d/{app}.conf", "644", s)],
        check="systemd-tmpfiles --create {}",
    )
    files.directory(
        name=f"Ensure {s['run']} (app:www-data 0750) exists now.",
        path=s["run"],
        user=app,
        group="www-data",
        mode="750",
    )
