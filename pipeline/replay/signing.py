"""Binance's request signing, checked as Binance checks it: the API key in `X-MBX-APIKEY`, an
HMAC-SHA256 `signature` over query string + body, and a `timestamp`."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs

from pipeline.replay.errors import BinanceError, missing

DEFAULT_API_KEY, DEFAULT_API_SECRET = "replay-key", "replay-secret"


def _split_signature(part: str) -> tuple[str, str | None]:
    """A query or body string without its `signature=` item, and that signature."""
    kept, signature = [], None
    for item in part.split("&"):
        if item.startswith("signature="):
            signature = item[len("signature=") :]
        elif item:
            kept.append(item)
    return "&".join(kept), signature


class RequestSigning:
    """The one key pair the replay account accepts; never shown in a repr or an answer."""

    def __init__(self, api_key: str = DEFAULT_API_KEY, api_secret: str = DEFAULT_API_SECRET):
        self._api_key, self._api_secret = api_key, api_secret.encode()

    def __repr__(self) -> str:
        return "RequestSigning(***)"

    def verify(self, query: str, body: str, api_key: str | None) -> dict[str, str]:
        """The request's parameters (query and body) once its key and signature check out;
        the answers never repeat what was sent."""
        if not api_key:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        if not hmac.compare_digest(api_key.encode(), self._api_key.encode()):
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        query_part, query_sig = _split_signature(query)
        body_part, body_sig = _split_signature(body)
        signature = query_sig or body_sig
        if not signature:
            raise missing("signature")
        expected = hmac.new(
            self._api_secret, (query_part + body_part).encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(signature.lower().encode(), expected.encode()):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        params = {k: v[-1] for k, v in parse_qs(query_part).items()}
        params.update({k: v[-1] for k, v in parse_qs(body_part).items()})
        if "timestamp" not in params:
            # Not checked against recvWindow: the replay clock is not the caller's clock.
            raise missing("timestamp")
        return params
