"""The todo app against a real PostgreSQL: every route, good and bad input."""

import re
import time

import psycopg
import pytest

from todo import create_app
from todo.db import close_pool, connection, cut_off_after


def csrf_token(client):
    """Fetch the list page and return its CSRF token."""
    page = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def add(client, text):
    """POST the add form with a valid token."""
    return client.post("/todos", data={"text": text, "csrf_token": csrf_token(client)})


def rows(db):
    """All todos in the database as (text, done), oldest first."""
    return db.execute("SELECT text, done FROM todo ORDER BY id").fetchall()


def test_create_app_refuses_to_start_without_secret_key(database_url):
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"DATABASE_URL": database_url})


def test_create_app_refuses_to_start_without_database_url():
    with pytest.raises(RuntimeError, match="DATABASE_URL"):
        create_app({"SECRET_KEY": "x"})


def test_settings_come_from_environment(monkeypatch, database_url):
    monkeypatch.setenv("SECRET_KEY", "1e5")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("RELEASE_ID", "r42")
    app = create_app()
    assert app.config["SECRET_KEY"] == "1e5"  # stays a string
    assert app.config["RELEASE"] == "r42"


def test_index_empty(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "Nothing to do." in response.get_data(as_text=True)


def test_add_then_listed_newest_first(client, db):
    assert add(client, "first").status_code == 303
    assert add(client, "  second  ").status_code == 303
    page = client.get("/").get_data(as_text=True)
    assert page.index("second") < page.index("first")
    assert rows(db) == [("first", False), ("second", False)]


def test_add_follows_redirect_with_flash(client):
    response = client.post("/todos", data={"text": "x", "csrf_token": csrf_token(client)}, follow_redirects=True)
    assert response.status_code == 200
    assert "Added." in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "Write something to do."), ("   ", "Write something to do."), ("x" * 501, "between 1 and 500")],
    ids=["empty", "blank", "too-long"],
)
def test_add_bad_text_is_400_and_writes_nothing(client, db, text, message):
    response = add(client, text)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert rows(db) == []


def test_add_500_characters_is_accepted(client, db):
    assert add(client, "y" * 500).status_code == 303
    assert rows(db) == [("y" * 500, False)]


def test_add_without_csrf_token_is_400_and_writes_nothing(client, db):
    response = client.post("/todos", data={"text": "sneaky"})
    assert response.status_code == 400
    assert rows(db) == []


def test_toggle_marks_done_and_back(client, db):
    add(client, "walk")
    token = csrf_token(client)
    assert client.post("/todos/1/toggle", data={"csrf_token": token}).status_code == 303
    assert rows(db) == [("walk", True)]
    assert 'class="done"' in client.get("/").get_data(as_text=True)
    client.post("/todos/1/toggle", data={"csrf_token": token})
    assert rows(db) == [("walk", False)]


def test_delete(client, db):
    add(client, "gone")
    assert client.post("/todos/1/delete", data={"csrf_token": csrf_token(client)}).status_code == 303
    assert rows(db) == []


