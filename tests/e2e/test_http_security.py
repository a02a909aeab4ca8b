"""nginx's hardening, probed from outside the machine: TLS, redirects, headers, methods, limits."""

import os
import re
import socket
import ssl
import subprocess
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests

from tests.helpers import csrf_token, missing_security_headers, raw_request


@pytest.mark.parametrize("path", ["/", "/todos", "/static/x/style.css?a=1"])
def test_http_redirects_to_https_with_301(machine_address, path):
    response = requests.get(f"http://{machine_address}{path}", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://{machine_address}{path}"


def test_hsts_two_years_with_subdomains(web):
    assert web.get(f"{web.base}/", timeout=10).headers["Strict-Transport-Security"] == (
        "max-age=63072000; includeSubDomains"
    )


def _response(kind, web, static, address):
    """One response of each kind nginx or the app can give."""
    plain = requests.Session()
    return {
        "page 200": lambda: web.get(f"{web.base}/", timeout=10),
        "app 404": lambda: web.get(f"{web.base}/no-such-page", timeout=10),
        "app 400": lambda: web.post(f"{web.base}/todos", data={"text": "x"}, timeout=10),
        "redirect 303": lambda: web.post(
            f"{web.base}/todos", data={"text": "headers probe", "csrf_token": csrf_token(web)}, allow_redirects=False
        ),
        "static 200": lambda: web.get(f"{static}/style.css", timeout=10),
        "static 404": lambda: web.get(f"{static}/nope.css", timeout=10),
        "dotfile 403": lambda: web.get(f"{web.base}/.git/config", timeout=10),
        "method 405": lambda: web.put(f"{web.base}/", timeout=10),
        "body 413": lambda: web.post(f"{web.base}/todos", data={"text": "x" * 20000}, timeout=10),
        "http 301": lambda: plain.get(f"http://{address}/", allow_redirects=False, timeout=10),
    }[kind]()


@pytest.mark.parametrize(
    "kind",
    ["page 200", "app 404", "app 400", "redirect 303", "static 200", "static 404", "dotfile 403", "method 405",
     "body 413", "http 301"],
)  # fmt: skip
def test_security_headers_on_every_response_kind(web, static, machine_address, kind):
    response = _response(kind, web, static, machine_address)
    assert response.status_code == int(kind.split()[-1])
    assert not missing_security_headers(response), missing_security_headers(response)


def test_csp_allows_nothing_inline_and_the_page_needs_nothing_inline(web):
    response = web.get(f"{web.base}/", timeout=10)
    csp = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "default-src 'none'" in csp
    page = response.text.lower()
    assert "<script" not in page and "<style" not in page
    assert not re.search(r"<[^>]*\s(style|on[a-z]+)=", page), "an inline style or event handler"


@pytest.mark.parametrize("path", ["/", "/no-such-page", "/static/x/nope.css"])
def test_nginx_hides_version(web, path):
    response = web.get(f"{web.base}{path}", timeout=10)
    assert response.headers["Server"] == "nginx"
    assert "X-Powered-By" not in response.headers
    assert "1.22" not in response.text and "gunicorn" not in response.text.lower()


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"])
def test_only_get_head_post_reach_the_app(web, method):
    marker = uuid.uuid4().hex
    response = web.request(method, f"{web.base}/?{marker}", timeout=10)
    assert response.status_code == 405 and response.headers["Server"] == "nginx"
    assert "Back to the list" not in response.text  # nginx's answer, not the app's


def test_head_is_allowed(web):
    assert web.head(f"{web.base}/", timeout=10).status_code == 200


def test_long_request_line_is_414(web):
    assert web.get(f"{web.base}/?{'a' * 9000}", timeout=10).status_code == 414


def test_long_header_is_400(web):
    assert web.get(f"{web.base}/", headers={"X-Big": "a" * 9000}, timeout=10).status_code == 400


def test_too_many_header_bytes_is_400(web):
    headers = {f"X-Big-{n}": "a" * 7000 for n in range(6)}  # each fits one 8k buffer, all need 6 of 4
    assert web.get(f"{web.base}/", headers=headers, timeout=10).status_code == 400


def test_unknown_host_on_https_gets_no_response(web):
    with pytest.raises(requests.ConnectionError):
        web.get(f"{web.base}/", headers={"Host": "evil.example"}, timeout=5)


def _handshake(address, *options):
    """openssl s_client against port 443 with ``options``; True when the handshake succeeded."""
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"{address}:443", *options],
        input="", capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    return result.returncode == 0 and "Cipher is (NONE)" not in result.stdout


# SECLEVEL=0 lets this client offer what it would refuse by itself: the refusal must be the server's.
@pytest.mark.parametrize(
    "options, accepted",
    [
        (["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"], False),
        (["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], False),
        (["-tls1_2"], True),
        (["-tls1_3"], True),
        (["-tls1_2", "-cipher", "AES128-SHA:AES256-GCM-SHA384@SECLEVEL=0"], False),  # no forward secrecy
        (["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA@SECLEVEL=0"], False),  # CBC
        (["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"], True),
    ],
    ids=["tls1.0 refused", "tls1.1 refused", "tls1.2 accepted", "tls1.3 accepted", "no-ecdhe refused",
         "cbc refused", "ecdhe-gcm accepted"],
)  # fmt: skip
def test_tls_mozilla_intermediate_protocols_and_ciphers(machine_address, options, accepted):
    assert _handshake(machine_address, *options) is accepted


@pytest.mark.parametrize("path", ["/", "/%2e%2e/%2e%2e/venv/pyvenv.cfg", "/..%2f..%2f.release.json", "/../__init__.py"])
def test_nothing_outside_the_static_root_and_no_listings(static, path):
    """Each path reaches nginx as written (a raw request line: urllib3 would collapse the dots); but
    "/" (a listing), each names a file of the release outside its static folder (todo/static, beside the code)."""
    status, body = raw_request(urlsplit(static).path + path)
    assert status in (400, 403, 404), body[:300]
    assert "Index of" not in body and "home" not in body


def test_client_header_timeout_drops_a_stalled_client(machine_address):
    """A client that never finishes its headers is dropped after client_header_timeout (10 s)."""
    context = ssl.create_default_context(cafile=os.environ["REQUESTS_CA_BUNDLE"])
    context.check_hostname = False
    with socket.create_connection((machine_address, 443), timeout=30) as raw, context.wrap_socket(raw) as tls:
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {machine_address}\r\n".encode())
        started = time.monotonic()
        answer = tls.recv(1024)  # b"" when nginx closes the connection
        waited = time.monotonic() - started
    assert answer == b"" and 8 < waited < 20, (answer[:100], waited)
