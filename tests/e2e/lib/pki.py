"""A throwaway PKI for the local control plane: CA, API server cert, admin client cert, SA keys."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICE_IP = "10.96.0.1"  # first address of --service-cluster-ip-range


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca_crt: Path
    ca_key: Path
    server_crt: Path
    server_key: Path
    admin_crt: Path
    admin_key: Path
    sa_pub: Path
    sa_key: Path


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def _cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server_names: tuple[str, ...] = (),
    client: bool = False,
    days: float = 400,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        # longer than the program's kubeconfig refresh window (30 days), like kubeadm's year
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        b = b.add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
        ).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
    if server_names:
        sans: list[x509.GeneralName] = []
        for n in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def make_pki(directory: Path) -> Pki:
    """Everything kube-apiserver/-controller-manager need; EC keys (fast), RSA for SA tokens."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("k8s-platform-e2e-ca")
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)

    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert(
        _name("kube-apiserver"),
        server_key,
        ca_name,
        ca_key,
        server_names=(
            "127.0.0.1",
            "localhost",
            SERVICE_IP,
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
    )
    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = _cert(_name("kubernetes-admin", "system:masters"), admin_key, ca_name, ca_key, client=True)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    pem = serialization.Encoding.PEM
    return Pki(
        dir=directory,
        ca_crt=_write(directory / "ca.crt", ca.public_bytes(pem), 0o644),
        ca_key=_write(directory / "ca.key", _pem_key(ca_key)),
        server_crt=_write(directory / "apiserver.crt", server.public_bytes(pem), 0o644),
        server_key=_write(directory / "apiserver.key", _pem_key(server_key)),
        admin_crt=_write(directory / "admin.crt", admin.public_bytes(pem), 0o644),
        admin_key=_write(directory / "admin.key", _pem_key(admin_key)),
        sa_pub=_write(
            directory / "sa.pub",
            sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
            0o644,
        ),
        sa_key=_write(directory / "sa.key", _pem_key(sa_key)),
    )


def client_cert(pki: Pki, cn: str, org: str | None, days: float) -> tuple[bytes, bytes]:
    """(cert PEM, key PEM): a client certificate for `cn` (group `org`) from the cluster's CA."""
    ca = x509.load_pem_x509_certificate(pki.ca_crt.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert(_name(cn, org), key, ca.subject, ca_key, client=True, days=days)
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def admin_client_cert(pki: Pki, days: float) -> tuple[bytes, bytes]:
    """Another system:masters client certificate, valid for `days` — a kubeconfig nearing its end."""
    return client_cert(pki, "kubernetes-admin", "system:masters", days)
