"""Encryption of stored account credentials with SECRET_KEY.

SECRET_KEY may hold several keys separated by commas: the first encrypts, every
one decrypts. That is how a key is rotated: put the new key first, keep the old
one after it, run `python bot.py --rotate-secrets` (re-encrypts every stored
password with the first key), then drop the old key.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = logging.getLogger(__name__)

GENERATED_KEY_FILE = "secret.key"


class SecretKeyError(Exception):
    """Stored credentials cannot be decrypted with the configured keys."""


def _fernet(raw: str) -> Fernet:
    # Operators set any long random string; Fernet needs 32 url-safe base64 bytes.
    digest = hashlib.sha256(raw.encode("utf-8")).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class Vault:
    """Encrypts and decrypts short secrets (account passwords)."""

    def __init__(self, keys: list[str]) -> None:
        usable = [k.strip() for k in keys if k.strip()]
        if not usable:
            msg = "at least one key is needed"
            raise ValueError(msg)
        self._multi = MultiFernet([_fernet(k) for k in usable])

    @classmethod
    def from_setting(cls, value: str) -> Vault:
        """A vault from SECRET_KEY's value (comma-separated keys, newest first)."""
        return cls(value.split(","))

    def encrypt(self, plaintext: str) -> str:
        return self._multi.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._multi.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError) as exc:
            msg = "stored credentials do not match SECRET_KEY"
            raise SecretKeyError(msg) from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt with the newest key."""
        try:
            return self._multi.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, ValueError) as exc:
            msg = "stored credentials do not match SECRET_KEY"
            raise SecretKeyError(msg) from exc


class SecretKeyFileError(Exception):
    """The generated key file is empty or damaged (or cannot be written): the message,
    one line, names the file and says what to do."""


def load_or_create_secret_key(configured: str | None, data_dir: Path) -> str:
    """SECRET_KEY from settings, else one generated once into DATA_DIR with mode 0600.

    Raises SecretKeyFileError when the key file is empty or damaged, or cannot be
    written.
    """
    if configured:
        return configured
    path = data_dir / GENERATED_KEY_FILE
    if path.exists():
        return _read_key_file(path)
    try:
        key, created = _create_key_file(path)
    except OSError as exc:
        msg = f"{path}: could not write the generated SECRET_KEY ({exc.strerror or exc})"
        raise SecretKeyFileError(msg) from exc
    if created:
        log.warning(
            "SECRET_KEY is not set: generated one in %s (mode 0600). "
            "Production should set SECRET_KEY and keep it safe.",
            path,
        )
    return key


def _read_key_file(path: Path) -> str:
    try:
        key = path.read_text(encoding="ascii").strip()
    except UnicodeDecodeError:
        key = ""
    except OSError as exc:
        msg = f"{path}: could not read the generated SECRET_KEY ({exc.strerror or exc})"
        raise SecretKeyFileError(msg) from exc
    # Zero bytes: what a file system can leave of a file whose data never reached the disk.
    if not key or not key.isprintable():
        msg = (
            f"{path} is empty or damaged: restore it from a backup, or set SECRET_KEY "
            "(delete the file only if no account password was stored with it)"
        )
        raise SecretKeyFileError(msg)
    return key


def _create_key_file(path: Path) -> tuple[str, bool]:
    """Generate the key into a private temporary file beside `path`, flush it to disk,
    then link it into place: a crash at any moment leaves either no key file or a whole
    one. Returns the key in the file and whether this call created it (False: another
    process was faster; its key is the one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            # A link, unlike a rename, never replaces a key another process just made.
            os.link(temporary, path)
        except FileExistsError:
            return _read_key_file(path), False
        _fsync_directory(path.parent)
    finally:
        os.unlink(temporary)
    return key, True


def _fsync_directory(directory: Path) -> None:
    """Make the new directory entry durable (POSIX; nothing to do elsewhere)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
