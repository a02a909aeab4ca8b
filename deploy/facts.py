"""Facts about the stack that pyinfra does not ship: what the deploy must check before changing."""

import shlex

from pyinfra.api import FactBase


class LoginUser(FactBase):
    """The user pyinfra logged in as (before sudo)."""

    def command(self):
        return 'echo "${SUDO_USER:-$(id -un)}"'

    def process(self, output):
        return output[0]


class LoginPort(FactBase):
    """The TCP port sshd received this run's login on (the 4th field of SSH_CONNECTION), None when
    not logged in over SSH. sudo drops SSH_CONNECTION from the environment, so it is read from the
    nearest ancestor process that has it (sudo itself, or the login shell)."""

    def command(self):
        return (
            'p=$$; while [ "${p:-1}" -gt 1 ]; do '
            "c=$(tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | sed -n 's/^SSH_CONNECTION=//p'); "
            '[ -n "$c" ] && { echo "$c"; exit 0; }; '
            "p=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$p/status); done; echo none"
        )

    def process(self, output):
        fields = output[0].split()
        return int(fields[3]) if len(fields) == 4 else None


class CpuCount(FactBase):
    """Number of online CPUs."""

    def command(self):
        return "nproc"

    def process(self, output):
        return int(output[0])


class FirewallLoaded(FactBase):
    """True when the kernel holds the firewall's input chain (``inet filter input``): false on
    a host where someone ran ``nft flush ruleset``, though /etc/nftables.conf is unchanged."""

    def command(self):
        return "nft list chain inet filter input >/dev/null 2>&1 && echo yes || echo no"

    def process(self, output):
        return output[0] == "yes"


class SysctlDrift(FactBase):
    """Keys of a sysctl.d file whose live value differs from the file's: [] when the kernel
    holds every value (writing net.ipv4.ip_forward, for one, resets every conf.*.* key)."""

    def command(self, path):
        return (
            f"[ -f {path} ] || exit 0; grep -E '^[a-z]' {path} | while IFS='= ' read -r key value; do "
            '[ "$(sysctl -n "$key" 2>/dev/null)" = "$value" ] || echo "$key"; done'
        )

    def process(self, output):
        return [line for line in output if line]


class SupervisorStates(FactBase):
    """{program: state} from ``supervisorctl status`` (e.g. RUNNING, STOPPED, FATAL); {} when
    supervisord is not running."""

    def command(self):
        return "supervisorctl status 2>/dev/null || true"

    def process(self, output):
        return dict(line.split()[:2] for line in output if len(line.split()) >= 2)


class Certificate(FactBase):
    """A PEM certificate's subjectAltName entries (``IP:…``/``DNS:…``), validity in seconds and
    whether it is self-signed (subject = issuer): {"names": [...], "lifetime": s, "remaining": s,
    "self_signed": bool}; None when the file is missing or unreadable."""

    def command(self, path):
        return (
            f"[ -r {path} ] || exit 0; "
            f"openssl x509 -in {path} -noout -ext subjectAltName -startdate -enddate -subject -issuer "
            "-nameopt RFC2253 2>/dev/null; echo now=$(date +%s)"
        )

    def process(self, output):
        import calendar
        import re
        import time

        text = "\n".join(output)
        if "notAfter=" not in text:
            return None

        def stamp(key):
            value = re.search(rf"{key}=(.+)", text).group(1).strip()
            return calendar.timegm(time.strptime(value, "%b %d %H:%M:%S %Y %Z"))  # openssl prints GMT

        names = re.findall(r"(IP Address|DNS):([^,\s]+)", text)
        now = int(re.search(r"now=(\d+)", text).group(1))
        subject = re.search(r"^subject=(.*)$", text, re.M)
        issuer = re.search(r"^issuer=(.*)$", text, re.M)
        return {
            "self_signed": bool(subject and issuer) and subject.group(1) == issuer.group(1),
            "names": [f"{'IP' if kind == 'IP Address' else 'DNS'}:{value}" for kind, value in names],
            "lifetime": stamp("notAfter") - stamp("notBefore"),
            "remaining": stamp("notAfter") - now,
        }


