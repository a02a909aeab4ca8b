"""The stack heals itself: kill -9 of each of its processes, a database outage, a broken nginx reload."""

import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers import instance_pids, main_pid, missing_security_headers, query, wait_until
from tests.load import Load

pytestmark = pytest.mark.chaos


def gunicorn_processes(host):
    """(pid, ppid) of every process running gunicorn on the machine."""
    out = host.check_output("ps -eo pid=,ppid=,args= | grep '[g]unicorn' || true")
    return [tuple(int(x) for x in line.split()[:2]) for line in out.splitlines()]


def http_ok(address, path="/healthz"):
    """True when the site answers 200 on ``path``."""
    return requests.get(f"https://{address}{path}", timeout=2).status_code == 200


def test_nginx_master_killed_is_back_within_5s(host, machine_address, acknowledged, report):
    old = main_pid(host, "nginx")
    host.run(f"kill -9 {old}")
    _, took = wait_until(lambda: main_pid(host, "nginx") not in (0, old) and http_ok(machine_address), timeout=5)
    report("nginx master kill -9", f"recovered in {took:.1f} s")


def test_postmaster_killed_is_back_within_10s_and_app_recovers_without_restart(
    host, machine_address, instances, acknowledged, report
):
    masters = instance_pids(host, instances)
    old = main_pid(host, "postgresql@15-main")
    host.run(f"kill -9 {old}")
    _, back = wait_until(lambda: main_pid(host, "postgresql@15-main") not in (0, old), timeout=10)
    _, took = wait_until(lambda: every_worker_ok(machine_address), timeout=20)
    report("postmaster kill -9", f"postmaster back in {back:.1f} s, 24 pages in a row 200 {took:.1f} s later")
    assert instance_pids(host, instances) == masters  # gunicorn was not restarted: the pool reconnected


def test_gunicorn_worker_killed_is_respawned_within_2s(host, instances, report):
    master = instance_pids(host, instances)[instances[0]]
    workers = sorted(pid for pid, ppid in gunicorn_processes(host) if ppid == master)
    host.run(f"kill -9 {workers[0]}")

    def respawned():
        now = sorted(pid for pid, ppid in gunicorn_processes(host) if ppid == master)
        return len(now) == len(workers) and workers[0] not in now

    _, took = wait_until(respawned, timeout=2)
    report("gunicorn worker kill -9", f"recovered in {took:.1f} s")


def test_gunicorn_master_killed_is_restarted_within_5s_and_other_instances_serve(
    host, machine_address, app_name, instances, report
):
    before = instance_pids(host, instances)
    victim = before[instances[0]]
    orphans = {pid for pid, ppid in gunicorn_processes(host) if ppid == int(victim)}
    assert orphans, f"instance {instances[0]} (master {victim}) has no worker: no proof"
    host.run(f"kill -9 {victim}")
    # Meanwhile every GET is answered, and by a live instance: not by the killed master's workers,
    # which would keep accepting on its socket if they outlived it. Each request is found in the
    # instances' logs by its marker, with the pid of the worker that served it.
    marker = f"crash-{uuid.uuid4().hex[:12]}"
    answers = [requests.get(f"https://{machine_address}/?{marker}={n}", timeout=5) for n in range(20)]
    failed = [(r.status_code, r.text[-300:]) for r in answers if r.status_code != 200]
    assert not failed, failed
    served = host.check_output(f"grep -h '{marker}=' /var/log/{app_name}/*.log || true")
    pids = {int(pid) for pid in re.findall(r"pid=<(\d+)>", served)}
    assert len(re.findall(f"{marker}=", served)) == 20, served
    assert not pids & orphans, f"the killed master's workers {sorted(pids & orphans)} served requests"
    _, took = wait_until(lambda: instance_pids(host, instances).get(instances[0]) not in (None, victim), timeout=5)
    report("gunicorn master kill -9", f"recovered in {took:.1f} s")
    assert host.socket(f"unix:///run/{app_name}/{instances[0]}.sock").is_listening
    # The old master's workers notice their parent is gone and exit: no orphans.
    wait_until(lambda: all(ppid != 1 for _, ppid in gunicorn_processes(host)), timeout=35)


