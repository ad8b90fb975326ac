"""gunicorn entry point: `gunicorn -c gunicorn.conf.py service.wsgi:app`."""

from . import create_app

app = create_app()
