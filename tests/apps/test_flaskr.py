"""Flask's tutorial app, flaskr, unmodified, deployed by the stack from the operator's repository
with settings only (deploy/inventories/local-flaskr.py): its pages through nginx (with a browser
too), a one-off command, its static files from disk, its requests in Prometheus, its instance
folder kept across releases and rollbacks, a second process type, releases and configuration
changes under load with no failed request, and failed releases that leave the old one serving
and say why.

The tests run in order and build on each other (the database init-db makes, the post made)."""

import re
import uuid

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests import helpers
from tests.apps.conftest import current, process_release
from tests.conftest import run_script
from tests.host.test_monitoring import prometheus
from tests.load import PathsLoad

pytestmark = pytest.mark.usefixtures("flaskr_site")

ADDRESS = "192.168.56.40"
APP = "flaskr"
INSTANCES = (f"{APP}-0", f"{APP}-1")
#: The pages the loads browse: one that needs no database, the index (which reads it), a static file.
PATHS = ("/auth/login", "/", "/static/style.css")
USER = f"operator-{uuid.uuid4().hex[:6]}"
POST_TITLE = f"kept across releases {uuid.uuid4().hex[:6]}"
#: The page title the released change adds (this run's own: a rollback must take it away).
RELEASED = f"Flaskr, released {uuid.uuid4().hex[:6]}"


def session():
    return helpers.new_session(ADDRESS)


