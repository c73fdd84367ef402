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
    note: str = ""  # what happened to the CA, for the user ("" when nothing did)


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


def _load(path: Path, loader):
    """`loader(bytes)` of the file at `path`; None when it is missing, damaged or not a file
    (the callers decide what a bad file means)."""
    try:
        return loader(path.read_bytes())
    except (OSError, ValueError, TypeError):
        return None


def _private_key(data: bytes):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = serialization.load_pem_private_key(data, None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("not an ECDSA key")
    return key


def _certificate(data: bytes) -> x509.Certificate:
    from cryptography import x509

    return x509.load_pem_x509_certificate(data)


def _same_key(cert: x509.Certificate, key: EllipticCurvePrivateKey) -> bool:
    return cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]


def ensure_ca(folder: Path, project: str) -> tuple[EllipticCurvePrivateKey, x509.Certificate, str]:
    """The stack's CA (key, certificate, note): made on first use. Its key is kept for good: a
    certificate missing, damaged, of another key or near its end is issued again for the same
    key and name, so clients that trust the CA keep trusting it (note says so). A key file that
    is there but cannot be used is never replaced: RuntimeFailure with the next step (a new CA
    means every client trusting it again)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    from airpods.errors import RuntimeFailure

    key_path, cert_path = folder / CA_KEY, folder / CA_CERT
    key = _load(key_path, _private_key)
    if key is None and (key_path.exists() or key_path.is_symlink()):
        raise RuntimeFailure(
            f"the gateway's CA key {key_path} cannot be read as one (damaged, or not a file)",
            hint="restore it from a backup; or move it and ca.crt away, and the next `airpods start` makes a new CA "
            "that every client must trust again (`airpods gateway trust`)",
        )
    cert = _load(cert_path, _certificate) if key is not None else None
    if (
        key is not None
        and cert is not None
        and _same_key(cert, key)
        and cert.not_valid_after_utc - _now() > datetime.timedelta(days=SERVER_DAYS)
    ):
        return key, cert, ""
    note = (
        f"made the gateway's certificate authority ({cert_path}): `airpods gateway trust` says how clients trust it"
        if key is None
        else f"issued the gateway's CA certificate again for its same key ({cert_path}): clients keep trusting it"
    )
    key = key or _new_key()
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
    if not key_path.exists():
        write_atomic(key_path, _pem_key(key), mode=0o600)
    write_atomic(cert_path, _pem_cert(cert), mode=0o644)
    return key, cert, note


def ensure(folder: Path, project: str, hosts: tuple[str, ...]) -> ServerCert:
    """A current server certificate for exactly `hosts` (and the CA it needs), made when there
    is none, it or its key cannot be read or do not belong together, it names other hosts,
    another CA signed it, or fewer than RENEW_BEFORE_DAYS of it remain. `folder` is made 0700."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca_key, ca_cert, note = ensure_ca(folder, project)
    cert_path = folder / SERVER_CERT
    current = _load(cert_path, _certificate)
    own_key = _load(folder / SERVER_KEY, _private_key)
    if (
        current is not None
        and own_key is not None
        and _same_key(current, own_key)
        and _cert_hosts(current) == hosts
        and current.issuer == ca_cert.subject
        and _signed_by(current, ca_cert)
        and current.not_valid_after_utc - _now() > datetime.timedelta(days=RENEW_BEFORE_DAYS)
    ):
        return ServerCert(hosts, current.not_valid_after_utc, made=False, note=note)
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
    return ServerCert(hosts, cert.not_valid_after_utc, made=True, note=note)


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:  # noqa: BLE001  # InvalidSignature, or a key type that cannot sign: not ours
        return False
    return True


def describe(folder: Path) -> tuple[tuple[str, ...], datetime.datetime] | None:
    """(hosts, last day) of the server certificate in `folder`, None when there is none."""

    cert = _load(folder / SERVER_CERT, _certificate)
    return None if cert is None else (_cert_hosts(cert), cert.not_valid_after_utc)


def current(folder: Path) -> tuple[tuple[str, ...], datetime.datetime] | None:
    """(hosts, last moment) of the server certificate in `folder`; None when there is none
    (or it cannot be read as one)."""
    cert = _load(folder / SERVER_CERT, _certificate)
    return None if cert is None else (_cert_hosts(cert), cert.not_valid_after_utc)


OWN_HINT = "give the gateway a PEM certificate (the server's first, then any intermediates) and its unencrypted PEM key"


def _covers(names: tuple[str, ...], host: str) -> bool:
    """Whether a certificate naming `names` (its SAN entries) is valid for `host`: the same
    address, the same name, or a wildcard `*.rest` for one label before `rest` (RFC 6125 6.4.3)."""
    for name in names:
        if name.lower() == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:].lower():
            return True
    return False


def own_problem(certificate: str, key: str, hosts: tuple[str, ...]) -> tuple[str, str] | None:
    """What is wrong with a user's certificate and key for a gateway answering for `hosts`:
    (field, what) with field "certificate" or "key"; None when they serve."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificates(certificate.encode())[0]
    except (ValueError, IndexError):
        swapped = "PRIVATE KEY" in certificate
        return (
            "certificate",
            "it holds a private key, not a certificate (are certificate and key swapped?)"
            if swapped
            else ("it is not a PEM certificate"),
        )
    try:
        own = serialization.load_pem_private_key(key.encode(), None)
    except (ValueError, TypeError):
        return "key", "it is not an unencrypted PEM private key"
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if own.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        return "key", "it is not the key of the certificate"
    if cert.not_valid_after_utc <= _now():
        return "certificate", f"it expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    names = _cert_hosts(cert)
    missing = [host for host in hosts if not _covers(names, host)]
    if missing:
        return "certificate", f"it does not name {', '.join(missing)} (it names {', '.join(names) or 'nothing'})"
    return None
