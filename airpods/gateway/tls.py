"""The gateway's TLS: a certificate authority of the stack's own and a server certificate for the
names and addresses the user lists, all in airpods' private state folder.

Files (in `folder`, 0700): `ca.key` (0600: never in an image, a volume or a container; it signs,
nothing else reads it), `ca.crt` (what clients trust: `airpods gateway trust`), `server.key`
(0600, handed to the gateway container as a secret file) and `server.crt` (the server
certificate followed by the CA's, the chain the gateway sends). Every file is published whole
(files.write_atomic).

Lifetimes: the CA 10 years; a server certificate 397 days (the most browsers accept for a
TLS server certificate: CA/Browser Forum baseline requirements 6.3.2, Apple's rule for
certificates issued after 2020-09-01), made again when fewer than RENEW_BEFORE_DAYS remain, the
host list changed or the CA is another. ECDSA P-256 keys (RFC 8422; every current client).
Built with the `cryptography` package (X.509 is no part of what airpods exists for)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from airpods.files import write_atomic

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

CA_DAYS = 3650
SERVER_DAYS = 397
RENEW_BEFORE_DAYS = 30
CA_KEY, CA_CERT, SERVER_KEY, SERVER_CERT = "ca.key", "ca.crt", "server.key", "server.crt"


@dataclass(frozen=True)
class ServerCert:
    """What `ensure` left in place: the server certificate's names and last day, and whether
    this call made it (a new one: the gateway is recreated with it)."""

    hosts: tuple[str, ...]
    not_after: datetime.datetime
    made: bool


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_key() -> EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def san_entries(hosts: tuple[str, ...]) -> list[x509.GeneralName]:
    """Each host as an IP address entry when it parses as one, else as a DNS name."""
    from cryptography import x509

    entries: list[x509.GeneralName] = []
    for host in hosts:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return entries


def _cert_hosts(cert: x509.Certificate) -> tuple[str, ...]:
    from cryptography import x509

    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(str(name.value) for name in names)


def ensure_ca(folder: Path, project: str) -> tuple[EllipticCurvePrivateKey, x509.Certificate]:
    """The stack's CA, made on first use (and again when its certificate nears its end)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key_path, cert_path = folder / CA_KEY, folder / CA_CERT
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        from cryptography.hazmat.primitives.asymmetric import ec

        if isinstance(key, ec.EllipticCurvePrivateKey) and cert.not_valid_after_utc - _now() > datetime.timedelta(
            days=SERVER_DAYS
        ):
            return key, cert
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"airpods local CA ({project})")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_atomic(key_path, _pem_key(key), mode=0o600)
    write_atomic(cert_path, _pem_cert(cert), mode=0o644)
    return key, cert


def ensure(folder: Path, project: str, hosts: tuple[str, ...]) -> ServerCert:
    """A current server certificate for exactly `hosts` (and the CA it needs), made when there
    is none, it names other hosts, another CA signed it, or fewer than RENEW_BEFORE_DAYS of it
    remain. `folder` is made 0700."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca_key, ca_cert = ensure_ca(folder, project)
    cert_path = folder / SERVER_CERT
    if cert_path.exists() and (folder / SERVER_KEY).exists():
        current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if (
            _cert_hosts(current) == hosts
            and current.issuer == ca_cert.subject
            and _signed_by(current, ca_cert)
            and current.not_valid_after_utc - _now() > datetime.timedelta(days=RENEW_BEFORE_DAYS)
        ):
            return ServerCert(hosts, current.not_valid_after_utc, made=False)
    key = _new_key()
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(san_entries(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_atomic(folder / SERVER_KEY, _pem_key(key), mode=0o600)
    write_atomic(cert_path, _pem_cert(cert) + _pem_cert(ca_cert), mode=0o644)
    return ServerCert(hosts, cert.not_valid_after_utc, made=True)


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:  # noqa: BLE001  # InvalidSignature, or a key type that cannot sign: not ours
        return False
    return True


def describe(folder: Path) -> tuple[tuple[str, ...], datetime.datetime] | None:
    """(hosts, last day) of the server certificate in `folder`, None when there is none."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate((folder / SERVER_CERT).read_bytes())
    except (OSError, ValueError):
        return None
    return _cert_hosts(cert), cert.not_valid_after_utc


def current(folder: Path) -> tuple[tuple[str, ...], datetime.datetime] | None:
    """(hosts, last moment) of the server certificate in `folder`; None when there is none
    (or it cannot be read as one)."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate((folder / SERVER_CERT).read_bytes())
    except (OSError, ValueError):
        return None
    return _cert_hosts(cert), cert.not_valid_after_utc
