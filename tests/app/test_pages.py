"""The list in pages (keyset on (created, id)): walking older and newer pages neither skips nor
repeats a todo, even with writes in between; a bad page link is a 400; and the page's query
uses the index, whatever the table's size (EXPLAIN on 10,000 todos)."""

import re

import pytest

from todo import create_app, todos
from todo.db import close_pool

PAGE = 3


@pytest.fixture
def paged(app, database_url):
    """A client of an app with PAGE todos a page (the app fixture emptied the table)."""
    paged = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": database_url, "PAGE_SIZE": PAGE})
    yield paged.test_client()
    with paged.app_context():
        close_pool()


def seed(db, count):
    """``count`` todos, one second apart, "t0" the oldest."""
    db.execute(
        "INSERT INTO todo (text, created) SELECT 't' || n, now() - (%s - n) * interval '1 second' "
        "FROM generate_series(0, %s - 1) AS n",
        (count, count),
    )


def shown(page):
    """(texts on the page, its Newer link or None, its Older link or None)."""
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html[:500]
    link = lambda rel: (m := re.search(rf'<a href="([^"]+)" rel="{rel}">', html)) and m[1].replace("&amp;", "&")  # noqa: E731
    return re.findall(r'<span class="text">([^<]+)</span>', html), link("prev"), link("next")


def test_pages_walk_older_then_newer_without_skipping_or_repeating(paged, db):
    seed(db, 7)
    texts, newer, older = shown(paged.get("/"))
    assert (texts, newer) == (["t6", "t5", "t4"], None)
    texts, newer, older = shown(paged.get(older))
    assert texts == ["t3", "t2", "t1"] and newer
    texts, newer, last = shown(paged.get(older))
    assert (texts, last) == (["t0"], None)
    texts, newer, _ = shown(paged.get(newer))
    assert texts == ["t3", "t2", "t1"]
    texts, newer, _ = shown(paged.get(newer))
    assert (texts, newer) == (["t6", "t5", "t4"], None), "the newest page is the first page, with no Newer link"


def test_a_todo_added_while_paging_moves_no_page(paged, db):
    seed(db, 6)
    _, _, older = shown(paged.get("/"))
    db.execute("INSERT INTO todo (text) VALUES ('new')")
    assert shown(paged.get(older))[0] == ["t2", "t1", "t0"]


def test_exactly_one_page_has_no_links(paged, db):
    seed(db, PAGE)
    assert shown(paged.get("/")) == (["t2", "t1", "t0"], None, None)


@pytest.mark.parametrize("query", ["before=x", "after=20261122T170000Z.1", "before=20261122T170000.000000Z.x"])
def test_a_bad_page_link_is_400(paged, query):
    page = paged.get(f"/?{query}")
    assert page.status_code == 400 and "page link is not valid" in page.get_data(as_text=True)


@pytest.mark.parametrize(
    "where", ["", "WHERE (created, id) < (now(), 5000)", "WHERE (created, id) > (now() - interval '1 hour', 5000)"]
)
def test_the_page_query_reads_the_index_whatever_the_table_size(db, app, where):
    """At 10,000 todos the page reads PAGE_SIZE + 1 rows from the index: no sort, no table scan."""
    seed(db, 10_000)
    db.execute("ANALYZE todo")
    order = "created, id" if ">" in where else "created DESC, id DESC"
    plan = "\n".join(row[0] for row in db.execute(f"EXPLAIN {todos.COLUMNS} {where} ORDER BY {order} LIMIT 51"))
    assert "Index Scan" in plan and "todo_created_id_idx" in plan, plan
    assert "Sort" not in plan and "Seq Scan" not in plan, plan


def test_the_api_serves_the_same_pages_as_json_with_no_cookie_and_public_caching(paged, db):
    seed(db, 4)
    first = paged.get("/api/todos")
    assert first.status_code == 200 and first.headers["Cache-Control"] == "public, max-age=1"
    assert "Set-Cookie" not in first.headers and "Cookie" not in first.headers.get("Vary", "")
    body = first.get_json()
    assert [t["text"] for t in body["todos"]] == ["t3", "t2", "t1"] and body["newer"] is None
    older = paged.get(f"/api/todos?before={body['older']}").get_json()
    assert [t["text"] for t in older["todos"]] == ["t0"] and older["older"] is None and older["newer"]
    assert paged.get("/api/todos?before=nonsense").status_code == 400
