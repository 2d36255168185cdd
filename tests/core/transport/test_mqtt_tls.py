"""mqtts:// with client certificates: a vehicle proves who it is with its own certificate and
trusts only a broker whose certificate its CA signed (each test runs a private Mosquitto)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mqtt_helpers import Inbox

from drivetrain.core.errors import ConfigurationError, TransportError
from drivetrain.core.transport import MqttTransport
from drivetrain.core.transport.testing import PrivateBroker, unique_name


@dataclass
class Issued:
    cert: Path
    key: Path


class Authority:
    """A throw-away certificate authority writing PEM files into a directory."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            self._builder(subject, subject, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = directory / f"{name}-ca.pem"
        self.ca_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    @staticmethod
    def _builder(
        subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )

    def issue(self, common_name: str, *, server: bool = False) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = self._builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
            self.certificate.subject,
            key.public_key(),
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        issued = Issued(
            self.directory / f"{common_name}.pem", self.directory / f"{common_name}.key"
        )
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return issued


@pytest.fixture
def fleet_ca(tmp_path: Path) -> Authority:
    return Authority(tmp_path, "fleet")


@pytest.fixture
def tls_broker(tmp_path: Path, fleet_ca: Authority) -> Iterator[PrivateBroker]:
    server = fleet_ca.issue("broker", server=True)
    acl = tmp_path / "acl"
    acl.write_text("pattern readwrite dt/v1/%u/#\n")  # %u: the certificate's common name
    broker = PrivateBroker(
        tmp_path / "broker",
        anonymous=False,
        extra_config=(
            f"cafile {fleet_ca.ca_file}\ncertfile {server.cert}\nkeyfile {server.key}\n"
            "require_certificate true\nuse_identity_as_username true\n"
            f"acl_file {acl}\n"
        ),
    )
    broker.start()
    yield broker
    broker.kill()


VIN = "1DTBEV2A0PX000001"


def test_vehicle_with_its_own_certificate_connects_over_tls(
    tls_broker: PrivateBroker, fleet_ca: Authority
) -> None:
    vehicle = fleet_ca.issue(VIN)
    assert tls_broker.url.startswith("mqtts://localhost:")
    with MqttTransport(
        tls_broker.url,
        client_id=VIN,
        ca_file=fleet_ca.ca_file,
        cert_file=vehicle.cert,
        key_file=vehicle.key,
    ) as transport:
        inbox = Inbox()
        transport.subscribe(f"dt/v1/{VIN}/commands", inbox)
        transport.publish(f"dt/v1/{VIN}/commands", b"over tls")
        assert inbox.wait_for(1)[0].payload == b"over tls"
        with pytest.raises(TransportError, match="Not authorized"):
            transport.publish("dt/v1/1DTBEV2A0PX000002/telemetry", b"as another vehicle")


def test_client_without_a_certificate_is_refused(
    tls_broker: PrivateBroker, fleet_ca: Authority
) -> None:
    with pytest.raises(TransportError, match=rf"{tls_broker.url}.*client certificate"):
        MqttTransport(
            tls_broker.url, client_id=unique_name("c"), ca_file=fleet_ca.ca_file,
            connect_timeout_s=3,
        )  # fmt: skip


def test_certificate_from_another_authority_is_refused(
    tls_broker: PrivateBroker, fleet_ca: Authority, tmp_path: Path
) -> None:
    rogue = Authority(tmp_path, "rogue").issue(VIN)
    with pytest.raises(TransportError, match=rf"{tls_broker.url}.*client certificate"):
        MqttTransport(
            tls_broker.url, client_id=VIN, ca_file=fleet_ca.ca_file,
            cert_file=rogue.cert, key_file=rogue.key, connect_timeout_s=3,
        )  # fmt: skip


def test_broker_not_signed_by_the_trusted_authority_is_refused(
    tls_broker: PrivateBroker, fleet_ca: Authority, tmp_path: Path
) -> None:
    other = Authority(tmp_path, "other")
    vehicle = fleet_ca.issue(VIN)
    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
        MqttTransport(
            tls_broker.url, client_id=VIN, ca_file=other.ca_file,
            cert_file=vehicle.cert, key_file=vehicle.key, connect_timeout_s=3,
        )  # fmt: skip


def test_broker_certificate_for_another_host_name_is_refused(
    tls_broker: PrivateBroker, fleet_ca: Authority
) -> None:
    vehicle = fleet_ca.issue(VIN)
    by_address = f"mqtts://127.0.0.1:{tls_broker.port}"  # the certificate names 'localhost'
    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED|match"):
        MqttTransport(
            by_address, client_id=VIN, ca_file=fleet_ca.ca_file,
            cert_file=vehicle.cert, key_file=vehicle.key, connect_timeout_s=3,
        )  # fmt: skip


def test_unreadable_tls_files_are_a_configuration_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigurationError, match=r"ca_file .*missing\.pem"):
        MqttTransport("mqtts://localhost:8883", client_id="c", ca_file=missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigurationError, match=r"cert_file .*garbage\.pem"):
        MqttTransport("mqtts://localhost:8883", client_id="c", cert_file=garbage)


def test_tls_files_with_a_plain_url_are_a_configuration_error(fleet_ca: Authority) -> None:
    with pytest.raises(ConfigurationError, match="use mqtts://"):
        MqttTransport("mqtt://localhost:1883", client_id="c", ca_file=fleet_ca.ca_file)
