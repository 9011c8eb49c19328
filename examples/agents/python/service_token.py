"""Verifying agentwire's service token in a FastAPI agent service.

When agentwire runs with an agent secret (`agentwire serve --agent-secret SECRET`, or
`AGENTWIRE_AGENT_SECRET`), every request it forwards carries
`Authorization: Bearer <JWT>`: signed HS256 with that secret, valid 60 s, with `sub` = the
user id, `run_id` = the run's id and `aud` = `agent-service`. The user's own JWT is never
forwarded. A service that shares the secret checks the token and so knows that the request
came from agentwire, for which user and which run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import jwt
from fastapi import HTTPException, Request

#: The environment variable the examples read the shared secret from (the same name
#: `agentwire serve` reads it from).
SECRET_ENV = "AGENTWIRE_AGENT_SECRET"
#: The `aud` claim of a service token.
AUDIENCE = "agent-service"
#: Clock skew tolerated on `exp` and `iat`, in seconds.
LEEWAY_SECONDS = 5


@dataclass(frozen=True)
class ServiceToken:
    """The verified claims of a service token."""

    user_id: str
    run_id: str


def secret_from_env() -> str | None:
    """The shared secret from `AGENTWIRE_AGENT_SECRET`, or None when it is unset or empty."""
    return os.environ.get(SECRET_ENV) or None


def unauthorized(reason: str) -> HTTPException:
    """A 401 answer (agentwire ends the run with `agent_error` / `agent_http_status`)."""
    return HTTPException(
        status_code=401, detail=reason, headers={"WWW-Authenticate": "Bearer"}
    )


def verify(authorization: str | None, secret: str) -> ServiceToken:
    """Checks an `Authorization` header value against `secret`.

    Raises a 401 `HTTPException` when the header is missing, is not a Bearer token, or the
    token is not a valid service token (signature, algorithm, audience, expiry, claims).
    """
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("a service token is required (Authorization: Bearer)")
    try:
        claims = jwt.decode(
            token.strip(),
            secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "sub", "aud", "run_id"]},
        )
    except jwt.InvalidTokenError as error:
        # PyJWT's messages name the failed check, never the token.
        raise unauthorized(f"invalid service token: {error}") from None
    run_id = claims["run_id"]
    if not isinstance(run_id, str) or not run_id:
        raise unauthorized("invalid service token: run_id is not a string")
    return ServiceToken(user_id=claims["sub"], run_id=run_id)


def service_token_dependency(secret: str | None):
    """A FastAPI dependency: the verified token, or None when no secret is configured."""

    def dependency(request: Request) -> ServiceToken | None:
        if secret is None:
            return None
        return verify(request.headers.get("authorization"), secret)

    return dependency
