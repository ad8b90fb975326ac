"""Run deploy/nginx/votes.conf outside the nginx image: `nginx -t` (make lint) or a test.

The file is http-level (the official image includes it from its own nginx.conf). This
writes a minimal main configuration around it into a directory of its own (pid, logs
and temporary files there too), with a self-signed certificate made by openssl, and
replaces only what differs outside Docker: the `web:8000` upstream, the certificate
paths and the listen ports.

    python3 deploy/nginx/check.py            # nginx -t with the config of this checkout
    NGINX=/usr/sbin/nginx python3 deploy/nginx/check.py

tests/processes.py uses render() to run nginx in front of the real gunicorn.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONF = HERE / "votes.conf"
DEFAULT_NGINX = "/usr/sbin/nginx"


def nginx_binary() -> str | None:
    return (
        os.environ.get("NGINX")
        or shutil.which("nginx")
        or (DEFAULT_NGINX if Path(DEFAULT_NGINX).exists() else None)
    )


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return cert, key


def render(
    workdir: Path,
    upstream: str = "127.0.0.1:8000",
    http_port: int = 8080,
    https_port: int = 8443,
) -> Path:
    """Write nginx.conf (and votes.conf, certs) into workdir; return the main file."""
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed_cert(workdir / "certs")
    text = CONF.read_text()
    replacements = {
        "http://web:8000": f"http://{upstream}",
        "/etc/nginx/certs/fullchain.pem": str(cert),
        "/etc/nginx/certs/privkey.pem": str(key),
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
    }
    for old, new in replacements.items():
        if old not in text:
            raise ValueError(f"{CONF} no longer contains {old!r}: update check.py")
        text = text.replace(old, new)
    (workdir / "votes.conf").write_text(text)
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / "tmp" / name).mkdir(parents=True, exist_ok=True)
    # As root the workers would switch to `nobody`, who cannot enter a private temp dir.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    main = workdir / "nginx.conf"
    main.write_text(
        f"""{user}worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {workdir}/access.log;
    client_body_temp_path {workdir}/tmp/client_body;
    proxy_temp_path {workdir}/tmp/proxy;
    fastcgi_temp_path {workdir}/tmp/fastcgi;
    uwsgi_temp_path {workdir}/tmp/uwsgi;
    scgi_temp_path {workdir}/tmp/scgi;
    include {workdir}/votes.conf;
}}
"""
    )
    return main


def main() -> int:
    nginx = nginx_binary()
    if nginx is None:
        print("nginx not installed: deploy/nginx/votes.conf not checked (apt-get install nginx)")
        return 0 if os.environ.get("NGINX_OPTIONAL") == "1" else 1
    with tempfile.TemporaryDirectory(prefix="votes-nginx-") as tmp:
        conf = render(Path(tmp))
        result = subprocess.run(
            [nginx, "-t", "-p", tmp, "-c", str(conf)], capture_output=True, text=True
        )
    sys.stderr.write(result.stderr)
    if result.returncode == 0:
        print("deploy/nginx/votes.conf: valid (nginx -t)")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
