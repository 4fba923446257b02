"""PKI and kubeconfigs of the local Kubernetes control plane, made in Python.

One CA signs every certificate: the kube-apiserver's serving certificate and one
client certificate per identity (the admin, each control-plane component, the
KWOK controller). Kubernetes reads a client certificate's CN as the user name
and its O fields as the groups, so `O=system:masters` makes the admin a
superuser while the components get exactly what the built-in RBAC roles grant
to `system:kube-controller-manager` and `system:kube-scheduler`.

Everything here is pure (keys and times are passed in) except `ensure_pki`,
which writes the files once and leaves existing ones alone, so restarts keep
the same CA and every kubeconfig handed out stays valid.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLUSTER_NAME = "reelplane-local"
CA_VALIDITY = dt.timedelta(days=3650)
CERT_VALIDITY = dt.timedelta(days=1825)
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Identity:
    """A client identity: the user name (CN) and groups (O) it authenticates as."""

    file_stem: str
    common_name: str
    organizations: tuple[str, ...] = ()


ADMIN = Identity("admin", "reelplane-admin", ("system:masters",))
CONTROLLER_MANAGER = Identity("kube-controller-manager", "system:kube-controller-manager")
SCHEDULER = Identity("kube-scheduler", "system:kube-scheduler")
KWOK = Identity("kwok", "system:kwok-controller")
"""Bound by `kwok_rbac()` to the verbs the KWOK controller uses, nothing more."""

CLIENT_IDENTITIES: tuple[Identity, ...] = (ADMIN, CONTROLLER_MANAGER, SCHEDULER, KWOK)

FRONT_PROXY_CLIENT = "front-proxy-client"
"""The name the apiserver presents, signed by the front-proxy CA, when it forwards
a request to an aggregated API server (metrics-server and the like)."""


def kubernetes_service_ip(service_cidr: str = SERVICE_CLUSTER_IP_RANGE) -> str:
    """The ClusterIP of the `kubernetes` Service: the first address of the range."""
    return str(next(ipaddress.ip_network(service_cidr).hosts()))


@dataclass(frozen=True)
class ServingNames:
    """Subject alternative names of the kube-apiserver serving certificate."""

    dns: tuple[str, ...] = (
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    )
    ips: tuple[str, ...] = field(default_factory=lambda: ("127.0.0.1", kubernetes_service_ip()))


# -- pure certificate making ----------------------------------------------------------
def new_key() -> ec.EllipticCurvePrivateKey:
    """A P-256 key: quick to make, accepted by every Kubernetes component."""
    return ec.generate_private_key(ec.SECP256R1())


def new_service_account_key() -> rsa.RSAPrivateKey:
    """RSA 2048 for service-account tokens (RS256, what every token consumer knows)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def make_ca(
    key: PrivateKey, now: dt.datetime, common_name: str = CLUSTER_NAME + "-ca"
) -> x509.Certificate:
    """A self-signed CA certificate valid from `now` for CA_VALIDITY."""
    name = _name(common_name)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def make_leaf(
    *,
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    common_name: str,
    now: dt.datetime,
    organizations: Sequence[str] = (),
    names: ServingNames | None = None,
) -> x509.Certificate:
    """A certificate signed by the CA: a server certificate when `names` is given
    (with those SANs), otherwise a client certificate for CN/O."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if names is not None:
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in names.dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in names.ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        usage = [ExtendedKeyUsageOID.SERVER_AUTH]
    else:
        usage = [ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (loopback dev cluster; files are mode 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- kubeconfig rendering ---------------------------------------------------------------
def render_kubeconfig(
    *,
    server: str,
    ca_pem: bytes,
    client_cert_pem: bytes,
    client_key_pem: bytes,
    user: str,
    cluster: str = CLUSTER_NAME,
) -> str:
    """A kubeconfig with one cluster, user and context, credentials embedded.

    Written as JSON, which is valid YAML, so kubectl, helm and client libraries
    all read it; embedding keeps it self-contained (copy it anywhere).
    """

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(client_cert_pem),
                    "client-key-data": b64(client_key_pem),
                },
            }
        ],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
        "preferences": {},
    }
    return json.dumps(config, indent=2) + "\n"


# -- files on disk ------------------------------------------------------------------------
@dataclass(frozen=True)
class PkiPaths:
    """Where the PKI and kubeconfigs live (under `<cache>/cluster/`)."""

    pki_dir: Path
    kubeconfig_dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.pki_dir / "ca.key"

    @property
    def apiserver_cert(self) -> Path:
        return self.pki_dir / "apiserver.crt"

    @property
    def apiserver_key(self) -> Path:
        return self.pki_dir / "apiserver.key"

    @property
    def service_account_key(self) -> Path:
        return self.pki_dir / "sa.key"

    @property
    def service_account_pub(self) -> Path:
        return self.pki_dir / "sa.pub"

    @property
    def front_proxy_ca_cert(self) -> Path:
        return self.pki_dir / "front-proxy-ca.crt"

    @property
    def front_proxy_ca_key(self) -> Path:
        return self.pki_dir / "front-proxy-ca.key"

    @property
    def front_proxy_client_cert(self) -> Path:
        return self.pki_dir / "front-proxy-client.crt"

    @property
    def front_proxy_client_key(self) -> Path:
        return self.pki_dir / "front-proxy-client.key"

    def client_cert(self, identity: Identity) -> Path:
        return self.pki_dir / f"{identity.file_stem}.crt"

    def client_key(self, identity: Identity) -> Path:
        return self.pki_dir / f"{identity.file_stem}.key"

    def kubeconfig(self, identity: Identity) -> Path:
        return self.kubeconfig_dir / f"{identity.file_stem}.kubeconfig"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o600)
    tmp.replace(path)


def _load_key(path: Path) -> PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"{path}: unsupported key type {type(key).__name__}")
    return key


def ensure_pki(paths: PkiPaths, server: str, names: ServingNames | None = None) -> None:
    """Create whatever part of the PKI and kubeconfigs is missing; keep the rest.

    A missing CA means a fresh PKI: every certificate is then re-issued, since the
    old ones would no longer verify.
    """
    now = dt.datetime.now(dt.UTC)
    fresh = not (paths.ca_cert.is_file() and paths.ca_key.is_file())
    if fresh:
        ca_key: PrivateKey = new_key()
        ca_cert = make_ca(ca_key, now)
        _write_private(paths.ca_key, key_pem(ca_key))
        _write_private(paths.ca_cert, cert_pem(ca_cert))
    else:
        ca_key = _load_key(paths.ca_key)
        ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())

    if fresh or not (paths.apiserver_cert.is_file() and paths.apiserver_key.is_file()):
        key = new_key()
        cert = make_leaf(
            ca_cert=ca_cert,
            ca_key=ca_key,
            public_key=key.public_key(),
            common_name="kube-apiserver",
            now=now,
            names=names or ServingNames(),
        )
        _write_private(paths.apiserver_key, key_pem(key))
        _write_private(paths.apiserver_cert, cert_pem(cert))

    if not (paths.service_account_key.is_file() and paths.service_account_pub.is_file()):
        sa_key = new_service_account_key()
        _write_private(paths.service_account_key, key_pem(sa_key))
        _write_private(paths.service_account_pub, public_key_pem(sa_key))

    _ensure_front_proxy(paths, now)

    ca_bytes = cert_pem(ca_cert)
    for identity in CLIENT_IDENTITIES:
        crt, kpath, kubeconfig = (
            paths.client_cert(identity),
            paths.client_key(identity),
            paths.kubeconfig(identity),
        )
        if fresh or not (crt.is_file() and kpath.is_file()):
            key = new_key()
            cert = make_leaf(
                ca_cert=ca_cert,
                ca_key=ca_key,
                public_key=key.public_key(),
                common_name=identity.common_name,
                organizations=identity.organizations,
                now=now,
            )
            _write_private(kpath, key_pem(key))
            _write_private(crt, cert_pem(cert))
        text = render_kubeconfig(
            server=server,
            ca_pem=ca_bytes,
            client_cert_pem=crt.read_bytes(),
            client_key_pem=kpath.read_bytes(),
            user=identity.common_name,
        )
        if not kubeconfig.is_file() or kubeconfig.read_text() != text:
            _write_private(kubeconfig, text.encode())


def _ensure_front_proxy(paths: PkiPaths, now: dt.datetime) -> None:
    """The aggregation layer's own CA and client certificate (kept apart from the
    cluster CA, as kubeadm does, so a front-proxy certificate is never a user)."""
    fresh = not (paths.front_proxy_ca_cert.is_file() and paths.front_proxy_ca_key.is_file())
    if fresh:
        ca_key: PrivateKey = new_key()
        ca_cert = make_ca(ca_key, now, common_name=CLUSTER_NAME + "-front-proxy-ca")
        _write_private(paths.front_proxy_ca_key, key_pem(ca_key))
        _write_private(paths.front_proxy_ca_cert, cert_pem(ca_cert))
    elif paths.front_proxy_client_cert.is_file() and paths.front_proxy_client_key.is_file():
        return
    else:
        ca_key = _load_key(paths.front_proxy_ca_key)
        ca_cert = x509.load_pem_x509_certificate(paths.front_proxy_ca_cert.read_bytes())
    key = new_key()
    cert = make_leaf(
        ca_cert=ca_cert,
        ca_key=ca_key,
        public_key=key.public_key(),
        common_name=FRONT_PROXY_CLIENT,
        now=now,
    )
    _write_private(paths.front_proxy_client_key, key_pem(key))
    _write_private(paths.front_proxy_client_cert, cert_pem(cert))
