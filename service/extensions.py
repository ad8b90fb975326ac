"""Extensions, created once and attached in create_app()."""

from typing import TYPE_CHECKING

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

# The models' base. At runtime it is `db.Model` (Base plus Flask-SQLAlchemy's table-name
# and bind mixins, registered in Base.metadata). Type checkers cannot use an attribute as a
# base class, so they see Base, whose mapped-class typing db.Model shares.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model
migrate = Migrate()
babel = Babel()
csrf = CSRFProtect()
# Storage is configured in create_app from REDIS_URL; no connection at import time.
limiter = Limiter(key_func=get_remote_address, default_limits=[])
