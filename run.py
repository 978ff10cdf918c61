"""WSGI entry point: `flask --app run ...` and `gunicorn run:app`."""

from labshare import create_app

app = create_app()