@pytest.mark.parametrize("action", ["toggle", "delete"])
def test_unknown_todo_is_404(client, db, action):
    add(client, "keep")
    response = client.post(f"/todos/999/{action}", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 404
    assert "There is no todo 999." in response.get_data(as_text=True)
    assert rows(db) == [("keep", False)]


@pytest.mark.parametrize("action", ["toggle", "delete"])
def test_action_without_csrf_token_is_400_and_changes_nothing(client, db, action):
    add(client, "keep")
    assert client.post(f"/todos/1/{action}").status_code == 400
    assert rows(db) == [("keep", False)]


@pytest.mark.parametrize(("method", "path"), [("get", "/todos"), ("put", "/todos"), ("get", "/todos/1/delete")])
def test_wrong_method_is_405(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert "405 Method Not Allowed" in response.get_data(as_text=True)


def test_unknown_page_is_404_page(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert "Back to the list" in response.get_data(as_text=True)


def test_body_over_limit_is_413(client, db):
    response = client.post("/todos", data={"text": "z" * 20000, "csrf_token": csrf_token(client)})
    assert response.status_code == 413
    assert rows(db) == []


def test_xss_payload_is_shown_as_text(client):
    add(client, "<script>alert(1)</script>")
    page = client.get("/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_healthz_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_healthz_503_when_database_unreachable(pg_server):
    app = create_app(
        {
            "SECRET_KEY": "x",
            "DATABASE_URL": f"postgresql://postgres@/nosuchdb?host={pg_server}&connect_timeout=1",
            "DB_POOL_TIMEOUT": 1.0,
        }
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["status"] == "unavailable"
    page = app.test_client().get("/")
    assert page.status_code == 503
    assert "database is unavailable" in page.get_data(as_text=True)


def test_version_names_release_and_instance(database_url):
    app = create_app({"SECRET_KEY": "x", "DATABASE_URL": database_url, "RELEASE": "r1", "INSTANCE": "todo-1"})
    body = app.test_client().get("/version").json
    assert body["release"] == "r1" and body["instance"] == "todo-1" and body["pid"] > 0


def test_query_past_deadline_is_cut_off_fast(database_url):
    """A server that never answers (here: a sleeping query, no statement_timeout) is cut off
    by the client-side deadline with OperationalError, answered as a 503."""
    app = create_app({"SECRET_KEY": "x", "DATABASE_URL": database_url, "DB_QUERY_TIMEOUT": 0.5})
    with app.app_context():
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError), connection() as conn:
            conn.execute("SELECT pg_sleep(5)")
        assert time.monotonic() - started < 2
        # The pool replaced the cut connection: the next use works.
        with connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        close_pool()


def test_connection_is_not_cut_after_its_block_ends(db):
    with cut_off_after(db, 0.3):
        db.execute("SELECT 1")
    time.sleep(0.5)  # past the deadline of the block that ended
    assert db.execute("SELECT 1").fetchone() == (1,)


def test_session_cookie_is_secure_httponly_samesite(client):
    cookie = client.get("/").headers["Set-Cookie"]
    flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert "secure" in flags and "httponly" in flags and flags["samesite"] == "SameSite=Lax"


@pytest.mark.parametrize("referer", [None, "https://evil.example/"])
def test_https_post_without_same_origin_referer_is_400_and_writes_nothing(client, db, referer):
    token = csrf_token(client)
    client.environ_base.pop("HTTP_REFERER")
    headers = {"Referer": referer} if referer else {}
    response = client.post("/todos", data={"text": "forged", "csrf_token": token}, headers=headers)
    assert response.status_code == 400 and rows(db) == []


def test_debug_is_off(app):
    assert not app.debug and not app.config["DEBUG"]


@pytest.mark.parametrize(("fallbacks", "status"), [("old-key", 303), ("", 400)], ids=["with-fallback", "without"])
def test_form_loaded_before_a_secret_key_rotation_posts_with_the_old_key_as_fallback(app, db, fallbacks, status):
    """A page loaded under the old key, posted after the rotation: accepted while the old key is a
    fallback (SECRET_KEY_FALLBACKS, as scripts/secrets rotate sets it), refused without."""
    old = app.test_client()
    old.environ_base["HTTP_REFERER"] = "https://localhost/"
    app.config["SECRET_KEY"] = "old-key"
    token, cookie = csrf_token(old), old.get_cookie("session").value
    rotated = create_app(
        {"SECRET_KEY": "new-key", "SECRET_KEY_FALLBACKS": fallbacks, "DATABASE_URL": app.config["DATABASE_URL"]}
    )
    new = rotated.test_client()
    new.environ_base["HTTP_REFERER"] = "https://localhost/"
    new.set_cookie("session", cookie)
    response = new.post("/todos", data={"text": "across the rotation", "csrf_token": token})
    assert response.status_code == status
    assert rows(db) == ([("across the rotation", False)] if status == 303 else [])
    with rotated.app_context():
        close_pool()
