"""Release order comes from the release history, never from the time a release id names: a
release whose id names an earlier time than the one serving (an operator whose clock is behind)
is listed as the newest, and a rollback from it goes to the release that served before it."""

from pathlib import Path

import pytest

from tests.release.conftest import listed, release, release_tool
from tests.release.test_release import current, kept

pytestmark = pytest.mark.destructive


@pytest.fixture(scope="module")
def skewed(clone, host, app_name):
    """(the release serving before, a release deployed after it whose id names 2000-01-01); the
    release serving before is serving again afterwards, and the skewed one is removed."""
    before = current(host)

    def touch(tree):
        Path(tree, "app/todo/static/skew.txt").write_text("a release from a clock that is behind\n")

    commit = clone.commit("app: a release id from a clock that is behind", touch)
    skewed = f"20000101-000000-{commit[:7]}"
    assert skewed < min(kept(host)), "the skewed id must sort before every kept one"
    deployed = release_tool(app_name, "deploy", "--commit", commit, "--ref", "skew", "--release", skewed,
                            clone=clone, commit=commit)  # fmt: skip
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    assert current(host) == skewed
    yield before, skewed
    if current(host) != before:
        host.check_output(f"/usr/local/sbin/{app_name}-release rollback {before}")
    host.check_output(f"/usr/local/sbin/{app_name}-release discard {skewed}")


def test_list_orders_releases_by_history_not_by_id(skewed, host, app_name):
    before, newest = skewed
    releases, target = listed(host, app_name)
    assert releases[:2] == [newest, before], releases
    assert target == before


def test_rollback_goes_to_the_release_that_served_before_whatever_the_ids_say(skewed, clone, host):
    before, newest = skewed
    result = release(clone, "--rollback")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert current(host) == before
    assert newest in kept(host), "a rollback keeps the release it leaves"
