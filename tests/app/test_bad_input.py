"""Bad input is a 4xx with a clear message, never a 5xx: a page cursor that names no real time, a
NUL in a todo, a JSON body or a file where a form is expected; and Hypothesis drives every route's
query string and form fields (or JSON body) with arbitrary text and bytes."""

import json
import re
from io import BytesIO
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from todo import create_app

#: Looks like a page cursor (todos.CURSOR) but most draws name no real time (month 13, second 61).
CURSOR_SHAPED = st.from_regex(r"\A\d{8}T\d{6}\.\d{6}Z\.\d{1,18}\Z")
#: A real cursor, of any time from year 1 to 9999 and any id.
CURSOR = st.builds(lambda t, n: f"{t.year:04}{t:%m%dT%H%M%S.%f}Z.{n}", st.datetimes(), st.integers(0, 10**18 - 1))
#: Any text, lone surrogates and NULs included (sent as UTF-8 with surrogatepass, so invalid).
TEXT = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=())),
    st.text(st.sampled_from("\x00\ud800\udfff\ufffd\x7fa<&%+= \n"), max_size=20),
    st.text(min_size=400, max_size=2000),
    CURSOR_SHAPED,
    CURSOR,
)
#: A query or form value: text, or raw bytes (invalid UTF-8 percent-encodings).
VALUE = st.one_of(TEXT.map(lambda text: text.encode("utf-8", "surrogatepass")), st.binary(max_size=64))
NAME = st.one_of(st.sampled_from([b"before", b"after", b"text", b"csrf_token"]), VALUE)
FIELDS = st.lists(st.tuples(NAME, VALUE), max_size=4)
#: A query string's fields: a page cursor (or two) first, then any.
QUERY = st.builds(list.__add__, st.lists(st.tuples(st.sampled_from([b"before", b"after"]), VALUE), max_size=2), FIELDS)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["text", "csrf_token"]) | TEXT, inner),
    max_leaves=8,
)
#: Every route the app serves, as (method, rule), HEAD and OPTIONS left to Flask.
ROUTES = sorted(
    (method, rule.rule)
    for rule in create_app({"SECRET_KEY": "x", "DATABASE_URL": "postgresql://unused"}).url_map.iter_rules()
    for method in rule.methods - {"HEAD", "OPTIONS"}
)
HYPOTHESIS = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def token(client):
    """A valid CSRF token of ``client``'s session (from the list page's form)."""
    page = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def encoded(fields):
    """``fields`` (name, value) as a percent-encoded query string or form body."""
    return "&".join(f"{quote_from_bytes(name)}={quote_from_bytes(value)}" for name, value in fields)


def path(rule, draw):
    """A URL of the route ``rule`` (``/todos/<int:todo_id>/toggle``): an id of any size for an
    ``int`` part, arbitrary text for any other."""

    def part(variable):
        value = draw(st.integers(min_value=0)) if variable[1] == "int" else draw(TEXT)
        return quote_from_bytes(str(value).encode("utf-8", "surrogatepass"))

    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>", part, rule)


def body(draw, token):
    """Request arguments of a POST: arbitrary form fields, the text and the valid token among them
    or not, sent urlencoded or as multipart with a file; or any JSON, the token in the header or not."""
    kind = draw(st.sampled_from(["form", "multipart", "json"]))
    if kind == "json":
        headers = draw(st.sampled_from([{}, {"X-CSRFToken": token}]))
        return kind, {"data": json.dumps(draw(JSON)), "content_type": "application/json", "headers": headers}
    fields = draw(st.sampled_from([[], [(b"csrf_token", token.encode())]]))
    fields += draw(st.lists(st.tuples(st.just(b"text"), VALUE), max_size=1)) + draw(FIELDS)
    if kind == "form":
        return kind, {"data": encoded(fields), "content_type": "application/x-www-form-urlencoded"}
    form = {name.decode("utf-8", "replace"): value.decode("utf-8", "replace") for name, value in reversed(fields)}
    form[draw(st.sampled_from(["text", "csrf_token", "file"]))] = (BytesIO(draw(st.binary())), "f")
    return kind, {"data": form}


@pytest.mark.parametrize("query", ["after=20261399T000000.000000Z.5", "before=00000101T000000.000000Z.1"])
@pytest.mark.parametrize("url", ["/", "/api/todos"])
def test_a_page_cursor_that_names_no_real_time_is_400(client, url, query):
    response = client.get(f"{url}?{query}")
    assert response.status_code == 400 and "page link is not valid" in response.get_data(as_text=True)