def test_supervisord_killed_is_back_with_one_master_per_instance(
    host, machine_address, instances, acknowledged, report
):
    old = main_pid(host, "supervisor")
    host.run(f"kill -9 {old}")

    def healed():
        supervisord = main_pid(host, "supervisor")
        pids = instance_pids(host, instances)
        procs = gunicorn_processes(host)
        masters = [pid for pid, ppid in procs if ppid == supervisord]
        return (
            supervisord not in (0, old)
            and len(pids) == len(instances)
            and sorted(masters) == sorted(pids.values())
            and all(ppid in masters or ppid == supervisord for _, ppid in procs)  # no orphans
            and http_ok(machine_address)
        )

    _, took = wait_until(healed, timeout=30)
    report("supervisord kill -9 (to all instances running, no orphans)", f"recovered in {took:.1f} s")


def every_worker_ok(address, requests_in_a_row=24):
    """True when that many list pages in a row answer 200: with round-robin over the
    instances and their workers' own pools, one lucky worker is not enough."""
    return all(http_ok(address, "/") for _ in range(requests_in_a_row))


def supervisor_states(host, instances):
    """{instance: supervisor state}, e.g. RUNNING, BACKOFF, FATAL."""
    out = host.run(f"supervisorctl status {' '.join(instances)}").stdout
    return {line.split()[0]: line.split()[1] for line in out.splitlines()}


def static_url(address):
    """The stylesheet URL the current release's pages name."""
    release = requests.get(f"https://{address}/version", timeout=5).json()["release"]
    return f"https://{address}/static/{release}/style.css"


def test_postgresql_stopped_30s_fails_fast_and_recovers_without_restart(
    host, machine_address, instances, acknowledged, report
):
    """Pages answer 503 at once; the read API answers from nginx's microcache (stale-if-error)."""
    masters, css = instance_pids(host, instances), static_url(machine_address)
    api = f"https://{machine_address}/api/todos"
    assert requests.get(api, timeout=10).status_code == 200  # in nginx's microcache now
    host.check_output("systemctl stop postgresql@15-main")
    cached = None  # the copy nginx had when the database went: served as it is from then on
    try:
        slowest, deadline, verdicts = 0.0, time.monotonic() + 30, set()
        while time.monotonic() < deadline:
            answer = requests.get(api, timeout=10)
            cached = cached or answer.json()
            assert answer.status_code == 200 and answer.json() == cached, answer.text[:300]
            verdicts.add(answer.headers["X-Cache-Status"])
            started = time.monotonic()
            page = requests.get(f"https://{machine_address}/", timeout=10)
            slowest = max(slowest, time.monotonic() - started)
            assert page.status_code == 503 and "The database is unavailable" in page.text
            assert not missing_security_headers(page)
            assert requests.get(f"https://{machine_address}/healthz", timeout=10).status_code == 503
            assert requests.get(css, timeout=10).status_code == 200  # static files do not need the database
            time.sleep(1)
        assert slowest < 2, f"a database page took {slowest:.1f} s to fail"
        assert "STALE" in verdicts, f"the API was never served stale: {verdicts}"
        assert set(supervisor_states(host, instances).values()) == {"RUNNING"}, "gunicorn must not go FATAL"
    finally:
        host.check_output("systemctl start postgresql@15-main")
    _, took = wait_until(lambda: every_worker_ok(machine_address), timeout=5)
    report("PostgreSQL stopped 30 s", f"503 in at most {slowest:.2f} s while down; 200 again {took:.1f} s after start")
    assert instance_pids(host, instances) == masters, "gunicorn was not restarted"