def logged_in():
    """A session logged in as USER."""
    s = session()
    response = s.post(f"{s.base}/auth/login", data={"username": USER, "password": "pw"}, allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"] == "/", response.text[:300]
    return s


def test_the_first_release_serves_flaskr_pages_through_nginx(flaskr, flaskr_host):
    s = session()
    response = s.get(f"{s.base}/auth/login", timeout=10)
    assert response.status_code == 200 and "Log In" in response.text
    assert response.headers["Server"] == "nginx" and not helpers.missing_security_headers(response)
    meta = flaskr_host.check_output(f"cat /srv/{APP}/current/.release.json")
    assert '"wsgi_app": "flaskr:create_app()"' in meta  # the setting, as flaskr has no Procfile


def test_a_one_off_command_runs_in_the_release_environment(flaskr):
    status, out = flaskr.run("flask", "--app", "flaskr", "init-db")
    assert status == 0 and "Initialized the database." in out, out
    status, out = flaskr.run("sh", "-c", 'echo "$RELEASE_ID $(id -un) $PWD"; exit 7')
    assert status == 7, out
    release, user, cwd = out.split()[-3:]
    assert user == APP and cwd == f"/srv/{APP}/releases/{release}"


def test_a_user_registers_logs_in_and_posts():
    s = session()
    response = s.post(f"{s.base}/auth/register", data={"username": USER, "password": "pw"}, allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"] == "/auth/login", response.text[:300]
    s = logged_in()
    response = s.post(f"{s.base}/create", data={"title": POST_TITLE, "body": "hello"}, allow_redirects=False)
    assert response.status_code == 302, response.text[:300]
    assert POST_TITLE in s.get(f"{s.base}/", timeout=10).text


def submit(browser, form):
    """Submit ``form`` with its submit button and wait for the page it leads to (the marker set on
    this page gone, the new one loaded); a WebDriver error mid-navigation means "not yet"."""
    browser.execute_script("window.flaskrTestPageBefore = true")
    browser.find_element(By.CSS_SELECTOR, f"{form} input[type=submit]").click()
    WebDriverWait(browser, 10, ignored_exceptions=(WebDriverException,)).until(
        lambda driver: driver.execute_script(
            "return window.flaskrTestPageBefore === undefined && document.readyState === 'complete'"
        )
    )


def test_a_browser_logs_in_and_posts_through_flaskrs_own_forms(browser, flaskr_site):
    """Chromium through nginx: the login and new-post forms, flaskr's stylesheet applied (nginx's
    security headers and CSP let it), and nothing on the console."""
    title = f"posted from a browser {uuid.uuid4().hex[:6]}"
    browser.get(f"{flaskr_site}/auth/login")
    assert browser.title == "Log In - Flaskr"  # not Chromium's "Privacy error"
    browser.find_element(By.NAME, "username").send_keys(USER)
    browser.find_element(By.NAME, "password").send_keys("pw")
    submit(browser, "form")
    assert browser.current_url == f"{flaskr_site}/" and "Log Out" in browser.page_source
    browser.get(f"{flaskr_site}/create")
    browser.find_element(By.NAME, "title").send_keys(title)
    browser.find_element(By.NAME, "body").send_keys("from Chromium")
    submit(browser, "form")
    assert title in [h1.text for h1 in browser.find_elements(By.CSS_SELECTOR, "article.post h1")]
    # style.css's body { max-width: 960px }: the stylesheet loaded and applied.
    assert browser.execute_script("return getComputedStyle(document.body).maxWidth") == "960px"
    # flaskr has no favicon.ico: Chromium's own request for it is flaskr's 404, not the stack's.
    logged = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert [e for e in logged if "/favicon.ico " not in e["message"]] == [], logged


def test_static_files_come_from_nginx_precompressed(flaskr_host):
    s = session()
    marker = uuid.uuid4().hex
    response = s.get(f"{s.base}/static/style.css?{marker}", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert response.status_code == 200 and "body" in response.text
    assert response.headers.get("Content-Encoding") == "gzip"
    assert response.headers["Cache-Control"] == "public, max-age=300, must-revalidate"
    assert flaskr_host.file(f"/srv/{APP}/current/flaskr/static/style.css.gz").is_file
    logs = flaskr_host.run(f"grep -l {marker} /var/log/{APP}/{APP}-*.log")
    assert logs.rc == 1, f"a static file reached gunicorn: {logs.stdout}"


def test_the_instance_folder_is_a_shared_directory(flaskr_host):
    link = flaskr_host.file(f"/srv/{APP}/current/instance")
    assert link.is_symlink and link.linked_to == f"/var/lib/{APP}/shared/instance"
    database = flaskr_host.file(f"/var/lib/{APP}/shared/instance/flaskr.sqlite")
    assert database.is_file and database.user == APP


def test_the_clock_process_type_runs_beside_the_instances(flaskr_host):
    status = flaskr_host.check_output(f"supervisorctl status {APP}-clock-0")
    assert "RUNNING" in status, status
    assert process_release(flaskr_host, f"{APP}-clock-0")[0] == current(flaskr_host, APP)
    assert helpers.wait_until(lambda: "tick" in flaskr_host.file(f"/var/log/{APP}/{APP}-clock-0.log").content_string,
                              timeout=15)  # fmt: skip


def test_a_release_under_load_fails_no_request_and_keeps_the_data(flaskr, flaskr_host, report):
    before = current(flaskr_host, APP)
    _, clock_pid = process_release(flaskr_host, f"{APP}-clock-0")

    def retitle(path):
        base = path / "flaskr/templates/base.html"
        base.write_text(
            base.read_text().replace(
                "<title>{% block title %}{% endblock %} - Flaskr</title>",
                f"<title>{{% block title %}}{{% endblock %}} - {RELEASED}</title>",
            )
        )

    flaskr.commit("a new title", retitle)
    with PathsLoad(ADDRESS, PATHS, clients=8, max_seconds=120) as load:
        status, out = flaskr.release()
    report("flaskr under load", load.summary())
    assert status == 0, out[-4000:]
    assert load.failures == [] and load.requests > 100, load.summary()
    after = current(flaskr_host, APP)
    assert after != before
    s = logged_in()
    page = s.get(f"{s.base}/", timeout=10).text
    assert RELEASED in page and POST_TITLE in page
    release, pid = process_release(flaskr_host, f"{APP}-clock-0")
    assert release == after and pid != clock_pid


def test_a_rollback_keeps_the_data(flaskr, flaskr_host):
    status, out = flaskr.release("--rollback")
    assert status == 0, out[-4000:]
    s = logged_in()
    page = s.get(f"{s.base}/", timeout=10).text
    assert RELEASED not in page and POST_TITLE in page
    assert process_release(flaskr_host, f"{APP}-clock-0")[0] == current(flaskr_host, APP)


def test_a_configuration_change_rolls_with_no_failed_request(flaskr, flaskr_host, report):
    programs = (*INSTANCES, f"{APP}-clock-0")
    pids = {program: flaskr_host.check_output(f"supervisorctl pid {program}") for program in programs}
    greeting = f"hello world {uuid.uuid4().hex[:6]}"
    with PathsLoad(ADDRESS, PATHS, clients=8, max_seconds=120) as load:
        status, out = run_script("scripts/config", "set", f"GREETING={greeting}", "--target", flaskr.inventory)
    report("flaskr config change under load", load.summary())
    assert status == 0, out[-3000:]
    assert load.failures == [] and load.requests > 50, load.summary()
    for program in programs:
        pid = flaskr_host.check_output(f"supervisorctl pid {program}")
        assert pid != pids[program], f"{program} was not restarted"
        # Matched on the machine: the environment holds secrets, which must not reach the report.
        found = flaskr_host.run(f"tr '\\0' '\\n' < /proc/{pid}/environ | grep -cx 'GREETING={greeting}'")
        assert found.stdout.strip() == "1", program
    status, out = run_script("scripts/config", "list", "--target", flaskr.inventory)
    assert status == 0 and "GREETING=******" in out and "hello" not in out, out
    status, out = run_script("scripts/config", "unset", "GREETING", "--target", flaskr.inventory)
    assert status == 0, out[-3000:]
    assert "GREETING" not in flaskr_host.check_output(f"cat /etc/{APP}/config.env")


def test_request_metrics_and_alerts_for_an_app_with_no_metrics_of_its_own(flaskr_host):
    """flaskr serves no metrics (metrics_path ""): its requests are counted from nginx's log by
    mtail, every scrape target is up, and no alert fires on a healthy app."""

    def app_requests():
        result = prometheus(flaskr_host, "query?query=sum(todo_web_requests_total{served_by=%22app%22})")["result"]
        return float(result[0]["value"][1]) if result else 0.0

    def targets():
        return {(t["labels"]["job"], t["health"]) for t in prometheus(flaskr_host, "targets")["activeTargets"]}

    up = {(job, "up") for job in ("prometheus", "node", "nginx", "postgres", "web")}
    helpers.wait_until(lambda: targets() == up, timeout=30)
    before = app_requests()
    s = session()
    for _ in range(5):
        assert s.get(f"{s.base}/auth/login", timeout=10).status_code == 200
    helpers.wait_until(lambda: app_requests() >= before + 5, timeout=30)  # a scrape every 10 s
    assert [a for a in prometheus(flaskr_host, "alerts")["alerts"] if a["state"] == "firing"] == []


def test_status_names_the_app_its_process_types_configuration_and_shared_directories(flaskr):
    assert run_script("scripts/config", "set", "STATUS_PROBE=secret-value", "--target", flaskr.inventory)[0] == 0
    try:
        status, out = run_script("scripts/status", "--target", flaskr.inventory)
    finally:
        assert run_script("scripts/config", "unset", "STATUS_PROBE", "--target", flaskr.inventory)[0] == 0
    assert out.startswith("== flaskr") or "flaskr on " in out, out
    assert re.search(rf"^  {APP}-clock-0 +RUNNING\b.*\bclock\b", out, re.M), out
    assert re.search(r"^config +1 set in /etc/flaskr/config.env \(names only\): STATUS_PROBE$", out, re.M), out
    assert "secret-value" not in out
    assert re.search(r"^  instance +\d+(\.\d)? [KMG]?i?B in \d+ file", out, re.M), out
    assert re.search(r"^memory used [\d.]+% of [\d.]+ [KMGT]iB \([\d.]+ [KMGT]iB available\)$", out, re.M), out
    assert re.search(r"^maintenance off$", out, re.M), out


def test_a_failing_release_command_stops_the_release_with_the_old_one_serving(flaskr, flaskr_host):
    serving = current(flaskr_host, APP)
    flaskr.commit("a release command that fails", lambda path: (path / "Procfile").write_text(
        "release: echo migrating the database; exit 3\n"))  # fmt: skip
    status, out = flaskr.release()
    assert status == 1, out[-3000:]
    assert "migrating the database" in out and "step 'release command'" in out, out[-3000:]
    assert current(flaskr_host, APP) == serving


def test_an_app_that_fails_its_health_check_shows_its_traceback_and_the_old_one_serves(flaskr, flaskr_host):
    serving = current(flaskr_host, APP)

    def break_login(path):
        (path / "Procfile").unlink()
        auth = path / "flaskr/auth.py"
        auth.write_text(re.sub(r"(def login\(\):\n)", r'\1    raise RuntimeError("the login page is broken")\n',
                               auth.read_text()))  # fmt: skip

    flaskr.commit("a login page that fails", break_login)
    status, out = flaskr.release()
    assert status == 1, out[-3000:]
    assert "step 'health check'" in out and "RuntimeError: the login page is broken" in out, out[-4000:]
    assert current(flaskr_host, APP) == serving
    s = session()
    assert s.get(f"{s.base}/auth/login", timeout=10).status_code == 200
    for program in INSTANCES:
        assert process_release(flaskr_host, program)[0] == serving


def test_maintenance_mode_answers_503_but_to_the_allowed_address_and_keeps_the_app_running(flaskr, flaskr_host):
    pids = {program: flaskr_host.check_output(f"supervisorctl pid {program}") for program in INSTANCES}
    status, out = run_script("scripts/maintenance", "on", "--target", flaskr.inventory)
    try:
        assert status == 0, out
        visitor = helpers.new_session(ADDRESS, load_generator=False)  # not in maintenance_allow
        for path in ("/", "/auth/login", "/static/style.css"):
            response = visitor.get(f"{visitor.base}{path}", timeout=10)
            assert response.status_code == 503 and "Down for maintenance" in response.text, path
            assert response.headers["Retry-After"] == "300" and not helpers.missing_security_headers(response)
        allowed = session()  # the load generator's address: maintenance_allow
        assert allowed.get(f"{allowed.base}/auth/login", timeout=10).status_code == 200
        assert run_script("scripts/maintenance", "status", "--target", flaskr.inventory)[1].split()[-1] == "on"
    finally:
        status, out = run_script("scripts/maintenance", "off", "--target", flaskr.inventory)
    assert status == 0, out
    visitor = helpers.new_session(ADDRESS, load_generator=False)
    assert visitor.get(f"{visitor.base}/auth/login", timeout=10).status_code == 200
    assert {program: flaskr_host.check_output(f"supervisorctl pid {program}") for program in INSTANCES} == pids
