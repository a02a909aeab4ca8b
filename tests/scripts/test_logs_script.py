"""scripts/logs against the machine: a request made through nginx shows up in nginx's log with its
request id and in the app's log under the same id, and in the merged log of every source; the
release history is read; bad usage is refused before any host is reached (no machine needed
for those)."""

import re
import subprocess
import uuid

import pytest

from tests.conftest import REPO
from tests.helpers import new_session, wait_until

#: An output line: TIME (UTC, milliseconds) SOURCE  TEXT.
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\S+) +(.*)$")


def logs(*args):
    run = subprocess.run([str(REPO / "scripts/logs"), *args], capture_output=True, text=True, timeout=120)
    return run.returncode, run.stdout, run.stderr


def lines_with(out, text):
    """(source, text) of each output line holding ``text``."""
    found = []
    for line in out.splitlines():
        if text in line:
            match = LINE.match(line)
            assert match, f"not TIME SOURCE TEXT: {line!r}"
            found.append(match.groups())
    return found


@pytest.fixture
def request_made(machine_address):
    """(marker, request id) of a GET /?MARKER made through nginx from the load generator's address,
    once scripts/logs nginx shows it."""
    marker = f"logs-{uuid.uuid4().hex}"
    web = new_session(machine_address)
    web.get(f"{web.base}/?{marker}", timeout=10).raise_for_status()

    def logged():
        code, out, err = logs("nginx", "--since", "5m")
        assert code == 0, out + err
        return lines_with(out, marker)

    found, _ = wait_until(logged, timeout=30, interval=1)
    source, text = found[-1]
    assert source == "nginx" and re.search(rf" GET /\?{marker} 200 ", text), text
    return marker, re.search(r"\brid=([0-9a-f]{32})\b", text).group(1)


def test_a_request_is_in_nginx_and_the_app_logs_under_one_id(request_made, app_name):
    marker, rid = request_made

    def logged():
        code, out, err = logs("app", "--since", "5m")
        assert code == 0, out + err
        return lines_with(out, f"rid={rid}")

    found, _ = wait_until(logged, timeout=30, interval=1)
    source, text = found[-1]
    assert re.fullmatch(rf"{re.escape(app_name)}-\d+", source), source
    assert marker in text, text


def test_the_merged_log_of_every_source_holds_both_lines(request_made):
    marker, rid = request_made
    code, out, err = logs("all", "--since", "5m")
    assert code == 0, out + err
    sources = {source for source, _ in lines_with(out, f"rid={rid}")}
    # nginx logs a request when it ends, the app too: both lines are there, in either order.
    assert "nginx" in sources and sources - {"nginx"}, (sources, marker)


def test_the_release_history_is_read(machine_address):
    """Every release the machine ever had (ten years back): at least its first one."""
    code, out, err = logs("--since", "3650d", "release")
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines and all(LINE.match(line) and LINE.match(line).group(1) == "release" for line in lines), out


@pytest.mark.parametrize("args", [["--since", "banana"], ["--since", "10"], ["kernel"], ["--lines", "0"]])
def test_bad_usage_is_refused(args):
    code, out, err = logs(*args)
    assert code == 2, out + err


def test_follow_is_refused_with_several_hosts(tmp_path):
    """Refused before any host is reached (the inventory's hosts do not exist)."""
    inventory = tmp_path / "inventory.py"
    inventory.write_text("hosts = [('one.invalid', {'ssh_user': 'admin'}), ('two.invalid', {'ssh_user': 'admin'})]\n")
    code, out, err = logs("--follow", "--target", str(inventory))
    assert code == 2 and "--follow follows one host" in err, out + err