def test_instances_started_before_postgresql_serve_once_it_is_up(
    host, machine_address, instances, acknowledged, report
):
    """Like a boot where PostgreSQL comes up late: no operator action needed."""
    host.check_output("systemctl stop postgresql@15-main")
    try:
        host.check_output(f"supervisorctl restart {' '.join(instances)}")
        time.sleep(5)
        assert set(supervisor_states(host, instances).values()) == {"RUNNING"}, "no FATAL while the database is missing"
        page = requests.get(f"https://{machine_address}/", timeout=10)
        # Every instance keeps its socket closed until healthy: nginx's own clear 503 page.
        assert page.status_code == 503 and "starting or restarting" in page.text
        assert page.headers.get("Retry-After") == "5"
        assert not missing_security_headers(page)
    finally:
        host.check_output("systemctl start postgresql@15-main")
    _, took = wait_until(lambda: every_worker_ok(machine_address), timeout=15)
    report("instances started before PostgreSQL", f"200 {took:.1f} s after PostgreSQL started")


def test_broken_nginx_reload_is_refused_and_old_config_serves_under_load(host, machine_address, report):
    broken = "/etc/nginx/sites-enabled/zz-broken.conf"
    master = main_pid(host, "nginx")
    with Load(machine_address, clients=10, max_seconds=60) as load:
        time.sleep(1)
        host.check_output(f"echo 'this is not nginx;' > {broken}")
        try:
            assert host.run("nginx -t -q").rc != 0
            assert host.run("systemctl reload nginx").rc != 0, "systemctl reload refuses a broken config"
            host.check_output(f"kill -HUP {master}")  # nginx -s reload: the master keeps the old config
            time.sleep(2)
        finally:
            host.check_output(f"rm -f {broken}")
    report("broken nginx reload under load", load.summary())
    load.forget(host)
    assert load.failures == [] and load.acknowledged
    assert main_pid(host, "nginx") == master
    assert host.run("nginx -t -q").rc == 0


def worker_pids(host, instances):
    """PIDs of every gunicorn worker (children of a supervised master)."""
    masters = set(instance_pids(host, instances).values())
    return {pid for pid, ppid in gunicorn_processes(host) if ppid in masters}


def timed_get(url):
    """(status, body, seconds) of one GET."""
    started = time.monotonic()
    page = requests.get(url, timeout=60)
    return page.status_code, page.text, time.monotonic() - started


def test_postgresql_hung_fails_within_db_timeouts_not_worker_timeouts(
    host, machine_address, instances, acknowledged, report
):
    """SIGSTOP on every PostgreSQL process: statement_timeout cannot fire in a stopped server,
    so only the app's own deadlines (connect_timeout, the check and query deadlines) end
    the waits; gunicorn's 30 s worker timeout must never be what answers."""
    workers, url = worker_pids(host, instances), f"https://{machine_address}/"
    postgres = host.check_output("pgrep -d ' ' -u postgres")
    host.check_output(f"kill -STOP {postgres}")
    try:
        with ThreadPoolExecutor(8) as pool:  # every worker gets a request that waits on the hung server
            answers = list(pool.map(timed_get, [url] * 8))
        answers += [timed_get(url) for _ in range(8)]
    finally:
        host.check_output(f"kill -CONT {postgres}")
    slowest = max(seconds for _, _, seconds in answers)
    wrong = [(status, body[-200:]) for status, body, _ in answers if "The database is unavailable" not in body]
    assert not wrong, wrong
    assert slowest < 10, f"a request to the hung database took {slowest:.1f} s"
    _, took = wait_until(lambda: every_worker_ok(machine_address), timeout=10)
    report("PostgreSQL hung (SIGSTOP)", f"503 in ≤ {slowest:.1f} s while hung; 200 {took:.1f} s after SIGCONT")
    assert worker_pids(host, instances) == workers, "no worker was killed by gunicorn's timeout"


def worker_of_backend(host, backend):
    """PID of the process at the other end of PostgreSQL backend ``backend``'s unix socket."""
    sockets = {}  # local inode -> (peer inode, pid)
    for line in host.check_output("ss -xpnH state established").splitlines():
        fields = line.split()
        pid = re.search(r"pid=(\d+)", line)
        if len(fields) >= 7 and pid:
            sockets[fields[-4]] = (fields[-2], int(pid.group(1)))
    peer = next(peer for peer, pid in sockets.values() if pid == backend)
    return sockets[peer][1]