class PostgresValue(FactBase):
    """The first row of a query run as postgres in database ``database`` (unaligned, ``|`` between
    columns); "" when PostgreSQL does not answer."""

    def command(self, database, sql):
        return f'runuser -u postgres -- psql -d {database} -Atc "{sql}" 2>/dev/null || true'

    def process(self, output):
        return output[0] if output else ""


class TextLine(FactBase):
    """The first line of a file, stripped (e.g. an SSH public key); None when it is absent or empty."""

    def command(self, path):
        return f"cat {shlex.quote(path)} 2>/dev/null || true"

    def process(self, output):
        return output[0].strip() if output and output[0].strip() else None


class SystemIdMismatch(FactBase):
    """True when this host's PostgreSQL cluster is not the one pgBackRest's stanza backs up: its
    system identifier (pg_controldata) differs from the stanza's (``info``), as on a new server that
    must be restored first. False when they match or either is unknown (no stanza yet)."""

    def command(self, stanza, pg_data, version):
        return (
            f"cluster=$(/usr/lib/postgresql/{version}/bin/pg_controldata {pg_data} 2>/dev/null "
            "| sed -n 's/^Database system identifier: *//p'); "
            f"stanza=$(runuser -u postgres -- pgbackrest --stanza={stanza} info --output=json 2>/dev/null "
            '| python3 -c \'import json,sys; print(json.load(sys.stdin)[0]["db"][-1]["system-id"])\' '
            '2>/dev/null); [ -n "$cluster" ] && [ -n "$stanza" ] && [ "$cluster" != "$stanza" ] '
            "&& echo mismatch || echo same"
        )

    def process(self, output):
        return output[0] == "mismatch"


class FileText(FactBase):
    """A text file's whole content (lines joined, a final newline), read as root; None when absent."""

    def command(self, path):
        return f"[ -f {shlex.quote(path)} ] && cat {shlex.quote(path)} || true"

    def process(self, output):
        return "\n".join(output) + "\n" if output else None


#: What each service would load at its next start, checked with the service's own parser; prints one
#: line per problem. nginx: ``nginx -t`` (its warnings count only when it fails); supervisor:
#: supervisord's own parse of its config and every program file (supervisor.options.ServerOptions,
#: what ``supervisord -c`` runs first); systemd: ``systemd-analyze verify`` of every unit the stack
#: writes and every unit it gives a drop-in (a template through an instance of it). verify exits 0 on
#: an unknown key or a bad value, so a line it prints is a problem when it names one of those units or
#: their files (another unit's notice, a dependency's on a real server, is not the stack's).
LOAD_CHECK = r"""
cd /
if command -v nginx >/dev/null; then out=$(nginx -t -q 2>&1) || printf '%s\n' "$out" | sed 's/^/nginx -t: /'; fi
if [ -f /etc/supervisor/supervisord.conf ]; then
  out=$(python3 -c 'import sys, supervisor.options as s; s.ServerOptions().realize(sys.argv[1:])' \
    -c /etc/supervisor/supervisord.conf 2>&1) || printf '%s\n' "$out" | sed 's/^/supervisor: /'
fi
units=$(for f in /etc/systemd/system/*.d/{app}.conf /etc/systemd/system/{app}-*.service \
  /etc/systemd/system/{app}-*.timer; do [ -e "$f" ] || continue; u=${{f%.d/{app}.conf}}; basename "$u"; done)
if [ -n "$units" ]; then
  patterns=$(for u in $units; do
    printf '%s\n' "/etc/systemd/system/$u" "$u:" "$(echo "$u" | sed 's/@\./@check./'):"; done)
  systemd-analyze verify --man=no --recursive-errors=no $(echo "$units" | sed 's/@\./@check./') 2>&1 |
    grep -F "$patterns" | sed 's/^/systemd-analyze verify: /'
fi
"""


class LoadProblems(FactBase):
    """What nginx, supervisor and systemd would refuse or ignore at their next start, one line per
    problem ([] when everything loads cleanly): the run that changed a file checked it, but a second
    run that changes nothing must still see a broken file in place (LOAD_CHECK)."""

    def command(self, app):
        return LOAD_CHECK.format(app=app)

    def process(self, output):
        return [line for line in output if line.strip()]
