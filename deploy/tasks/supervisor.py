"""supervisor runs the gunicorn instances, one program per instance; systemd runs supervisor."""

import re

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import FindFiles, Link
from pyinfra.operations import files, server, systemd

from deploy.facts import SupervisorStates
from deploy.operations import dropin


@deploy("supervisor")
def supervisor(s):
    """Ensure the supervisor programs; roll the instances onto a changed program one at a time;
    start any instance found stopped."""
    unit = dropin("supervisor.service", s)
    app, instances = s["app_name"], s["instance_names"]
    program = files.template(
        name=f"Ensure the supervisor programs {', '.join(instances)} (one per gunicorn instance).",
        src="supervisor/conf.d/todo.conf.j2",
        dest=f"/etc/supervisor/conf.d/{app}.conf",
        user="root",
        group="root",
        mode="644",
        **s,
    )
    systemd.service(name="Ensure supervisor is running and enabled.", service="supervisor", running=True, enabled=True)
    systemd.service(
        name="Restart supervisor (and the instances): its unit's drop-in (sandbox) changed.",
        service="supervisor",
        restarted=True,
        _if=unit.did_change,
    )
    server.shell(
        name="Wait until the restarted supervisord answers on its socket (10 s).",
        commands=["for i in $(seq 50); do supervisorctl pid >/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1"],
        _if=unit.did_change,
    )

    def released():
        return host.get_fact(Link, path=f"{s['srv']}/current") is not None

    server.shell(
        name="Roll the instances onto the changed program config, one at a time; drop removed instances.",
        # Before the first release there is nothing to roll: the release adds the programs.
        commands=[f"{s['release_tool']} restart", "supervisorctl update"],
        _if=lambda: program.did_change() and released(),
    )

    def stale_logs():
        """Logs (and supervisor's rotated copies) of instances this host no longer runs: <app>-<n>.log
        only (the process types' logs, <app>-<type>-<n>.log, are the release tool's)."""
        found = host.get_fact(FindFiles, path=s["log"], fname=f"{app}-[0-9]*.log*", quote_path=True) or []
        return [path for path in found
                if re.fullmatch(rf"{app}-\d+", name := path.rsplit("/", 1)[1].split(".log", 1)[0])
                and name not in instances]  # fmt: skip

    server.shell(
        name="Remove the logs of instances no longer run (after fewer instances): nothing would rotate them.",
        commands=[
            f'cd {s["log"]} && for f in {app}-[0-9]*.log*; do case "${{f%%.log*}}" in {"|".join(instances)}) ;; '
            f'{app}-*[!0-9]*) ;; *) rm -f -- "$f" ;; esac; done'
        ],
        _if=lambda: bool(stale_logs()),
    )

    up = ("RUNNING", "STARTING", "BACKOFF")

    def stopped():
        states = host.get_fact(SupervisorStates)
        return released() and any(states.get(name) not in up for name in instances)

    server.shell(
        name="Start every instance that is not running (stopped or failed by hand); it opens to nginx once healthy.",
        commands=[
            "supervisorctl update",
            f"for name in {' '.join(instances)}; do supervisorctl status $name | grep -qE '{'|'.join(up)}' "
            "|| supervisorctl start $name; done",
        ],
        _if=stopped,
    )