def test_request_past_gunicorn_timeout_fails_cleanly_and_worker_is_replaced(
    host, machine_address, app_name, instances, report
):
    """No code path of the app can run past the 30 s timeout (every database wait is bounded),
    so the test makes one: it freezes (SIGSTOP) the worker that is serving a request, found
    through the PostgreSQL backend its query waits in behind a table lock."""
    url, workers = f"https://{machine_address}/", worker_pids(host, instances)
    host.check_output(
        f"systemd-run --collect --unit={app_name}-chaos-lock runuser -u postgres -- psql -d {app_name} -c "
        "'BEGIN; LOCK TABLE todo IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT'"
    )
    wait_until(lambda: query(host, "SELECT 1 FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND granted"), 3)
    with ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(timed_get, url)
        lock_waiter = "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        backend, _ = wait_until(lambda: query(host, lock_waiter), timeout=3)
        victim = worker_of_backend(host, int(backend.split()[0]))
        assert victim in workers
        host.check_output(f"kill -STOP {victim}")
        time.sleep(3)  # the lock is gone: every other request is served meanwhile
        others = [timed_get(url) for _ in range(20)]
        status, body, seconds = stuck.result()
    assert status == 503 and "took too long" in body, (status, body[-300:])
    assert 25 < seconds < 45, f"the stuck request ended after {seconds:.1f} s, not at gunicorn's 30 s timeout"
    assert [s for s, _, _ in others] == [200] * 20
    assert victim not in worker_pids(host, instances) and len(worker_pids(host, instances)) == len(workers), (
        "the worker was replaced"
    )
    log = host.check_output(f"grep -h 'WORKER TIMEOUT (pid:{victim})' /var/log/{app_name}/{app_name}-*.log")
    report("request past gunicorn's 30 s timeout", f"clean 503 after {seconds:.1f} s; 20 of 20 others 200; {log}")


def test_full_log_filesystem_keeps_serving_and_logs_again_when_freed(
    host, machine_address, app_name, instances, report
):
    """/var/log/<app> on a small filesystem the test mounts (supervisor reopens its logs there on
    SIGUSR2), filled to the last byte: gunicorn's log lines go through supervisor's pipe, so a
    failed write must cost a log line, never a request."""
    logs, supervisord = f"/var/log/{app_name}", main_pid(host, "supervisor")
    mode = host.check_output(f"stat -c '%a' {logs}")
    host.check_output(f"mount -t tmpfs -o size=256k,mode={mode},gid={app_name} {app_name}-chaos-logs {logs}")
    try:
        host.check_output(f"kill -USR2 {supervisord}")  # supervisord reopens its logs: now on the small fs
        wait_until(lambda: host.file(f"{logs}/{instances[0]}.log").exists, timeout=5)
        host.run(f"dd if=/dev/zero of={logs}/filler bs=4k")  # ends with "No space left on device"
        assert host.check_output(f"df --output=avail {logs} | tail -1").strip() == "0"
        with Load(machine_address, clients=10, max_requests=3000, max_seconds=30) as load:
            time.sleep(8)  # far more log lines than a 64 KiB pipe holds
        report("log filesystem full", load.summary())
        load.forget(host)
        assert load.failures == [] and load.acknowledged
        assert set(supervisor_states(host, instances).values()) == {"RUNNING"}
        assert main_pid(host, "supervisor") == supervisord
        host.check_output(f"rm {logs}/filler")
        probe = f"/healthz?probe={time.time_ns()}"
        for _ in instances:  # round-robin: one request per instance
            requests.get(f"https://{machine_address}{probe}", timeout=5)
        wait_until(lambda: host.run(f"grep -q '{probe}' {logs}/{app_name}-*.log").rc == 0, timeout=5)
    finally:
        host.run(f"umount --lazy {logs}")
        host.run(f"kill -USR2 {supervisord}")  # back to the log files on disk
    assert host.check_output(f"findmnt -n -o FSTYPE --target {logs}") != "tmpfs"
