"""ihatemoney, a Flask + SQLAlchemy + Flask-Migrate app from PyPI, unmodified, on PostgreSQL: deployed
the way its docs say from a thin operator repository (requirements.txt, a Procfile, its settings
file) with settings only (deploy/inventories/local-ihatemoney.py). Its migrations run by the
Procfile's release: line, its forms (CSRF-protected) posted through nginx, its static files from
disk, a worker process type, a release of its next version under load with no failed request, a
rollback, a configuration change, a one-off command.

The tests run in order and build on each other (the project made, the releases shipped)."""

import re
import uuid

import pytest

from tests import helpers
from tests.apps.conftest import IHATEMONEY, IHATEMONEY_PROCFILE, current, ihatemoney_requirements, process_release
from tests.conftest import run_script
from tests.load import PathsLoad

pytestmark = pytest.mark.usefixtures("ihatemoney_site")

ADDRESS = "192.168.56.41"
APP = "ihatemoney"
INSTANCES = (f"{APP}-0", f"{APP}-1")
PATHS = ("/", "/healthcheck", "/static/css/main.css")
PROJECT = f"trip{uuid.uuid4().hex[:6]}"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def token(session, path):
    """The CSRF token of the form on ``path``."""
    page = session.get(f"{session.base}{path}", timeout=10)
    assert page.status_code == 200, f"{path}: {page.status_code}"
    return CSRF.search(page.text).group(1)


def project_page():
    """The project's page, in a session logged in to it with its password."""
    s = helpers.new_session(ADDRESS)
    form = {"csrf_token": token(s, "/authenticate"), "id": PROJECT, "password": "pw"}
    response = s.post(f"{s.base}/authenticate", data=form, allow_redirects=False)
    assert response.status_code == 302, response.text[:300]
    return s.get(f"{s.base}/{PROJECT}/", timeout=10).text


def test_the_first_release_built_from_unhashed_requirements_with_a_warning_and_migrated(ihatemoney, ihatemoney_host):
    _, out = ihatemoney
    assert "WARNING: requirements.txt: 3 requirement(s) without --hash" in out, out[-3000:]
    assert "release command: ihatemoney db upgrade" in out, out[-3000:]
    sql = "SELECT count(*) FROM pg_tables WHERE tablename IN ('project', 'bill')"
    tables = ihatemoney_host.check_output(f'runuser -u postgres -- psql -d {APP} -Atc "{sql}"')
    assert tables.strip() == "2"
    meta = ihatemoney_host.check_output(f"cat /srv/{APP}/current/.release.json")
    assert '"wsgi_app": "ihatemoney.wsgi:application"' in meta


def test_its_pages_answer_through_nginx():
    s = helpers.new_session(ADDRESS)
    for path in ("/", "/healthcheck", "/create"):
        response = s.get(f"{s.base}{path}", timeout=10)
        assert response.status_code == 200, path
        assert response.headers["Server"] == "nginx"


