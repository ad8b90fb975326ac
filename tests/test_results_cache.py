"""Caching the published results (issue 18): the page per language and text size (大字版),
its gzip variant, the JSON and CSV, the latest version looked up at most once per
HOT_CACHE_SECONDS per process, and links with a messenger's tracking parameters.

"Another process" (the worker that publishes, another gunicorn worker) is played by a
second app instance: its per-process caches are its own, so publishing there does not
clear this app's. Time is stepped with HOT_CACHE_CLOCK: no sleeps.
"""

from __future__ import annotations

import gzip
import json
import re

import pytest

from service import create_app, http_cache
from service.config import TestConfig
from service.domain import rankings
from service.domain.campaigns import get_campaign
from service.domain.publications import publish_run
from service.extensions import db
from service.security import HEADERS
from tests.support import Monotonic, add_scores, hot_clock
from tests.test_results_page import ENTRIES, SELECTION, VOTES, cast, publish

PAGE = "/results/c1"
JSON = "/api/v1/campaigns/c1/results"
CSV = "/api/v1/campaigns/c1/results.csv"
GZIP = {"Accept-Encoding": "gzip, deflate, br"}


@pytest.fixture
def c1(app, make_campaign) -> str:
    """test_results_page's campaign c1 (six entries, ballots and reviews), unpublished."""
    make_campaign("c1", entries=ENTRIES, selection=SELECTION)
    cast(app, "c1", VOTES)
    add_scores(app, "c1", {code: [(30, 15)] * 3 for code in VOTES})
    return "c1"


@pytest.fixture
def v1(app, c1) -> str:
    """c1 with its version 1 published."""
    publish(app, c1)
    return c1


@pytest.fixture
def ticks(app) -> Monotonic:
    return hot_clock(app)


@pytest.fixture
def other_process():
    """Another process's app: the same database, its own per-process caches."""
    other = create_app(TestConfig())
    yield other
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


def _publish_elsewhere(other, slug: str) -> None:
    with other.app_context():
        run = rankings.create_run(get_campaign(slug), "test")
        db.session.commit()
        rankings.compute(run)
        db.session.commit()
        publish_run(get_campaign(slug).id, run.id, actor="test")
        db.session.commit()


def _version(r) -> int:
    found = re.search(r"第 (\d+) 版公示", r.text)
    assert found, r.text[:500]
    return int(found.group(1))


def _is_large(r) -> bool:
    return bool(re.search(r'<html lang="[^"]+" class="large">', r.text))


# --- text size (大字版) -----------------------------------------------------------------


def test_large_text_and_normal_pages_are_never_served_for_each_other(app, v1):
    """The text size is part of the key: a visitor who chose 大字版 gets the large page
    even when the normal one is cached, and the next visitor gets the normal page even
    when the large one is cached (both ways were mixed up before)."""
    normal, large, fresh = app.test_client(), app.test_client(), app.test_client()
    first = normal.get(PAGE)
    assert first.status_code == 200 and not _is_large(first)
    chose = large.get(f"{PAGE}?size=large")
    assert chose.status_code == 200 and _is_large(chose)
    # The choice is kept in the session: the plain URL is the large page for this visitor.
    again = large.get(PAGE)
    assert _is_large(again) and "标准字" in again.text
    assert again.headers["ETag"] != first.headers["ETag"]
    # And the large copy, now cached, is not what the next visitor gets.
    http_cache.clear_local()
    assert _is_large(large.get(PAGE))
    other = fresh.get(PAGE)
    assert not _is_large(other) and "大字版" in other.text
    assert other.headers["ETag"] == first.headers["ETag"]
    # Back to the normal size.
    assert not _is_large(large.get(f"{PAGE}?size=normal"))
    assert large.get(PAGE).headers["ETag"] == first.headers["ETag"]


def test_each_language_and_text_size_is_its_own_cached_page(app, v1):
    seen = {}
    for lang in ("zh", "en"):
        for size in ("normal", "large"):
            client = app.test_client()
            r = client.get(f"{PAGE}?lang={lang}&size={size}")
            assert r.status_code == 200
            assert ('<html lang="en"' in r.text) is (lang == "en")
            assert _is_large(r) is (size == "large")
            # The same page again, from the cache, for the session's language and size.
            again = client.get(PAGE)
            assert again.headers["X-Cache"] in ("memory", "redis")
            assert again.headers["ETag"] == r.headers["ETag"] and again.data == r.data
            seen[lang, size] = r.headers["ETag"]
    assert len(set(seen.values())) == 4


def test_the_language_is_remembered_without_a_new_cookie_per_page(client, v1):
    """?lang=en sets the session once; later pages do not send the cookie again."""
    assert "Set-Cookie" in client.get(f"{PAGE}?lang=en").headers
    r = client.get(PAGE)
    assert '<html lang="en"' in r.text and "Set-Cookie" not in r.headers
    assert "Set-Cookie" not in client.get(f"{PAGE}?lang=en").headers


