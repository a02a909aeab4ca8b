"""The last step of every run: what each service would load at its next start is checked, whether
or not this run changed it (a broken TLS key left by an earlier run, a hand-edited unit)."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import server

from deploy.facts import LOAD_CHECK, LoadProblems


@deploy("Checks")
def loads(s):
    """Fail the run, naming each problem, when nginx -t, supervisor's parse of its programs or
    systemd-analyze verify of the stack's units finds one; change nothing otherwise."""
    check = LOAD_CHECK.format(app=s["app_name"])
    server.shell(
        name="Check what nginx, supervisor and systemd would load at their next start.",
        commands=[f'problems=$({check}); [ -z "$problems" ] || {{ printf "%s\\n" "$problems" >&2; exit 1; }}'],
        _if=lambda: bool(host.get_fact(LoadProblems, app=s["app_name"])),
    )
