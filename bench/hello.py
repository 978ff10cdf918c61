"""The ceiling: a bare Flask app served the same way as LabShare (gunicorn, same
worker count), answering a small JSON document. ``gunicorn 'bench.hello:create_app()'``."""

from __future__ import annotations

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/hello")
    def hello() -> ResponseReturnValue:
        return jsonify({"hello": "world"})

    return app
