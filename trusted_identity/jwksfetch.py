"""A platform's JWKS URL (CONTRACT section 10): the URL checked, the set fetched and read.

Plain Python with no Django import; ``urllib`` fetches, ``publickeys`` reads each key.
Every refusal is a :class:`JwksError` of one short line for a person, which never
repeats what the server answered (its body may be anything):

- **the URL** (:func:`check_url`): ``https://`` with a host, no user name or password,
  no fragment, at most 2,048 printable ASCII characters; ``http://`` only to a loopback
  host (``127.0.0.0/8``, ``::1``, ``localhost``) and only where the caller allows it
  (``DEBUG``, or the setting for tests);
- **the fetch** (:func:`fetch`): one ``GET``, the server's certificate verified (the
  system's authorities, or a CA bundle), redirects never followed, ``200`` only, the
  whole answer within the timeout (each read is checked against the deadline) and at
  most ``max_bytes``; any content type (servers say ``application/json``,
  ``application/jwk-set+json`` or ``text/plain``), the body read as UTF-8 JSON;
- **the set** (:func:`read_jwks`): a JSON object with a ``keys`` list. A key with a
  private member (``d``, ``p``..., or a symmetric ``kty: oct``) refuses the whole set:
  whoever publishes it has leaked it. Keys for something else (``use`` other than
  ``sig``, ``key_ops`` without ``verify``), of an unsupported type, curve, size or
  ``alg``, or whose ``kid`` names more than one key, are left out, each with a note.
  A set with no usable key, or more than ``max_keys``, is refused.

A key is named by its ``kid``, or its RFC 7638 thumbprint when it has none, as a stored
key is.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .publickeys import PublicKey, PublicKeyError, parse_public_key

MAX_URL_LENGTH = 2048
#: Entries read from one set at most (usable or not): the size cap bounds them too.
MAX_ENTRIES = 100
#: Notes kept about the entries left out.
MAX_NOTES = 20
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_CHUNK = 16 * 1024


class JwksError(ValueError):
    """Why a URL or a set was refused, or a fetch failed: one line, never the body."""


@dataclass(frozen=True)
class JwksKey:
    """One usable key of a set: its ``kid`` (the JWK's, else its thumbprint) and the key."""

    kid: str
    key: PublicKey


@dataclass(frozen=True)
class JwksRead:
    """What a set holds that verifies here, and a note per entry left out."""

    keys: tuple[JwksKey, ...]
    skipped: tuple[str, ...] = ()


def shown(value: Any, limit: int = 40) -> str:
    """A value from the server (a kid, a member) as a message names it: printable ASCII,
    one line, at most ``limit`` characters, quoted."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


# ---------------------------------------------------------------------- the URL


def is_loopback(host: str) -> bool:
    """Whether ``host`` (as a URL spells it, IPv6 without brackets) is this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, allow_http_loopback: bool = False) -> str:
    """``url`` stripped, if a JWKS may be fetched from it; else :class:`JwksError`."""
    if not isinstance(url, str):
        raise JwksError("a JWKS URL must be text")
    url = url.strip()
    if not url:
        raise JwksError("no URL given")
    if len(url) > MAX_URL_LENGTH:
        raise JwksError(f"a JWKS URL may be at most {MAX_URL_LENGTH:,} characters")
    if not all("!" <= ch <= "~" for ch in url):
        raise JwksError("a JWKS URL must be printable ASCII without spaces (percent-encode)")
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise JwksError("not a URL: its host or port can't be read") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise JwksError("a JWKS URL must start with https://")
    if not host:
        raise JwksError(
            "a JWKS URL needs a host, such as https://example.com/.well-known/jwks.json"
        )
    if parts.username is not None or parts.password is not None:
        raise JwksError("a JWKS URL must not carry a user name or password")
    if parts.fragment or url.endswith("#"):
        raise JwksError("a JWKS URL must not have a fragment (#...)")
    if port == 0:
        raise JwksError("port 0 is not a port to fetch from")
    if scheme == "http" and not (allow_http_loopback and is_loopback(host)):
        if is_loopback(host):
            raise JwksError(
                "plain http:// is taken only to this machine with DEBUG on "
                "(or JWKS_ALLOW_HTTP_LOOPBACK): use https://"
            )
        raise JwksError("a JWKS URL must use https:// (plain http:// could be changed on the way)")
    return url


# -------------------------------------------------------------------- fetching


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: the URL set is the one fetched, never where it points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        fp.close()
        raise _redirect_refused(code, headers)


def _redirect_refused(code: int, headers) -> JwksError:  # type: ignore[no-untyped-def]
    """The error for a redirect: the handler's (301-307) and, where ``urllib`` does not
    know the code as one (308 before Python 3.11), the HTTP error's."""
    where = headers.get("Location", "") if headers is not None else ""
    target = f" to {shown(where, 80)}" if where else ""
    return JwksError(
        f"the server answered HTTP {code}, a redirect{target}: redirects are not "
        "followed; set the URL it points to"
    )


def ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """Certificates verified against the system's authorities, or ``ca_bundle``'s only;
    TLS 1.2 at least."""
    context = ssl.create_default_context(cafile=ca_bundle)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def fetch(
    url: str,
    *,
    timeout: float,
    max_bytes: int,
    ca_bundle: str | None = None,
    allow_http_loopback: bool = False,
) -> bytes:
    """The body of ``GET url``: a ``200`` answer, whole within ``timeout`` seconds (each
    read checked against the deadline, so a server that trickles bytes is cut off) and
    at most ``max_bytes``. Else :class:`JwksError`."""
    url = check_url(url, allow_http_loopback=allow_http_loopback)
    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(
        _NoRedirect(), urllib.request.HTTPSHandler(context=ssl_context(ca_bundle))
    )
    request = urllib.request.Request(  # noqa: S310 - check_url took https (or loopback http) only
        url,
        headers={
            "Accept": "application/jwk-set+json, application/json;q=0.9, */*;q=0.1",
            "Accept-Encoding": "identity",
            "User-Agent": "trusted-identity-jwks",
        },
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            if response.status != 200:
                raise JwksError(f"the server answered HTTP {response.status}, not 200")
            length = response.headers.get("Content-Length")
            if length is not None and length.strip().isdigit() and int(length) > max_bytes:
                raise JwksError(_too_large(max_bytes))
            body = bytearray()
            while True:
                if time.monotonic() > deadline:
                    raise JwksError(_too_slow(timeout))
                chunk = response.read1(_CHUNK)
                if not chunk:
                    break
                body += chunk
                if len(body) > max_bytes:
                    raise JwksError(_too_large(max_bytes))
            return bytes(body)
    except JwksError:
        raise
    except urllib.error.HTTPError as exc:
        exc.close()
        if 300 <= exc.code < 400:
            raise _redirect_refused(exc.code, exc.headers) from None
        raise JwksError(f"the server answered HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise JwksError(_unreachable(exc.reason, timeout)) from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise JwksError(_unreachable(exc, timeout)) from None


def _too_large(max_bytes: int) -> str:
    return f"the answer is larger than {max_bytes:,} bytes (JWKS_MAX_BYTES): not fetched"


def _too_slow(timeout: float) -> str:
    return f"no whole answer within {timeout:g} s (JWKS_TIMEOUT)"


def _unreachable(reason: Any, timeout: float) -> str:
    """Why the server could not be reached or read, in a few words of our own."""
    if isinstance(reason, ssl.SSLCertVerificationError):
        detail = reason.verify_message or "verify failed"
        return f"the server's certificate is not trusted ({shown(detail, 80)[1:-1]})"
    if isinstance(reason, ssl.SSLError):
        return f"TLS failed ({shown(reason.reason or 'handshake', 60)[1:-1]})"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return _too_slow(timeout)
    if isinstance(reason, socket.gaierror):
        return "the host name could not be resolved"
    if isinstance(reason, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(reason, ConnectionError):
        return "the connection was closed or reset"
    if isinstance(reason, OSError) and reason.strerror:
        return f"could not fetch it ({shown(reason.strerror, 60)[1:-1]})"
    return f"could not fetch it ({type(reason).__name__})"


# ------------------------------------------------------------------- the set


def read_jwks(data: bytes | str | Mapping[str, Any], *, max_keys: int) -> JwksRead:
    """The usable keys of a JWK Set (its bytes, text or parsed object), or
    :class:`JwksError`: not a set, a private key in it, no usable key, too many."""
    document = _document(data)
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise JwksError('not a JWK Set: the JSON object has no "keys" list')
    if len(entries) > MAX_ENTRIES:
        raise JwksError(f"the set has {len(entries):,} entries, over the {MAX_ENTRIES} read")
    found: list[JwksKey] = []
    notes: list[str] = []
    for number, entry in enumerate(entries, 1):
        name = _name(entry, number)
        if not isinstance(entry, Mapping):
            notes.append(f"{name}: not a JSON object")
            continue
        if entry.get("kty") == "oct" or any(member in entry for member in _PRIVATE_MEMBERS):
            raise JwksError(
                f"the set holds a private or secret key ({name}): refused whole, nothing "
                "from it is used; whoever publishes it must remove it and replace that key"
            )
        use = entry.get("use")
        if use is not None and use != "sig":
            notes.append(f"{name}: for {shown(use, 20)}, not signatures")
            continue
        try:
            key = parse_public_key(entry)
        except PublicKeyError as exc:
            notes.append(f"{name}: {exc}")
            continue
        found.append(JwksKey(key.jwk_kid or key.thumbprint, key))
    kids = [key.kid for key in found]
    twice = {kid for kid in kids if kids.count(kid) > 1}
    for kid in sorted(twice):
        notes.append(f"kid {shown(kid)}: names {kids.count(kid)} keys, so none of them is used")
    usable = tuple(key for key in found if key.kid not in twice)
    if not usable:
        first = f" ({notes[0]})" if notes else ""
        raise JwksError(f"the set holds no key usable here{first}")
    if len(usable) > max_keys:
        raise JwksError(
            f"the set holds {len(usable)} usable keys, more than the {max_keys} a platform takes"
        )
    return JwksRead(usable, tuple(note[:200] for note in notes[:MAX_NOTES]))


def _document(data: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(data, Mapping):
        return data
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise JwksError("the answer is not UTF-8 text: not a JWK Set") from None
    try:
        document = json.loads(data.lstrip("\ufeff"))
    except (ValueError, RecursionError):
        raise JwksError("the answer is not JSON: not a JWK Set") from None
    if not isinstance(document, dict):
        raise JwksError('not a JWK Set: the JSON is not an object with "keys"')
    return document


def _name(entry: Any, number: int) -> str:
    kid = entry.get("kid") if isinstance(entry, Mapping) else None
    return f"kid {shown(kid)}" if isinstance(kid, str) else f"key #{number}"
