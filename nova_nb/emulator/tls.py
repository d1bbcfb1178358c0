"""A throw-away certificate authority and server certificate for the emulator, made per run.

The CRT HTTP client speaks HTTP/2 only over TLS with ALPN (docs/PROTOCOL.md §10), so the emulator
needs a certificate the client trusts. Each run makes a fresh CA and a server certificate for
``127.0.0.1`` and ``localhost`` signed by it; the client is told to trust that CA file only. The CA's
private key is never written anywhere: once the server certificate is signed nobody can mint another
certificate under that CA. The server's private key is written with mode 0600 from the moment the
file exists.

ECDSA P-256 keys: generated in microseconds (RSA takes tens of milliseconds) and accepted by every
TLS stack involved (OpenSSL for Python's ``ssl``, s2n/OpenSSL for CRT).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE_NAME: Final = "emulator-ca.pem"
CERT_FILE_NAME: Final = "emulator-server.pem"
KEY_FILE_NAME: Final = "emulator-server-key.pem"
#: Per-run material: a week is far beyond any run and short enough to be useless if leaked.
VALIDITY: Final = datetime.timedelta(days=7)
#: Back-date "not before" so a client clock slightly behind ours still accepts the certificate.
CLOCK_SLACK: Final = datetime.timedelta(minutes=5)
PRIVATE_FILE_MODE: Final = 0o600
PUBLIC_FILE_MODE: Final = 0o644
SERVER_NAMES: Final = ("localhost",)
SERVER_ADDRESSES: Final = ("127.0.0.1",)


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the PEM files: the CA certificate to trust, the server's certificate and key."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    # Remove any earlier file first: os.open applies the mode only when it creates the file, and
    # O_EXCL makes sure it is this call that does. The key is therefore never readable by others,
    # not even for the instant between creating and chmod-ing it.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nova_nb emulator (per-run test certificate)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def generate_tls_files(directory: str | Path) -> TlsFiles:
    """Make a fresh CA and a server certificate for 127.0.0.1/localhost in ``directory``.

    The directory is created (mode 0700) when missing. Returns the paths of the three files.
    """
    folder = Path(directory)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - CLOCK_SLACK, now + VALIDITY

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("nova_nb emulator test CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in SERVER_NAMES]
    alt_names += [x509.IPAddress(ipaddress.ip_address(addr)) for addr in SERVER_ADDRESSES]
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(SERVER_ADDRESSES[0]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    files = TlsFiles(
        ca_file=folder / CA_FILE_NAME, cert_file=folder / CERT_FILE_NAME, key_file=folder / KEY_FILE_NAME
    )
    _write(
        files.key_file,
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        PRIVATE_FILE_MODE,
    )
    _write(files.cert_file, server_cert.public_bytes(serialization.Encoding.PEM), PUBLIC_FILE_MODE)
    _write(files.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM), PUBLIC_FILE_MODE)
    return files
