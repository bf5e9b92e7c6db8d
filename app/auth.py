"""Accounts from API keys (``X-API-Key``), and the read-only node guard."""

from __future__ import annotations

from flask import Request, current_app, request

from app.errors import ApiError
from engine.types import ANONYMOUS
from settings import Settings


def account_for_key(settings: Settings, api_key: str | None) -> str | None:
    """The account an API key names, or None when the key is unknown."""
    if not api_key:
        return None
    return settings.api_keys.get(api_key)


def current_account(required: bool, req: Request | None = None,
                    settings: Settings | None = None) -> str:
    """The caller's account. ``required``: this endpoint needs a key when auth is on.
    ``req`` and ``settings``: the view's, when it has them (app.api.common says why)."""
    if settings is None:
        settings = current_app.config["SETTINGS"]
    key = (request if req is None else req).headers.get("X-API-Key")
    if key:
        account = account_for_key(settings, key)
        if account is None:
            raise ApiError(401, "INVALID_API_KEY", "The X-API-Key is not valid.")
        return account
    if required and settings.auth_required:
        raise ApiError(401, "AUTH_REQUIRED", "This endpoint needs an X-API-Key header.")
    return ANONYMOUS


def owner_filter(account: str) -> str | None:
    """Whose orders the caller may see and cancel: only its own when auth is on."""
    return account if current_app.config["SETTINGS"].auth_required else None


def init_app(app) -> None:
    @app.before_request
    def _read_only_guard():
        if app.config["SETTINGS"].read_only and request.method in {
            "POST", "PUT", "PATCH", "DELETE"
        }:
            raise ApiError(403, "READ_ONLY_NODE",
                           "This is a read-only API node; send writes to a primary node.")