def test_the_api_answers_its_errors_as_json(client):
    response = client.get("/api/todos?after=20261399T000000.000000Z.5")
    assert response.status_code == 400 and response.json == {
        "code": 400,
        "name": "Bad Request",
        "description": "That page link is not valid: go back to the first page.",
    }
    assert client.get("/api/nope").json["code"] == 404


def test_the_api_answers_503_as_json_when_the_database_is_unreachable(pg_server):
    url = f"postgresql://postgres@/nosuchdb?host={pg_server}&connect_timeout=1"
    app = create_app({"SECRET_KEY": "x", "DATABASE_URL": url, "DB_POOL_TIMEOUT": 1.0})
    response = app.test_client().get("/api/todos")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.json["description"] == "The database is unavailable. Please try again in a moment."


@pytest.mark.parametrize("text", ["\x00", "a\x00b", "\x00  "], ids=["nul", "inner-nul", "nul-then-blank"])
def test_a_todo_with_a_nul_is_400_and_writes_nothing(client, db, token, text):
    response = client.post("/todos", data={"text": text, "csrf_token": token})
    assert response.status_code == 400 and "cannot contain a NUL character" in response.get_data(as_text=True)
    assert db.execute("SELECT count(*) FROM todo").fetchone() == (0,)


JSON_BODIES = [{"text": 5}, {"text": {"a": 1}}, {"text": ["x", 1]}, [1, 2], "text", None]


def post_json(client, url, body, token):
    """POST ``body`` as JSON to ``url``, the CSRF token in its header (Flask-WTF's X-CSRFToken)."""
    return client.post(url, data=json.dumps(body), content_type="application/json", headers={"X-CSRFToken": token})


@pytest.mark.parametrize("body", JSON_BODIES, ids=repr)
def test_a_json_body_where_the_form_is_expected_is_400_and_writes_nothing(client, db, token, body):
    response = post_json(client, "/todos", body, token)
    assert response.status_code == 400 and "Write something to do." in response.get_data(as_text=True)
    assert db.execute("SELECT count(*) FROM todo").fetchone() == (0,)


@pytest.mark.parametrize("body", JSON_BODIES, ids=repr)
def test_an_action_ignores_a_json_body(client, db, token, body):
    """Toggle's form has no field but the token, which may come in the header: the body is not read."""
    db.execute("INSERT INTO todo (text) VALUES ('walk')")
    assert post_json(client, "/todos/1/toggle", body, token).status_code == 303
    assert db.execute("SELECT text, done FROM todo").fetchall() == [("walk", True)]


def test_a_multipart_part_without_a_name_is_400(client, db, token):
    parts = [
        "Content-Disposition: form-data\r\n\r\nx",
        f'Content-Disposition: form-data; name="csrf_token"\r\n\r\n{token}',
    ]
    body = "".join(f"--b\r\n{part}\r\n" for part in parts) + "--b--\r\n"
    response = client.post("/todos", data=body, content_type="multipart/form-data; boundary=b")
    assert response.status_code == 400 and "A field of the form has no name." in response.get_data(as_text=True)
    assert db.execute("SELECT count(*) FROM todo").fetchone() == (0,)


def test_a_file_where_the_text_is_expected_is_400(client, db, token):
    response = client.post("/todos", data={"text": (BytesIO(b"x"), "todo.txt"), "csrf_token": token})
    assert response.status_code == 400 and "Write something to do." in response.get_data(as_text=True)
    assert db.execute("SELECT count(*) FROM todo").fetchone() == (0,)


@pytest.mark.parametrize(("method", "rule"), ROUTES, ids=[f"{method} {rule}" for method, rule in ROUTES])
@HYPOTHESIS
@given(data=st.data())
def test_no_query_string_or_form_gives_a_5xx(client, token, method, rule, data):
    """Any URL of the route with any query string and, on a POST, any body: a 2xx, 3xx or 4xx;
    the JSON API's errors are JSON."""
    url, query = path(rule, data.draw), encoded(data.draw(QUERY))
    kind, kwargs = body(data.draw, token) if method == "POST" else ("query", {})
    response = client.open(url, method=method, query_string=query, **kwargs)
    event(f"{kind}: {response.status_code}")
    assert response.status_code < 500, (url, query, kwargs, response.get_data(as_text=True)[:500])
    if url.startswith("/api/") and response.status_code >= 400:
        assert response.is_json, response.get_data(as_text=True)[:200]