# --- gzip -------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [PAGE, JSON, CSV])
def test_gzip_variant_is_cached_with_its_own_etag_and_vary(client, v1, url):
    plain = client.get(url)
    packed = client.get(url, headers=GZIP)
    assert plain.status_code == packed.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.data) == plain.data
    assert len(packed.data) < len(plain.data)
    assert packed.headers["Content-Type"] == plain.headers["Content-Type"]
    # Two representations: two strong ETags, and shared caches told to keep them apart.
    assert re.fullmatch(r'"[0-9a-f]{32}"', packed.headers["ETag"])
    assert packed.headers["ETag"] != plain.headers["ETag"]
    for r in (plain, packed):
        assert "Accept-Encoding" in r.headers["Vary"]
        assert r.headers["Cache-Control"] == "public, max-age=5, must-revalidate"
    # Kept, not compressed again.
    again = client.get(url, headers=GZIP)
    assert again.headers["X-Cache"] in ("memory", "redis") and again.data == packed.data
    # 304 for the variant the client holds.
    not_modified = client.get(url, headers={**GZIP, "If-None-Match": packed.headers["ETag"]})
    assert not_modified.status_code == 304 and not_modified.data == b""
    assert not_modified.headers["ETag"] == packed.headers["ETag"]
    assert "Accept-Encoding" in not_modified.headers["Vary"]
    # A client that refuses gzip, or holds the other variant, gets the plain body.
    for headers in ({"Accept-Encoding": "gzip;q=0, identity"}, {"Accept-Encoding": "identity"}):
        r = client.get(url, headers=headers)
        assert "Content-Encoding" not in r.headers and r.data == plain.data
    r = client.get(url, headers={"If-None-Match": packed.headers["ETag"]})
    assert r.status_code == 200 and r.data == plain.data


def test_gzip_variant_from_redis_in_another_process(client, v1):
    """Another worker (here: this one after forgetting its copies) gets the compressed
    bytes from Redis, the same bytes under the same ETag."""
    first = client.get(PAGE, headers=GZIP)
    http_cache.clear_local()
    second = client.get(PAGE, headers=GZIP)
    assert second.headers["X-Cache"] == "redis"
    assert second.data == first.data and second.headers["ETag"] == first.headers["ETag"]


# --- JSON and CSV -----------------------------------------------------------------------


def test_json_and_csv_are_cached_and_correct(app, client, v1):
    doc = client.get(JSON).json
    with app.app_context():
        stored = rankings.digest({k: v for k, v in doc.items() if k != "digest"})
    assert doc["version"] == 1 and stored == doc["digest"] and len(doc["rows"]) == 6
    again = client.get(JSON)
    assert again.headers["X-Cache"] in ("memory", "redis") and again.json == doc
    csv = client.get(CSV)
    assert csv.headers["Content-Disposition"] == 'attachment; filename="c1-results-v1.csv"'
    text = csv.data.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("rank,code,title")
    assert [line.split(",")[1] for line in text.splitlines()[1:]] == [
        row["code"] for row in doc["rows"]
    ]
    assert client.get(CSV).headers["X-Cache"] in ("memory", "redis")
    packed = client.get(JSON, headers=GZIP)
    assert json.loads(gzip.decompress(packed.data)) == doc


def test_cached_answers_carry_the_security_headers_once(client, v1):
    for url in (PAGE, JSON, CSV):
        client.get(url)
        for r in (client.get(url), client.get(url, headers=GZIP)):
            for name, value in HEADERS.items():
                assert r.headers.getlist(name) == [value], (url, name)


# --- a new publication, within a second --------------------------------------------------


def test_a_publication_made_by_another_process_shows_within_a_second(
    app, client, v1, ticks, other_process
):
    """The latest version is looked up at most once per HOT_CACHE_SECONDS per process:
    a version published by the worker is served by this process within a second."""
    page, doc, csv = client.get(PAGE), client.get(JSON), client.get(CSV)
    assert _version(page) == 1 and doc.json["version"] == 1
    _publish_elsewhere(other_process, "c1")
    ticks.at += 0.5  # within the second: still the version this process knew
    assert _version(client.get(PAGE)) == 1
    assert client.get(JSON).json["version"] == 1
    ticks.at += 0.6  # more than HOT_CACHE_SECONDS after the lookup
    new = client.get(PAGE, headers={"If-None-Match": page.headers["ETag"]})
    assert new.status_code == 200 and _version(new) == 2
    assert new.headers["ETag"] != page.headers["ETag"]
    assert client.get(JSON, headers={"If-None-Match": doc.headers["ETag"]}).json["version"] == 2
    r = client.get(CSV, headers={"If-None-Match": csv.headers["ETag"]})
    assert r.status_code == 200 and r.headers["Content-Disposition"].endswith('-v2.csv"')


def test_a_publication_made_in_this_process_shows_at_once(app, client, v1, ticks):
    assert _version(client.get(PAGE)) == 1
    publish(app, "c1")
    assert _version(client.get(PAGE)) == 2 and client.get(JSON).json["version"] == 2


