from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.common import ApiErrorSchema
from schemas.kiosk import KioskSchema

from ..auth import current_principal, require
from ..domain import kiosks as domain
from ..extensions import db

blp = Blueprint(
    "kiosks", __name__, url_prefix="/api/v1/kiosks", description="自助投票终端 / Voting kiosks"
)
ADMIN: list[dict[str, list[str]]] = [{"bearer": []}]


@blp.route("")
class Kiosks(MethodView):
    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.response(200, KioskSchema(many=True))
    def get(self):
        """List kiosks (tokens are never shown again)."""
        return domain.list_kiosks()

    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.arguments(KioskSchema)
    @blp.response(201, KioskSchema)
    def post(self, data):
        """Register a kiosk; the token is returned once."""
        kiosk, token = domain.register_kiosk(
            data["name"], data.get("location"), current_principal().actor
        )
        db.session.commit()
        return {
            "id": kiosk.id,
            "name": kiosk.name,
            "location": kiosk.location,
            "token": token,
            "created_at": kiosk.created_at,
            "revoked_at": None,
        }


@blp.route("/<int(max=2147483647):kiosk_id>")
class KioskItem(MethodView):
    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.response(204)
    @blp.alt_response(404, schema=ApiErrorSchema, description="not_found")
    def delete(self, kiosk_id):
        """Revoke a kiosk: its token stops working at once."""
        domain.revoke_kiosk(kiosk_id, current_principal().actor)
        db.session.commit()
