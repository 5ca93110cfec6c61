"""A JWKS host for the tests: a local HTTPS server whose certificate is signed by a test
certificate authority made here (``cryptography``), trusted through the
``JWKS_CA_BUNDLE`` setting, never the internet. Each path answers what the test set:
a body, a status, headers, a delay, a trickle of bytes; every request is counted.

Its port is a free one (``isolation.free_port``).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trusted_identity.publickeys import parse_public_key

from .isolation import free_port
from .keytoken_helpers import public_pem_of


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


@dataclass(frozen=True)
class Certificates:
    ca_file: str  # the CA bundle the app is told to trust
    cert_file: str  # the server's certificate
    key_file: str  # its private key


def make_certificates(directory: Path) -> Certificates:
    """A test CA and a server certificate it signed, for 127.0.0.1 and localhost."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Trusted Identity test CA"))
        .issuer_name(_name("Trusted Identity test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    files = Certificates(
        str(directory / "ca.pem"), str(directory / "server.pem"), str(directory / "server.key")
    )
    Path(files.ca_file).write_bytes(ca.public_bytes(pem))
    Path(files.cert_file).write_bytes(cert.public_bytes(pem))
    Path(files.key_file).write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


@dataclass
class Answer:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay: float = 0.0  # seconds before answering
    trickle: float = 0.0  # seconds between each byte of the body
    length: bool = True  # send Content-Length (else the body ends with the connection)


def jwk_of(private, kid: str | None = None, **members) -> dict:
    """The public JWK of a private key, with ``kid`` and any other members."""
    jwk = parse_public_key(public_pem_of(private)).jwk()
    if kid is not None:
        jwk["kid"] = kid
    return {**jwk, **members}


def raw_jwk(private, kid: str) -> dict:
    """The public JWK of any EC or RSA key, even one the app refuses (P-384, 1,024 bits)."""
    import base64

    def b64(n: int, size: int | None = None) -> str:
        data = n.to_bytes(size or (n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    numbers = private.public_key().public_numbers()
    if hasattr(numbers, "curve"):
        size = (numbers.curve.key_size + 7) // 8
        crv = {"secp384r1": "P-384", "secp521r1": "P-521"}.get(numbers.curve.name, "P-256")
        return {
            "kty": "EC",
            "crv": crv,
            "x": b64(numbers.x, size),
            "y": b64(numbers.y, size),
            "kid": kid,
        }
    return {"kty": "RSA", "n": b64(numbers.n), "e": b64(numbers.e), "kid": kid}


def jwks_body(*entries: dict) -> bytes:
    return json.dumps({"keys": list(entries)}).encode()


class JwksHost:
    """The server: ``answer(path, ...)`` sets what a path answers; ``hits[path]`` counts."""

    def __init__(self, certificates: Certificates | None, port: int | None = None) -> None:
        self.answers: dict[str, Answer] = {}
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                with host.lock:
                    host.hits[self.path] += 1
                    answer = host.answers.get(self.path, Answer(b"not here", 404))
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    if answer.length:
                        self.send_header("Content-Length", str(len(answer.body)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    if answer.trickle:
                        for byte in answer.body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(answer.trickle)
                    else:
                        self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    pass
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", port or free_port()), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if certificates is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certificates.cert_file, certificates.key_file)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        # shutdown() waits for serve_forever's next poll: half a second by default, paid
        # by every test that uses a host.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def url(self, path: str = "/jwks.json", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def answer(self, path: str = "/jwks.json", body: bytes | dict = b"", **kw) -> str:
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        with self.lock:
            self.answers[path] = Answer(body, **kw)
        return self.url(path)

    def serve_keys(self, *entries: dict, path: str = "/jwks.json") -> str:
        return self.answer(path, jwks_body(*entries))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------ fixtures
# Imported by the test modules that use them (``from .jwks_server import ...``).

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("jwks-tls"))


@pytest.fixture
def no_proxy(monkeypatch):
    """The fetch goes straight to the local server, whatever the environment's proxies."""
    for name in (
        "https_proxy",
        "HTTPS_PROXY",
        "http_proxy",
        "HTTP_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def jwks_host(certificates, settings, no_proxy):
    """The HTTPS JWKS host, its CA trusted by the app (``JWKS_CA_BUNDLE``)."""
    settings.TRUSTED_IDENTITY = {
        **settings.TRUSTED_IDENTITY,
        "JWKS_CA_BUNDLE": certificates.ca_file,
    }
    host = JwksHost(certificates)
    yield host
    host.close()
