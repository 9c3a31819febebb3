"""The routes' dependencies, as ``Annotated`` aliases over what the app holds on ``app.state``
(see ``srekb.api.state``). Tests swap one through ``app.dependency_overrides``, e.g.
``app.dependency_overrides[get_kb] = lambda: kb``."""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from srekb.api.errors import ApiError
from srekb.api.jobs import JobRunner
from srekb.api.metrics import ServiceMetrics
from srekb.api.sessions import SessionStore
from srekb.retrieval import KnowledgeBase, Settings

bearer = HTTPBearer(auto_error=False)


def get_kb(request: Request) -> KnowledgeBase:
    return request.app.state.kb  # type: ignore[no-any-return]


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_jobs(request: Request) -> JobRunner:
    return request.app.state.jobs  # type: ignore[no-any-return]


def get_sessions(request: Request) -> SessionStore:
    return request.app.state.sessions  # type: ignore[no-any-return]


def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


def _token(creds: HTTPAuthorizationCredentials) -> bytes:
    """The bearer token as UTF-8 bytes: compare_digest refuses a str with non-ASCII characters, and
    any client can send one (a 500 and a traceback per request, before any key is checked)."""
    return creds.credentials.encode("utf-8", "surrogateescape")


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def require_key(settings: Annotated[Settings, Depends(get_app_settings)], creds: Credentials) -> None:
    """When API keys are configured, every route but health needs ``Authorization: Bearer <key>``."""
    keys = settings.api_keys
    if not keys:
        return
    if creds is None or not any(secrets.compare_digest(_token(creds), k.encode("utf-8")) for k in keys):
        raise ApiError(401, "unauthorized", "missing or invalid API key: send 'Authorization: Bearer <key>'")


def session_owner(creds: Credentials) -> str:
    """Who a session belongs to: a digest of the caller's API key ('' when the service has none)."""
    if creds is None:
        return ""
    return hashlib.sha256(_token(creds)).hexdigest()[:32]


KB = Annotated[KnowledgeBase, Depends(get_kb)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]
Jobs = Annotated[JobRunner, Depends(get_jobs)]
Sessions = Annotated[SessionStore, Depends(get_sessions)]
Metrics = Annotated[ServiceMetrics, Depends(get_metrics)]
Owner = Annotated[str, Depends(session_owner)]
Auth = Depends(require_key)
