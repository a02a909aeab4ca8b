"""The controls the stack relies on that the kernel enforces, proven where they are enforced.

A unit file that says ``IPAddressDeny=any`` proves nothing by itself: on a kernel (or a container)
that cannot attach systemd's BPF programs, systemd starts the unit without the filter and says
nothing. Each control here is tried for real on the machine: a probe that succeeds without the
control must fail with it (a transient unit, ``systemd-run``), and the stack's own units are
probed from inside their cgroup or read from the kernel's view of their processes. The list and
what the local machines enforce: docs/security.md, "Controls the kernel enforces".
"""

import shlex

import pytest

from tests.helpers import MACHINE, NOT_CONNECTED, connect, in_cgroup

#: The machine's own private address, not loopback: a filter to localhost refuses it.
PRIVATE = MACHINE
#: A character device no sandboxed unit may open (/dev/net/tun), made in a root-only directory.
PROBE_DIR, DEVICE = "/root/.todo-kernel-probe", "c 10 200"

#: (control, its properties, a command that succeeds where the control is not in effect).
CONTROLS = [
    ("IP filtering", "IPAddressDeny=any IPAddressAllow=localhost",
     f"python3 -c \"import socket; socket.create_connection(('{PRIVATE}', 22), 3)\""),
    ("device policy", "DevicePolicy=closed", f"sh -c 'exec 3<> {PROBE_DIR}/device'"),
    ("system call filter", "SystemCallFilter=@system-service",
     "python3 -c 'import ctypes; ctypes.CDLL(None).swapoff(b\"/nonexistent\")'"),
    ("address families", "RestrictAddressFamilies=AF_UNIX",
     "python3 -c 'import socket; socket.socket(socket.AF_INET)'"),
    ("namespaces", "RestrictNamespaces=yes", "unshare --user true"),
    ("W^X memory", "MemoryDenyWriteExecute=yes",
     "python3 -c 'import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)'"),
    ("no new privileges", "NoNewPrivileges=yes", "sh -c 'grep -q \"^NoNewPrivs:.0\" /proc/self/status'"),
    ("capability bounding set", "CapabilityBoundingSet=CAP_KILL", f"chown nobody {PROBE_DIR}/file"),
    ("read-only system", "ProtectSystem=strict", "touch /etc/.todo-kernel-probe"),
    ("no homes", "ProtectHome=yes", f"ls {PROBE_DIR}/file"),
    ("read-only kernel tunables", "ProtectKernelTunables=yes",
     "sh -c 'cat /proc/sys/net/ipv4/tcp_syncookies > /proc/sys/net/ipv4/tcp_syncookies'"),
    ("hidden processes", "ProtectProc=invisible DynamicUser=yes", "test -e /proc/1/environ"),
    ("read-only cgroups", "ProtectControlGroups=yes",
     "sh -c 'mkdir /sys/fs/cgroup/todo-probe && rmdir /sys/fs/cgroup/todo-probe'"),
    ("hostname", "ProtectHostname=yes", "sh -c 'hostname \"$(hostname)\"'"),
    ("realtime", "RestrictRealtime=yes", "chrt -f 1 true"),
    ("set-user-id files", "RestrictSUIDSGID=yes", f"chmod u+s {PROBE_DIR}/file"),
    ("personality", "LockPersonality=yes", "setarch linux32 true"),
]  # fmt: skip


@pytest.fixture(scope="module")
def probe_files(host):
    """A root-only directory with a plain file and a device node; removed afterwards."""
    host.check_output(f"install -d -m 700 {PROBE_DIR} && touch {PROBE_DIR}/file && mknod {PROBE_DIR}/device {DEVICE}")
    yield
    host.check_output(f"rm -rf {PROBE_DIR} /etc/.todo-kernel-probe")


def transient(host, properties, command):
    """Run ``command`` in a transient service with ``properties`` (space-separated); its exit status
    (255, a process the filter killed, reads as 254: ssh's own failures are 255)."""
    props = " ".join(f"-p {shlex.quote(p)}" for p in properties.split())
    return host.run(f"timeout 30 systemd-run --quiet --wait --pipe --collect {props} {command}; rc=$?; "
                    "exit $(( rc == 255 ? 254 : rc ))").rc  # fmt: skip


@pytest.mark.parametrize(("control", "properties", "probe"), CONTROLS, ids=[c[0] for c in CONTROLS])
def test_the_kernel_enforces(host, probe_files, control, properties, probe):
    """The probe works without the control and fails with it: the kernel enforces it here."""
    assert transient(host, "", probe) == 0, f"the probe for {control} fails even without it: it proves nothing"
    assert transient(host, properties, probe) != 0, f"{properties}: not enforced on this machine"


def test_private_tmp_is_private(host):
    """PrivateTmp=yes: a file a unit writes to /tmp is not in the machine's /tmp."""
    host.check_output("rm -f /tmp/.todo-kernel-probe")
    assert transient(host, "PrivateTmp=yes", "touch /tmp/.todo-kernel-probe") == 0
    assert not host.file("/tmp/.todo-kernel-probe").exists


def test_supervisor_cgroup_reaches_loopback(host):
    """From inside supervisor's cgroup (the instances'), loopback is allowed (PostgreSQL on 127.0.0.1)."""
    assert in_cgroup(host, "supervisor.service", connect("127.0.0.1", 5432)) == 0


def test_supervisor_cgroup_cannot_reach_other_addresses(host):
    """From inside supervisor's cgroup, an address outside IPAddressAllow= is refused by the kernel
    (the machine's own private address, where sshd answers from anywhere else)."""
    assert host.run(connect(PRIVATE, 22)).rc == 0, "sshd does not answer on the private address: no proof"
    assert in_cgroup(host, "supervisor.service", connect(PRIVATE, 22)) == NOT_CONNECTED


@pytest.mark.parametrize("unit", ["supervisor.service", "nginx.service"])
def test_sandboxed_units_processes_carry_their_filters(host, unit):
    """The kernel's view of each process of the unit: a seccomp filter, no new privileges."""
    pids = host.check_output(f"cat /sys/fs/cgroup/system.slice/{unit}/cgroup.procs").split()
    assert pids, f"{unit} runs no process"
    for pid in pids:
        status = dict(line.split(":\t", 1) for line in host.check_output(f"cat /proc/{pid}/status").splitlines())
        assert status["Seccomp"] == "2", f"{unit} pid {pid}: no seccomp filter"
        assert status["NoNewPrivs"] == "1", f"{unit} pid {pid}: may gain privileges"
