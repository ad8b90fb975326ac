"""Bearer tokens: missing, unknown, wrong role, revoked; stored hashed."""

from sqlalchemy import select

from service.extensions import db
from service.models import ApiToken
from tests.support import ADMIN, campaign_doc, error_code


def test_admin_endpoints_refuse_missing_and_unknown_tokens(client, clock):
    """No token or an unknown token is 401 unauthorized; nothing is created."""
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
    ):
        r = client.post("/api/v1/campaigns", json=campaign_doc(), headers=headers)
        assert r.status_code == 401 and error_code(r) == "unauthorized"
        assert r.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/api/v1/campaigns").json == []


def test_kiosk_token_is_403_on_admin_endpoints(client, clock):
    """A kiosk token is valid but may not administer: 403 forbidden."""
    token = client.post("/api/v1/kiosks", json={"name": "居委会大厅"}, headers=ADMIN).json["token"]
    kiosk = {"Authorization": f"Bearer {token}"}
    r = client.post("/api/v1/campaigns", json=campaign_doc(), headers=kiosk)
    assert r.status_code == 403 and error_code(r) == "forbidden"
    assert client.get("/api/v1/kiosks", headers=kiosk).status_code == 403


def test_revoked_kiosk_token_stops_working(client, clock):
    """After revocation the kiosk's token is unknown (401); revoking twice is harmless."""
    k = client.post("/api/v1/kiosks", json={"name": "k"}, headers=ADMIN).json
    kiosk = {"Authorization": f"Bearer {k['token']}"}
    assert client.get("/api/v1/kiosks", headers=kiosk).status_code == 403
    assert client.delete(f"/api/v1/kiosks/{k['id']}", headers=ADMIN).status_code == 204
    assert client.delete(f"/api/v1/kiosks/{k['id']}", headers=ADMIN).status_code == 204
    assert client.get("/api/v1/kiosks", headers=kiosk).status_code == 401
    listed = client.get("/api/v1/kiosks", headers=ADMIN).json
    assert listed[0]["revoked_at"] is not None and "token" not in listed[0]
    r = client.delete("/api/v1/kiosks/999", headers=ADMIN)
    assert r.status_code == 404 and error_code(r) == "not_found"


def test_tokens_are_stored_hashed(client, app, clock):
    """The database holds only a hash: the clear token appears in no column."""
    token = client.post("/api/v1/kiosks", json={"name": "k"}, headers=ADMIN).json["token"]
    with app.app_context():
        rows = db.session.scalars(select(ApiToken)).all()
        assert len(rows) == 1
        assert token not in repr([(r.token_hash, r.name) for r in rows])
        assert len(rows[0].token_hash) == 64


def test_cli_admin_token_works_and_env_token_works(app, client, clock):
    """`votes admin create-token` issues a working admin token, besides ADMIN_TOKEN."""
    runner = app.test_cli_runner()
    result = runner.invoke(args=["admin", "create-token", "--name", "office"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    r = client.post(
        "/api/v1/campaigns", json=campaign_doc(), headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 201
