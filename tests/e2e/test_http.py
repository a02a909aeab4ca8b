"""End to end: HTTP from this box through nginx to gunicorn and PostgreSQL on the machine."""

import uuid

import pytest
import requests

from tests.helpers import LOAD_GENERATOR, access_log, add_todo, csrf_token, new_session, stored


def test_index_page(web):
    response = web.get(f"{web.base}/", timeout=10)
    assert response.status_code == 200
    assert "<h1>" in response.text and "Todo" in response.text
    assert response.headers["Content-Type"].startswith("text/html")


def test_server_header_has_no_version(web):
    assert web.get(f"{web.base}/", timeout=10).headers["Server"] == "nginx"


def test_unknown_host_gets_no_response(web):
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{web.base}/", headers={"Host": "evil.example"}, timeout=5)


def test_static_file_served_by_nginx_from_disk(web, static, host):
    marker = uuid.uuid4().hex
    response = web.get(f"{static}/style.css?{marker}", timeout=10)
    assert response.status_code == 200 and "text/css" in response.headers["Content-Type"]
    line = access_log(host, marker)
    assert line["status"] == "200" and line["upstream"] == "", line  # no upstream: nginx answered from disk


def test_static_text_is_served_from_its_precompressed_copy(web, static, host, app_name):
    """gzip_static: the bytes on the wire are the .gz file the release made (same length, no
    chunking), not nginx compressing on the fly (which would be chunked, with no Content-Length)."""
    response = web.get(f"{static}/style.css", headers={"Accept-Encoding": "gzip"}, timeout=10, stream=True)
    assert response.headers.get("Content-Encoding") == "gzip"
    on_disk = host.file(f"/srv/{app_name}/current/todo/static/style.css.gz").size
    assert int(response.headers["Content-Length"]) == on_disk == len(response.raw.read(decode_content=False))
    response = web.get(f"{static}/style.css", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert "Accept-Encoding" in response.headers.get("Vary", "")
    assert ":root" in response.text  # requests decompressed it


def test_static_text_is_served_from_its_brotli_copy_when_the_client_accepts_br(web, static, host, app_name):
    """brotli_static: a client that accepts br gets the release's .br copy (smaller than the .gz)."""
    response = web.get(f"{static}/style.css", headers={"Accept-Encoding": "br, gzip"}, timeout=10, stream=True)
    assert response.headers.get("Content-Encoding") == "br"
    static_dir = f"/srv/{app_name}/current/todo/static"
    on_disk = host.file(f"{static_dir}/style.css.br").size
    assert int(response.headers["Content-Length"]) == on_disk == len(response.raw.read(decode_content=False))
    assert on_disk < host.file(f"{static_dir}/style.css.gz").size


def test_app_html_brotli_when_accepted(web):
    response = web.get(f"{web.base}/", headers={"Accept-Encoding": "br"}, timeout=10, stream=True)
    assert response.headers.get("Content-Encoding") == "br"
    response.close()


def test_static_image_served(web, static):
    response = web.get(f"{static}/logo.svg", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/svg+xml"
    assert response.headers.get("Content-Encoding") == "gzip"


def test_static_not_gzipped_when_client_does_not_accept_it(web, static):
    response = web.get(f"{static}/style.css", headers={"Accept-Encoding": "identity"}, timeout=10)
    assert "Content-Encoding" not in response.headers


def test_app_html_gzipped(web):
    response = web.get(f"{web.base}/", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert response.headers.get("Content-Encoding") == "gzip"


def test_missing_static_file_is_404(web, static):
    assert web.get(f"{static}/nope.css", timeout=10).status_code == 404


def test_dotfiles_denied(web, static):
    assert web.get(f"{static}/.hidden", timeout=10).status_code == 403


def test_add_todo_and_see_it(web, host):
    text = add_todo(web)
    page = web.get(f"{web.base}/", timeout=10).text
    assert text in page
    assert stored(host, text) == 1


def test_bad_todo_is_400_and_not_stored(web, host, app_name):
    count = f"runuser -u postgres -- psql -d {app_name} -Atc 'SELECT count(*) FROM todo'"
    before = host.check_output(count)
    response = web.post(f"{web.base}/todos", data={"text": " " * 3, "csrf_token": csrf_token(web)}, timeout=10)
    assert response.status_code == 400
    assert "Write something to do." in response.text
    assert host.check_output(count) == before


def test_post_without_csrf_token_is_400(web):
    assert web.post(f"{web.base}/todos", data={"text": "x"}, timeout=10).status_code == 400


def test_unknown_page_is_app_404(web):
    response = web.get(f"{web.base}/no-such-page", timeout=10)
    assert response.status_code == 404 and "Back to the list" in response.text


def test_wrong_method_is_405(web):
    assert web.get(f"{web.base}/todos", timeout=10).status_code == 405


def test_body_over_limit_is_413_from_nginx(web, host, app_name):
    """nginx answers it (its own page), and the request never reaches an instance."""
    marker = uuid.uuid4().hex
    response = web.post(f"{web.base}/todos?{marker}", data={"text": "x" * 20000}, timeout=10)
    assert response.status_code == 413 and "<center>nginx</center>" in response.text
    assert host.run(f"grep -q {marker} /var/log/{app_name}/{app_name}-*.log").rc == 1
    assert access_log(host, marker)["status"] == "413"


def test_app_refuses_a_body_over_its_own_limit_too(host, app_name):
    """Flask's MAX_CONTENT_LENGTH is the deploy's max_body_bytes, not a constant: FLASK_MAX_CONTENT_LENGTH
    in /etc/<app>/environment, which launch gives every process of the app."""
    env = host.check_output(f"grep -x 'FLASK_MAX_CONTENT_LENGTH=[0-9]*' /etc/{app_name}/environment")
    limit = int(env.split("=")[1])
    nginx = host.check_output(f"grep -o 'client_max_body_size [0-9]*' /etc/nginx/sites-available/{app_name}.conf")
    assert limit == int(nginx.split()[1])
    pid = host.check_output(f"supervisorctl pid {app_name}-0")
    # That one variable alone: the instance's environment holds its secrets too (SECRET_KEY, PGPASSWORD).
    environ = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ | grep '^FLASK_MAX_CONTENT_LENGTH=' || true")
    assert environ.split() == [f"FLASK_MAX_CONTENT_LENGTH={limit}"]


def test_healthz(web):
    response = web.get(f"{web.base}/healthz", timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_every_gunicorn_instance_receives_requests(web, instances):
    seen = {web.get(f"{web.base}/version", timeout=10).json()["instance"] for _ in range(10 * len(instances))}
    assert seen == set(instances)


def test_forged_forwarded_headers_are_overwritten(web, host, app_name):
    marker = uuid.uuid4().hex
    web.get(
        f"{web.base}/?{marker}",
        headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on"},
        timeout=10,
    ).raise_for_status()  # not 400 InvalidSchemeHeaders: nginx cleared X-Forwarded-Ssl
    logged = host.check_output(f"grep -h {marker} /var/log/{app_name}/{app_name}-*.log")
    # The app got exactly one address, the real client's (the load generator's), not the forged one.
    assert logged.endswith(f" xff={LOAD_GENERATOR}"), logged


def test_static_urls_name_the_release_and_are_cached_for_good(web, static, host, app_name):
    release = host.file(f"/srv/{app_name}/current").linked_to.rsplit("/", 1)[1]
    assert static.endswith(f"/static/{release}")
    response = web.get(f"{static}/style.css", timeout=10)
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_post_rate_limit_applies_to_a_browser_on_this_box(machine_address):
    """Only the load generator's address is exempt: from this box's own address (where the README
    tells a user to open the site) POSTs beyond the burst get 429. No CSRF token: nothing is written."""
    browser = new_session(machine_address, load_generator=False)
    codes = [browser.post(f"{browser.base}/todos", data={"text": "x"}, timeout=10).status_code for _ in range(45)]
    assert 429 not in codes[:20], codes  # the burst (post_burst 20) passes
    assert codes.count(429) >= 5, codes


def test_load_generator_is_not_rate_limited(web):
    codes = [web.post(f"{web.base}/todos", data={"text": "x"}, timeout=10).status_code for _ in range(45)]
    assert set(codes) == {400}, codes  # every one reached the app (and was refused for its missing token)
