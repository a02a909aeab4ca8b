"""An app nobody here wrote on the cluster: ihatemoney (Flask + SQLAlchemy + Flask-Migrate, from PyPI,
unmodified) from the operator's thin repository, released onto both app hosts through the load
balancer in place of the sample app (deploy/inventories/cluster-ihatemoney.py): its migrations run
once (on the first app host only), no request through the load balancer fails while the app
changes under it, both hosts then serve it, and its CSRF-protected forms work whichever host
answers (one SECRET_KEY across the hosts, one database).

Destructive and last: the cluster serves ihatemoney afterwards (the phase destroys it)."""

import uuid

import pytest

from tests import helpers
from tests.apps.conftest import current, ihatemoney_repo
from tests.apps.test_ihatemoney import CSRF
from tests.cluster.conftest import APP_HOSTS, LB, app_request, run
from tests.cluster.test_release_cluster import history
from tests.load import PathsLoad

pytestmark = pytest.mark.destructive

INVENTORY = "deploy/inventories/cluster-ihatemoney.py"


@pytest.fixture(scope="module")
def ihatemoney(tmp_path_factory):
    """The operator's thin repository of ihatemoney (tests/apps/conftest.py's)."""
    return ihatemoney_repo(tmp_path_factory.mktemp("cluster-ihatemoney") / "ihatemoney", INVENTORY)


def test_ihatemoney_replaces_the_sample_app_host_by_host_with_its_migrations_once_and_no_failed_request(
    lb, apps, db_host, ihatemoney, report
):
    # The cluster's settings for it (health path, static folder, its settings file's variable):
    # provisioning changes no running process, and the sample app keeps serving.
    status, out = run("scripts/provision", INVENTORY, timeout=1500)
    assert status == 0, out[-4000:]
    assert "has a release already" in out
    # "/" answers 200 in both apps: the load sees every request of the switch, none may fail.
    with PathsLoad(LB, ["/"], clients=6, max_seconds=600) as load:
        status, out = ihatemoney.release()
    report("ihatemoney replacing the sample app on two app hosts, under load", load.summary())
    assert status == 0, out[-4000:]
    assert not load.failures, load.failures[:5]
    release = current(apps["app1"], "todo")
    assert current(apps["app2"], "todo") == release
    actions = {name: [e["action"] for e in history(host, release)] for name, host in apps.items()}
    assert actions == {"app1": ["prepare", "migrate", "activate"], "app2": ["prepare", "activate"]}, actions
    heads = db_host.check_output("runuser -u postgres -- psql -d todo -Atc 'SELECT count(*) FROM alembic_version'")
    assert heads.strip() == "1"
    for name in APP_HOSTS:
        status, _, body = app_request(lb, name, path="/create")
        assert status == 200 and "csrf_token" in body, name


def test_its_forms_and_static_files_work_through_the_load_balancer_whichever_host_answers():
    project = f"cluster{uuid.uuid4().hex[:6]}"
    s = helpers.new_session(LB)
    page = s.get(f"{s.base}/create", timeout=10)
    assert page.status_code == 200
    form = {"csrf_token": CSRF.search(page.text).group(1), "name": project, "id": "", "password": "pw",
            "contact_email": "operator@example.com", "default_currency": "XXX"}  # fmt: skip
    response = s.post(f"{s.base}/create", data=form, allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/{project}/"), response.text[:500]
    # The load balancer spreads requests over both hosts: each page of the project, from either, knows it.
    for _ in range(6):
        assert s.get(f"{s.base}/{project}/", timeout=10).status_code == 200
    static = s.get(f"{s.base}/static/css/main.css", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert static.status_code == 200 and static.headers.get("Content-Encoding") == "gzip"
