"""`make run` (`votes up`) as a developer starts it: no PORT, no DATABASE_URL, no REDIS_URL.

Every http URL it prints (the service, the API docs, the kiosk enrolment page, each demo
expert's personal link) must be absolute and answer; the web tier must listen on
127.0.0.1 only; Ctrl-C (SIGINT to the process group, as a terminal sends it) must stop
the whole process tree. Honcho hands the first process PORT=5000 when PORT is unset, so
before the fix the printed http://127.0.0.1:8000/ never answered.

The default port is what is tested, so port 8000 must be free on this machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT, UNSET, descendants, http, stop, wait_until

pytestmark = pytest.mark.slow  # `votes up` as a developer starts it

VOTES = str(Path(sys.executable).parent / "votes")
DEFAULT = "http://127.0.0.1:8000"
URL = re.compile(r"https?://[^\s)>\"']+")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket() as s:  # something on another interface would shadow us too
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) != 0


def listening(port: int) -> set[str]:
    """The local addresses (hex, as in /proc/net/tcp) listening on a TCP port."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hexport = local.rsplit(":", 1)
                if state == "0A" and int(hexport, 16) == port:
                    found.add(address)
    return found


def answers(url: str) -> int:
    """The status of a GET (redirects not followed)."""
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect())
    try:
        with opener.open(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_make_run_serves_every_url_it_prints(tmp_path):
    """`votes up` without PORT: every printed URL is absolute, on 127.0.0.1:8000, and
    answers; the web tier listens on loopback only; Ctrl-C stops every process."""
    if not port_free(8000):
        pytest.fail(
            "Port 8000 is in use on this machine, and `make run` serves on 8000 by default "
            "(the default, with PORT unset, is what this test checks). Stop whatever "
            "listens on 127.0.0.1:8000 (e.g. another `make run`) and run the test again.",
            pytrace=False,
        )
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(VOTES_INSTANCE=str(tmp_path / "instance"), WEB_CONCURRENCY="2")
    log_path = tmp_path / "make-run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [VOTES, "up"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    tree: set[int] = set()

    def output() -> str:
        return log_path.read_text(errors="replace")

    try:
        # Migrations and the demo (a few seconds), then the banner; then the processes.
        wait_until(
            lambda: "Ctrl-C stops everything" in output() or proc.poll() is not None,
            180,
            0.2,
            "the banner of `votes up`",
        )
        assert proc.poll() is None, output()
        printed = output().split("Ctrl-C stops everything")[0]
        urls = URL.findall(printed)
        assert f"{DEFAULT}/" in urls, printed
        assert f"{DEFAULT}/api/openapi.json" in urls, printed
        experts = [u for u in urls if "/login?token=exp_" in u]
        assert len(experts) >= 3, printed  # the demo panels' personal links
        # Absolute, and all on the address that is served; no relative link printed.
        assert all(u.startswith(f"{DEFAULT}/") for u in urls), urls
        assert not re.search(r"(?m)^\s*expert .*: /", printed), printed

        def healthy():
            with contextlib.suppress(OSError):
                return http("GET", f"{DEFAULT}/healthz", timeout=2)[0] == 200
            if proc.poll() is not None:
                raise AssertionError(f"`votes up` exited:\n{output()}")
            return False

        try:
            wait_until(healthy, 60, 0.3, f"{DEFAULT}/healthz")
        except TimeoutError:
            pytest.fail(
                f"`votes up` printed {DEFAULT}/ but nothing answers there within 60 s; "
                f"listening elsewhere? Its output:\n{output()}",
                pytrace=False,
            )
        tree.update([proc.pid, *descendants(proc.pid)])

        statuses = {url: answers(url) for url in urls}
        assert all(200 <= s < 400 for s in statuses.values()), statuses
        assert answers(f"{DEFAULT}/api/openapi.json") == 200
        # Development binds this machine only.
        assert listening(8000) == {"0100007F"}, (listening(8000), output())
    finally:
        survivors = stop(proc, tree)
    # Ctrl-C stopped the whole tree: no process left, the port free again.
    assert survivors == [], f"processes left running after Ctrl-C: {survivors}\n{output()}"
    assert listening(8000) == set()
