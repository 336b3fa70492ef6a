"""An OpenID provider for the tests, on 127.0.0.1, without Django.

Discovery, an authorize endpoint that approves the configured user at once, a token endpoint
that checks the client, the redirect URI and the PKCE verifier (S256 only), RS256-signed
id_tokens, userinfo and JWKS. What a real provider (Entra ID, Google, Keycloak) does on the
code flow's wire, minus the login screen.
"""

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "ctiboard-test"
CLIENT_SECRET = "test-client-secret"


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Grant:
    claims: dict[str, Any]
    nonce: str | None
    code_challenge: str
    redirect_uri: str


@dataclass
class TokenRequest:
    status: int
    error: str | None


@dataclass
class OpenIDProvider:
    """Set ``user`` to the claims of whoever is signed in at the provider."""

    user: dict[str, Any] = field(default_factory=dict)
    # Stamped into every id_token; a test sets another to play a token for some other client.
    audience: str = CLIENT_ID
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[TokenRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._codes: dict[str, Grant] = {}
        self._tokens: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def environment(self, **extra: str) -> dict[str, str]:
        """The variables that point a ctiboard process at this provider."""
        return {
            "CTIBOARD_OIDC_CLIENT_ID": CLIENT_ID,
            "CTIBOARD_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "CTIBOARD_OIDC_ISSUER": self.issuer,
            **extra,
        }

    def sign_in_as(self, email: str, *, verified: Any = True, **claims: Any) -> None:
        self.user = {"sub": f"sub-{email.lower()}", "email": email, **claims}
        if verified is not None:
            self.user["email_verified"] = verified

    def start(self) -> "OpenIDProvider":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- the endpoints' logic -------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    def authorize(self, params: dict[str, str]) -> tuple[int, dict[str, str]]:
        self.authorize_requests.append(params)
        redirect_uri = params.get("redirect_uri", "")
        if params.get("client_id") != CLIENT_ID or not redirect_uri:
            return 400, {}
        back: dict[str, str] = {"state": params.get("state", "")}
        if (
            params.get("response_type") != "code"
            or params.get("code_challenge_method") != "S256"
            or not params.get("code_challenge")
        ):
            back["error"] = "invalid_request"
        else:
            code = secrets.token_urlsafe(24)
            with self._lock:
                self._codes[code] = Grant(
                    dict(self.user), params.get("nonce"), params["code_challenge"], redirect_uri
                )
            back["code"] = code
        return 302, {"Location": f"{redirect_uri}?{urlencode(back)}"}

    def token(self, form: dict[str, str], basic: tuple[str, str] | None) -> tuple[int, Any]:
        client_id, secret = basic or (form.get("client_id"), form.get("client_secret"))
        if client_id != CLIENT_ID or secret != CLIENT_SECRET:
            return self._token_error(401, "invalid_client")
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)  # a code is good once
        if grant is None or form.get("grant_type") != "authorization_code":
            return self._token_error(400, "invalid_grant")
        if form.get("redirect_uri") != grant.redirect_uri:
            return self._token_error(400, "invalid_grant")
        verifier = form.get("code_verifier", "")
        if not verifier or s256(verifier) != grant.code_challenge:
            return self._token_error(400, "invalid_grant")
        now = int(time.time())
        payload = {
            **grant.claims,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + 300,
        }
        if grant.nonce:
            payload["nonce"] = grant.nonce
        id_token = jwt.encode(payload, self._key, algorithm="RS256", headers={"kid": "test"})
        access_token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[access_token] = grant.claims
        self.token_requests.append(TokenRequest(200, None))
        return 200, {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }

    def _token_error(self, status: int, error: str) -> tuple[int, Any]:
        self.token_requests.append(TokenRequest(status, error))
        return status, {"error": error}

    def userinfo(self, authorization: str) -> tuple[int, Any]:
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            claims = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if claims is None:
            return 401, {"error": "invalid_token"}
        return 200, claims

    def jwks(self) -> dict[str, Any]:
        key = jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {"keys": [{**key, "kid": "test", "alg": "RS256", "use": "sig"}]}


def _handler(provider: OpenIDProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            params = {key: values[0] for key, values in parse_qs(url.query).items()}
            if url.path == "/.well-known/openid-configuration":
                self._json(200, provider.discovery())
            elif url.path == "/authorize":
                status, headers = provider.authorize(params)
                self._reply(status, b"", headers)
            elif url.path == "/userinfo":
                self._json(*provider.userinfo(self.headers.get("Authorization", "")))
            elif url.path == "/jwks":
                self._json(200, provider.jwks())
            else:
                self._reply(404, b"", {})

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/token":
                self._reply(404, b"", {})
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = {
                key: values[0] for key, values in parse_qs(self.rfile.read(length).decode()).items()
            }
            basic = None
            scheme, _, value = self.headers.get("Authorization", "").partition(" ")
            if scheme.lower() == "basic":
                user, _, secret = base64.b64decode(value).decode().partition(":")
                basic = (user, secret)
            self._json(*provider.token(form, basic))

        def _json(self, status: int, body: Any) -> None:
            self._reply(status, json.dumps(body).encode(), {"Content-Type": "application/json"})

        def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
