"""Staff accounts: one-time set-password links, log-in, lockout, sessions, log-out."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.console_support import PASSWORD, console_token, csrf, login, make_staff


def _audit_actors(app, action):
    from service.extensions import db
    from service.models import AuditEvent

    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.actor).where(AuditEvent.action == action)))


def test_cli_staff_add_prints_a_one_time_link_that_sets_the_password(app, client, clock):
    result = app.test_cli_runner().invoke(
        args=["staff", "add", "王芳", "--role", "admin", "--base-url", "https://votes.example"]
    )
    assert result.exit_code == 0, result.output
    link = result.output.strip().splitlines()[-1]
    assert link.startswith("https://votes.example/console/set-password/otl_")
    path = link.removeprefix("https://votes.example")

    page = client.get(path)
    assert page.status_code == 200 and "王芳" in page.text
    short = client.post(
        path, data={"password": "short", "repeat": "short", "csrf_token": csrf(page.data)}
    )
    assert short.status_code == 422 and "至少 10 个字符" in short.text
    done = client.post(
        path, data={"password": PASSWORD, "repeat": PASSWORD, "csrf_token": csrf(page.data)}
    )
    assert done.status_code == 200 and "密码已设置" in done.text
    # Single use.
    assert client.get(path).status_code == 403
    assert login(client, "王芳").status_code == 302
    assert client.get("/console/").status_code == 200
    assert _audit_actors(app, "staff.login") == ["staff:王芳"]


def test_set_password_link_expires_after_24_hours(app, client, clock):
    token = make_staff(app, "李四", "manager", password=None)
    clock.set(clock.at + timedelta(hours=24))
    assert client.get(f"/console/set-password/{token}").status_code == 403
    assert client.get("/console/set-password/otl_forged").status_code == 403


def test_a_new_link_replaces_the_old_one(app, client, clock):
    old = make_staff(app, "李四", "manager", password=None)
    result = app.test_cli_runner().invoke(args=["staff", "link", "李四"])
    assert result.exit_code == 0, result.output
    assert client.get(f"/console/set-password/{old}").status_code == 403
    new_path = result.output.strip().split("/", 3)[3]
    assert client.get("/" + new_path).status_code == 200


def test_login_cookie_is_httponly_samesite_strict_and_secure_in_production(
    app, client, clock, monkeypatch
):
    make_staff(app, "admin1", "admin")
    response = login(client, "admin1")
    assert response.status_code == 302 and response.location == "/console/"
    cookie = response.headers["Set-Cookie"]
    assert "votes_console=stf_" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # development: plain http on localhost
    monkeypatch.setitem(app.config, "CONSOLE_COOKIE_SECURE", True)
    fresh = app.test_client()
    assert "Secure" in login(fresh, "admin1").headers["Set-Cookie"]


def test_production_config_marks_the_console_cookie_secure(monkeypatch):
    from service.config import Config

    monkeypatch.setenv("VOTES_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "s" * 8 + "0123456789abcdefghijklmnopqrstuv")
    monkeypatch.setenv("VOTER_PEPPER", "p" * 8 + "0123456789abcdefghijklmnopqrstuv")
    assert Config().CONSOLE_COOKIE_SECURE is True


def test_wrong_password_then_lockout(app, client, clock):
    make_staff(app, "admin1", "admin")
    for _ in range(4):
        r = login(client, "admin1", "wrong password!")
        assert r.status_code == 401 and "姓名或密码错误" in r.text
    fifth = login(client, "admin1", "wrong password!")
    assert fifth.status_code == 401
    # Locked now: even the right password is refused for 15 minutes.
    locked = login(client, "admin1")
    assert locked.status_code == 423 and "锁定" in locked.text
    clock.set(clock.at + timedelta(minutes=15))
    assert login(client, "admin1").status_code == 302


def test_unknown_name_and_unset_password_are_refused_alike(app, client, clock):
    make_staff(app, "newbie", "manager", password=None)
    assert login(client, "nobody").status_code == 401
    assert login(client, "newbie", "").status_code == 401


def test_login_is_rate_limited_per_address(app, client, clock, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_CONSOLE_LOGIN", "3 per minute")
    codes = [login(client, f"x{i}", "nope nope nope").status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]


def test_idle_session_expires(app, client, clock):
    make_staff(app, "admin1", "admin")
    login(client, "admin1")
    clock.set(clock.at + timedelta(minutes=29))
    assert client.get("/console/").status_code == 200  # activity moves the idle clock
    clock.set(clock.at + timedelta(minutes=29))
    assert client.get("/console/").status_code == 200
    clock.set(clock.at + timedelta(minutes=30))
    r = client.get("/console/")
    assert r.status_code == 302 and r.location.startswith("/console/login?next=")


def test_logout_ends_the_session_on_the_server(app, client, clock):
    make_staff(app, "admin1", "admin")
    login(client, "admin1")
    cookie = client.get_cookie("votes_console", path="/console").value
    token = console_token(client)
    r = client.post("/console/logout", data={"csrf_token": token})
    assert r.status_code == 302 and r.location == "/console/login"
    # The old cookie, replayed, is dead.
    other = app.test_client()
    other.set_cookie("votes_console", cookie, path="/console")
    assert other.get("/console/").status_code == 302
    assert _audit_actors(app, "staff.logout") == ["staff:admin1"]


def test_forged_session_cookie_gets_nothing(app, client, clock):
    client.set_cookie("votes_console", "stf_forged", path="/console")
    r = client.get("/console/")
    assert r.status_code == 302 and "/console/login" in r.location


def test_login_redirects_only_inside_the_console(app, client, clock):
    make_staff(app, "admin1", "admin")
    page = client.get("/console/login?next=https://evil.example/")
    r = client.post(
        "/console/login",
        data={
            "name": "admin1",
            "password": PASSWORD,
            "next": "https://evil.example/",
            "csrf_token": csrf(page.data),
        },
    )
    assert r.location == "/console/"


def test_console_home_lists_campaigns_in_both_languages(app, client, make_campaign):
    make_campaign("c1")
    make_staff(app, "admin1", "admin")
    login(client, "admin1")
    zh = client.get("/console/")
    assert zh.status_code == 200 and "评选活动" in zh.text and "c1" in zh.text
    assert 'lang="zh-CN"' in zh.text
    en = client.get("/console/?lang=en")
    assert 'lang="en"' in en.text and "Campaigns" in en.text
    assert "<script" not in zh.text and "http://" not in zh.text.replace(
        'href="http://localhost', ""
    )