def test_first_publication_by_another_process_shows_within_a_second(
    app, client, c1, ticks, other_process
):
    """ "Not published yet" is kept no longer than the latest version is."""
    assert client.get(PAGE).status_code == 404
    _publish_elsewhere(other_process, "c1")
    ticks.at += 1.0
    assert client.get(PAGE).status_code == 200 and client.get(JSON).json["version"] == 1


def test_csv_of_a_first_publication_this_process_does_not_know_of_yet(
    app, client, c1, ticks, other_process
):
    """Within the second in which this process still thinks nothing is published, the
    CSV of a publication made elsewhere is served uncached, not a 500."""
    assert client.get(CSV).status_code == 404
    _publish_elsewhere(other_process, "c1")
    r = client.get(CSV)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-cache"
    assert r.headers["Content-Disposition"] == 'attachment; filename="c1-results-v1.csv"'
    assert r.data.decode("utf-8-sig").startswith("rank,code,title")
    ticks.at += 1.0
    assert client.get(CSV).headers["Cache-Control"] == "public, max-age=5, must-revalidate"


def test_without_the_hot_cache_every_request_looks_the_version_up(
    app, client, v1, ticks, other_process
):
    app.config["HOT_CACHE_SECONDS"] = 0
    try:
        assert _version(client.get(PAGE)) == 1
        _publish_elsewhere(other_process, "c1")
        assert _version(client.get(PAGE)) == 2
    finally:
        app.config["HOT_CACHE_SECONDS"] = 1.0


# --- tracking parameters ------------------------------------------------------------------


def test_tracking_parameters_are_served_from_the_cache(client, v1):
    """A link shared in WeChat comes back as ?from=singlemessage&isappinstalled=0: the
    same page, from the cache, and the parameters are not copied into its links."""
    plain = client.get(PAGE)
    client.get(JSON), client.get(CSV)
    for query in (
        "from=singlemessage&isappinstalled=0",
        "from=timeline",
        "utm_source=wechat&utm_medium=share",
        "token=secret-looking",
    ):
        r = client.get(f"{PAGE}?{query}")
        assert r.status_code == 200, query
        assert r.headers["X-Cache"] in ("memory", "redis"), query
        assert r.headers["ETag"] == plain.headers["ETag"] and r.data == plain.data, query
        for j in (client.get(f"{JSON}?{query}"), client.get(f"{CSV}?{query}")):
            assert j.status_code == 200 and j.headers["X-Cache"] in ("memory", "redis"), query


def test_a_page_first_rendered_for_a_tracking_link_has_clean_links(client, v1):
    r = client.get(f"{PAGE}?from=singlemessage&isappinstalled=0&token=secret-looking")
    assert r.status_code == 200 and r.headers["X-Cache"] == "render"
    assert "singlemessage" not in r.text and "secret-looking" not in r.text
    assert 'href="/results/c1?size=large"' in r.text
    assert 'href="/results/c1?lang=en"' in r.text
    assert client.get(PAGE).data == r.data


# --- the bench report -----------------------------------------------------------------------


def test_bench_report_has_a_json_results_row_with_its_targets():
    """bench/results_page.py measures the JSON results too (``out["json"]``); the report
    prints its row and judges it by the page's targets."""
    from bench.report import markdown, targets

    wrk = {"rps": 1500.0, "p50_ms": 5.0, "p90_ms": 9.0, "p99_ms": 20.0, "requests": 45000}
    section = {
        "connections": 16,
        "wrk_threads": 2,
        "service": wrk,
        "bare": {**wrk, "rps": 3000.0},
        "ratio": 0.5,
        "non201": 0,
        "bare_non201": 0,
        "entries": 90,
        "path": "/results/results-90",
        "json": {
            "path": "/api/v1/campaigns/results-90/results",
            "rps": 900.0,
            "p50_ms": 6.0,
            "p99_ms": 60.0,
            "requests": 27000,
            "non200": 0,
            "bare_rps": 3000.0,
            "ratio": 0.3,
        },
        "page_bytes": 400_000,
        "page_gzip_bytes": 40_000,
        "page_gzip": {"rps": 1800.0, "p50_ms": 4.0, "p99_ms": 15.0, "requests": 54000},
    }
    results = {
        "machine": dict.fromkeys(
            ("date", "commit", "cores", "cpu", "memory", "python", "postgres", "web_concurrency"),
            "x",
        ),
        "settings": {"rounds": 3},
        "elapsed_s": 1.0,
        "sections": {"results": section},
    }
    met = dict(targets(results))
    assert met["results page ≥ 1,000 req/s"] and met["results page p99 < 50 ms"]
    assert not met["results JSON ≥ 1,000 req/s"] and not met["results JSON p99 < 50 ms"]
    assert met["results JSON: no answer other than 200"]
    text = markdown(results)
    row = next(line for line in text.splitlines() if "JSON results, same campaign" in line)
    assert "900 req/s" in row and "p99 60.0 ms" in row and row.endswith("| **missed** |")
    row = next(line for line in text.splitlines() if "Accept-Encoding: gzip" in line)
    assert "400,000 bytes, 40,000 gzipped" in row and "1,800 req/s" in row