def test_a_project_member_and_bill_are_posted_with_their_csrf_tokens():
    s = helpers.new_session(ADDRESS)
    form = {"csrf_token": token(s, "/create"), "name": PROJECT, "id": "", "password": "pw",
            "contact_email": "operator@example.com", "default_currency": "XXX"}  # fmt: skip
    response = s.post(f"{s.base}/create", data=form, allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/{PROJECT}/"), response.text[:500]
    form = {"csrf_token": token(s, f"/{PROJECT}/members/add"), "name": "alice", "weight": "1"}
    assert s.post(f"{s.base}/{PROJECT}/members/add", data=form, allow_redirects=False).status_code == 302
    page = s.get(f"{s.base}/{PROJECT}/add", timeout=10).text
    payer = re.search(r'<option[^>]*value="(\d+)"[^>]*>alice<', page).group(1)
    form = {"csrf_token": CSRF.search(page).group(1), "date": "2026-12-01", "what": "train tickets", "payer": payer,
            "amount": "42", "payed_for": [payer], "bill_type": "Expense", "original_currency": "XXX"}  # fmt: skip
    response = s.post(f"{s.base}/{PROJECT}/add", data=form, allow_redirects=False)
    assert response.status_code == 302, response.text[:500]
    assert "train tickets" in project_page()


def test_static_files_come_from_nginx_precompressed(ihatemoney_host):
    s = helpers.new_session(ADDRESS)
    marker = uuid.uuid4().hex
    response = s.get(f"{s.base}/static/css/main.css?{marker}", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert response.status_code == 200 and response.headers.get("Content-Encoding") == "gzip"
    assert ihatemoney_host.run(f"grep -l {marker} /var/log/{APP}/{APP}-*.log").rc == 1, "a static file reached gunicorn"


def test_a_one_off_command_sees_the_database(ihatemoney):
    repo, _ = ihatemoney
    status, out = repo.run("sh", "-c", 'ihatemoney db current --directory "$(python -c \'import ihatemoney, os; '
                                       "print(os.path.dirname(ihatemoney.__file__))')/migrations\"")  # fmt: skip
    assert status == 0 and "(head)" in out, out[-2000:]


def test_the_next_version_released_under_load_fails_no_request_and_rolls_the_worker(ihatemoney, ihatemoney_host,
                                                                                     report):  # fmt: skip
    repo, _ = ihatemoney
    before = current(ihatemoney_host, APP)
    _, worker_pid = process_release(ihatemoney_host, f"{APP}-worker-0")
    repo.commit(f"ihatemoney {IHATEMONEY[1]}", lambda path: (path / "requirements.txt").write_text(
        ihatemoney_requirements(IHATEMONEY[1])))  # fmt: skip
    with PathsLoad(ADDRESS, PATHS, clients=8, max_seconds=180) as load:
        status, out = repo.release()
    report("ihatemoney release under load", load.summary())
    assert status == 0, out[-4000:]
    assert load.failures == [] and load.requests > 100, load.summary()
    after = current(ihatemoney_host, APP)
    assert after != before
    version = ihatemoney_host.check_output(f"/srv/{APP}/current/venv/bin/pip show ihatemoney | grep ^Version")
    assert version.split()[-1] == IHATEMONEY[1]
    release, pid = process_release(ihatemoney_host, f"{APP}-worker-0")
    assert release == after and pid != worker_pid
    assert "train tickets" in project_page()


def test_a_rollback_goes_back_to_the_first_version_with_the_data(ihatemoney, ihatemoney_host):
    repo, _ = ihatemoney
    status, out = repo.release("--rollback")
    assert status == 0, out[-4000:]
    version = ihatemoney_host.check_output(f"/srv/{APP}/current/venv/bin/pip show ihatemoney | grep ^Version")
    assert version.split()[-1] == IHATEMONEY[0]
    assert process_release(ihatemoney_host, f"{APP}-worker-0")[0] == current(ihatemoney_host, APP)
    assert "train tickets" in project_page()


def test_a_configuration_change_reaches_the_app_with_no_failed_request(ihatemoney, ihatemoney_host, report):
    repo, _ = ihatemoney
    value = f"Budget manager {uuid.uuid4().hex[:6]} <budget@example.com>"
    with PathsLoad(ADDRESS, PATHS, clients=8, max_seconds=120) as load:
        status, out = run_script("scripts/config", "set", f"MAIL_DEFAULT_SENDER={value}", "--target", repo.inventory)
    report("ihatemoney config change under load", load.summary())
    assert status == 0, out[-3000:]
    assert load.failures == [] and load.requests > 50, load.summary()
    status, out = repo.run("sh", "-c", 'printf "%s\\n" "$MAIL_DEFAULT_SENDER"')
    assert status == 0 and out.strip().splitlines()[-1] == value
    assert run_script("scripts/config", "unset", "MAIL_DEFAULT_SENDER", "--target", repo.inventory)[0] == 0


def test_a_worker_that_crash_loops_stops_the_release_with_the_old_one_serving(ihatemoney, ihatemoney_host):
    """A process type whose command exits at once: supervisor gives up on it (startretries), the
    release fails at its process types with the program's log in the output, and the release
    before it is put back on the instances and the worker."""
    repo, _ = ihatemoney
    serving = current(ihatemoney_host, APP)
    worker = 'worker: while sleep 5; do echo "worker alive"; done'
    assert worker in IHATEMONEY_PROCFILE
    repo.commit("a worker that gives up at once", lambda path: (path / "Procfile").write_text(
        IHATEMONEY_PROCFILE.replace(worker, 'worker: echo "worker gives up"; exit 3')))  # fmt: skip
    status, out = repo.release()
    assert status == 1, out[-3000:]
    assert "step 'processes'" in out and "did not start" in out and "worker gives up" in out, out[-3000:]
    assert current(ihatemoney_host, APP) == serving
    for program in (*INSTANCES, f"{APP}-worker-0"):
        assert process_release(ihatemoney_host, program)[0] == serving, program
    assert "train tickets" in project_page()
