"""End to end: HTTP from this box through nginx to gunicorn and PostgreSQL on the machine."""

import uuid

import pytest
import requests

from tests.helpers import add_todo, csrf_token, stored


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
    line = host.check_output(f"grep {marker} /var/log/nginx/access.log")
    assert "upstream=- " in line  # no upstream: nginx answered from disk


def test_static_text_is_gzipped(web, static):
    response = web.get(f"{static}/style.css", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert response.headers.get("Content-Encoding") == "gzip"
    assert "Accept-Encoding" in response.headers.get("Vary", "")
    assert ":root" in response.text  # requests decompressed it


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


def test_bad_todo_is_400_and_not_stored(web, host):
    count = "runuser -u postgres -- psql -d todo -Atc 'SELECT count(*) FROM todo'"
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


def test_body_over_limit_is_413_from_nginx(web):
    response = web.post(f"{web.base}/todos", data={"text": "x" * 20000}, timeout=10)
    assert response.status_code == 413


def test_healthz(web):
    response = web.get(f"{web.base}/healthz", timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_both_gunicorn_instances_receive_requests(web):
    seen = {web.get(f"{web.base}/version", timeout=10).json()["instance"] for _ in range(20)}
    assert seen == {"todo-0", "todo-1"}


def test_forged_forwarded_headers_are_overwritten(web, host):
    marker = uuid.uuid4().hex
    web.get(
        f"{web.base}/?{marker}",
        headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on"},
        timeout=10,
    ).raise_for_status()  # not 400 InvalidSchemeHeaders: nginx cleared X-Forwarded-Ssl
    logged = host.check_output(f"grep -h {marker} /var/log/todo/todo-*.log")
    # The app got exactly one address, the real client's (192.168.56.1), not the forged one.
    assert logged.endswith(" xff=192.168.56.1"), logged


def test_static_urls_name_the_release_and_are_cached_for_good(web, static, host):
    release = host.file("/srv/todo/current").linked_to.rsplit("/", 1)[1]
    assert static.endswith(f"/static/{release}")
    response = web.get(f"{static}/style.css", timeout=10)
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
