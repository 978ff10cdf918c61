"""Where certificate PDFs live: one small interface, a directory under the instance
folder by default. Keys are generated here; an uploader's file name is never used."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import Protocol

from flask import current_app

_KEY = re.compile(r"[0-9a-f]{32}\.pdf")


class CertificateStore(Protocol):
    def save(self, data: bytes) -> tuple[str, str]:
        """Store ``data``; return its new key and SHA-256."""
        ...

    def load(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...


class LocalCertificateStore:
    """Files under one directory, sharded by the key's first two characters. A key
    that is not one this store made is refused, so no path can be smuggled in."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):  # not match(): "$" would let a trailing newline in
            raise KeyError(key)
        return self.root / key[:2] / key

    def save(self, data: bytes) -> tuple[str, str]:
        key = f"{uuid.uuid4().hex}.pdf"
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return key, hashlib.sha256(data).hexdigest()

    def load(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def certificate_store() -> CertificateStore:
    configured = current_app.config.get("CERTIFICATE_DIR")
    root = (
        Path(configured)
        if configured
        else Path(current_app.config["INSTANCE_DIR"]) / "certificates"
    )
    return LocalCertificateStore(root)
