"""TLS: the launcher serves TLS with a given cert and key; the SDK connects with the CA file
(``tls://`` or ``nats://`` URL); plaintext and unverified clients are refused."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from pathlib import Path

import mailslot
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mailslot_broker import NatsServer
from testsupport import assert_round_trip


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


def make_pki(d: Path) -> dict[str, Path]:
    """A throwaway CA and a server cert for 127.0.0.1 / localhost, valid for a day."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailslot test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    d.mkdir(parents=True, exist_ok=True)
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, d / "server-key.pem")
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server-key.pem"}


@pytest.fixture
def tls_server(tmp_path):
    pki = make_pki(tmp_path / "pki")
    srv = NatsServer(tmp_path / "nats", tls_cert=pki["cert"], tls_key=pki["key"])
    srv.start()
    try:
        yield srv, pki
    finally:
        srv.stop()


async def test_tls_url_and_ca_file_work(tls_server, tmp_path):
    srv, pki = tls_server
    assert srv.url.startswith("tls://127.0.0.1:")
    creds = srv.credentials.write(tmp_path / "c.json")
    for url in (srv.url, srv.url.replace("tls://", "nats://")):
        async with mailslot.connect(url, credentials=creds, tls_ca=pki["ca"], name="t") as ms:
            assert ms.nc.connected_url is not None
            await assert_round_trip(ms, "secure", "over tls")


def test_plaintext_client_is_refused(tls_server):
    srv, _ = tls_server
    c = srv.credentials
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        info = s.recv(4096).decode()
        assert '"tls_required":true' in info
        connect = f'CONNECT {{"user":"{c.user}","pass":"{c.password}","verbose":true}}\r\nPING\r\n'
        s.sendall(connect.encode())
        s.settimeout(10)
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert b"PONG" not in data and b"+OK" not in data
    assert data == b"", data  # closed without a word: the server expected a TLS handshake


async def test_client_without_the_ca_is_refused(tls_server, tmp_path):
    srv, _ = tls_server
    creds = srv.credentials.write(tmp_path / "c.json")
    with pytest.raises(mailslot.ConnectionFailed):
        await mailslot.connect(srv.url, credentials=creds, timeout=3)
