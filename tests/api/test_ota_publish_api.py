"""``POST /v1/ota/images`` publishes an image through the same function as ``drivetrain ota
image add`` (supplier delegation, deltas); bad input is a specific 4xx and changes nothing.
``PUT /v1/ota/vehicles/{vin}/keys`` registers the keys that sign a vehicle's version
reports: a manifest signed with them is accepted, one signed with another key refused."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from securesystemslib.signer import CryptoSigner

from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, list_audit
from drivetrain.cloud.ota import OtaLayout
from drivetrain.cloud.ota.manifests import accept_manifest
from drivetrain.cloud.twins import record_ecu_inventory
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import NotFoundError
from drivetrain.core.settings import Settings, load_settings
from drivetrain.core.uptane_manifest import (
    EcuVersionReport,
    ManifestSignatureError,
    sign_ecu_report,
    sign_vehicle_manifest,
)

CLOUD = SigningKey.generate()
CAP = 64 * 1024


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A small upload cap, so the oversized upload below stays small."""
    return load_settings(data_dir=tmp_path / "drivetrain", ota_max_upload_bytes=CAP)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _callers(new_tenant: Callable[[str], Any], new_client: Callable[..., Any],
             get_token: Callable[..., str]) -> tuple[dict[str, str], ...]:
    """Headers of acme's writer (ota:write) and reader, and of globex's writer."""
    acme, globex = new_tenant("acme"), new_tenant("globex")
    return (bearer(get_token(new_client(acme, "fleet_operator"))),
            bearer(get_token(new_client(acme, "read_only"))),
            bearer(get_token(new_client(globex, "fleet_operator"))))


def _publish(client: TestClient, headers: dict[str, str], data: bytes,
             **params: Any) -> Any:
    query = {"hardware_id": "BMS-CH50-HW3", "version": "2.6.1", "release_counter": 7} | params
    return client.post("/v1/ota/images", params=query, content=data,
                       headers=headers | {"Content-Type": "application/octet-stream"})


def _firmware(version: str) -> bytes:
    rng = random.Random(7)
    body = bytes(rng.getrandbits(8) for _ in range(16 * 1024))
    return body + f"BMS firmware {version}".encode() * 64


def test_an_image_is_published_over_http_with_a_supplier_and_a_delta(
    client: TestClient, settings: Settings, database: Database,
    new_tenant: Callable[[str], Any], new_client: Callable[..., Any],
    get_token: Callable[..., str],
) -> None:
    acme = new_tenant("acme")
    writer = bearer(get_token(new_client(acme, "fleet_operator")))
    layout = OtaLayout.under(settings.data_dir)
    layout.init({"root": (1, 1)})
    layout.image_keys.generate_supplier("bosch")
    layout.images().add_supplier("bosch", paths=["acme/bosch/*"])
    first = _publish(client, writer, _firmware("2.6.0"), name="acme/bosch/bms-2.6.0.bin",
                     version="2.6.0", release_counter=6, supplier="bosch")
    assert first.status_code == 201, first.text
    assert first.json()["image"]["supplier"] == "bosch"
    second = _publish(client, writer, _firmware("2.6.1"), name="acme/bosch/bms-2.6.1.bin",
                      supplier="bosch", delta_from=["acme/bosch/bms-2.6.0.bin"])
    assert second.status_code == 201, second.text
    body = second.json()
    assert body["image"] | {"sha256": ""} == {
        "name": "acme/bosch/bms-2.6.1.bin", "length": len(_firmware("2.6.1")), "sha256": "",
        "hardware_id": "BMS-CH50-HW3", "release_counter": 7, "version": "2.6.1",
        "kind": "firmware", "supplier": "bosch"}
    [delta] = body["deltas"]
    assert delta["source"] == "acme/bosch/bms-2.6.0.bin" and delta["bytes_saved"] > 0
    # signed into the supplier's delegated role with the supplier's key; the delta top-level
    repo = layout.images().repo
    assert set(repo.delegated("bosch").signed.targets) == {"acme/bosch/bms-2.6.0.bin",
                                                           "acme/bosch/bms-2.6.1.bin"}
    assert delta["name"] in repo.targets().signed.targets
    listed = client.get("/v1/ota/images", headers=writer).json()
    assert [(i["name"], i["supplier"]) for i in listed if i["kind"] != "delta"] == [
        ("acme/bosch/bms-2.6.0.bin", "bosch"), ("acme/bosch/bms-2.6.1.bin", "bosch")]
    with database.session() as session:
        [entry, _] = list_audit(session, "acme", action="ota.image.publish")
    assert entry.target == "image:acme/bosch/bms-2.6.0.bin"
    assert entry.details["supplier"] == "bosch"


def test_bad_image_uploads_are_refused_and_change_nothing(
    client: TestClient, settings: Settings, new_tenant: Callable[[str], Any],
    new_client: Callable[..., Any], get_token: Callable[..., str],
) -> None:
    writer, reader, other = _callers(new_tenant, new_client, get_token)
    layout = OtaLayout.under(settings.data_dir)
    layout.init({"root": (1, 1)})
    layout.image_keys.generate_supplier("bosch")
    layout.images().add_supplier("bosch", paths=["acme/bosch/*"])
    assert _publish(client, writer, b"fw 2.6.1", name="acme/bms-2.6.1.bin").status_code == 201
    before = layout.images().repo.timestamp().signed.version

    def refused(response: Any, status: int, says: str) -> None:
        assert response.status_code == status, response.text
        assert says in response.json()["detail"], response.json()

    missing = client.post("/v1/ota/images", params={"name": "acme/x.bin", "version": "1",
                                                    "release_counter": 1},
                          content=b"fw", headers=writer)
    refused(missing, 422, "hardware_id")
    refused(_publish(client, writer, b"x" * (CAP + 1), name="acme/big.bin"), 413,
            f"at most {CAP:,}")
    refused(_publish(client, writer, b"fw 2.5.0", name="acme/bms-2.5.0.bin",
                     release_counter=6), 409, "release_counter 6 is below 7")
    refused(_publish(client, writer, b"", name="acme/empty.bin"), 422, "no bytes")
    refused(_publish(client, writer, b"fw", name="acme/bms.bin", hardware_id="bad id!"), 422,
            "hardware_id 'bad id!' is not valid")
    refused(_publish(client, writer, b"fw", name="acme/oem/bms.bin", supplier="bosch"), 422,
            "outside supplier bosch's delegated paths")
    refused(_publish(client, writer, b"fw", name="acme/bosch/bms.bin", supplier="nobody"), 404,
            "no role 'nobody'")
    refused(_publish(client, writer, b"fw", name="acme/bms-2.7.bin",
                     delta_from=["acme/none.bin"]), 404, "acme/none.bin")
    refused(_publish(client, writer, b"other", name="acme/bms-2.6.1.bin"), 422,
            "already published with other content")
    refused(_publish(client, other, b"fw", name="acme/bms-9.bin", release_counter=9), 403,
            "publishes under 'globex/' only")
    assert _publish(client, reader, b"fw", name="acme/bms-9.bin").status_code == 403
    assert _publish(client, {}, b"fw", name="acme/bms-9.bin").status_code == 401
    assert layout.images().repo.timestamp().signed.version == before  # nothing signed
    assert [i.name for i in layout.images().images()] == ["acme/bms-2.6.1.bin"]


def _vehicle(database: Database, tenant: str, seed: int) -> str:
    with database.session() as session:
        return provision_vehicle(session, tenant=tenant, model="compact-bev", region="EU",
                                 cloud_key=CLOUD.verify_key, actor="test",
                                 rng=random.Random(seed))[0].vin


def _key_body(signer: CryptoSigner) -> dict[str, Any]:
    return signer.public_key.to_dict()


def _manifest(vin: str, primary: CryptoSigner, ecu: CryptoSigner, counter: int) -> bytes:
    report = EcuVersionReport("BMS", "bms/bms-2.6.1.bin", 2, "ab" * 32, counter)
    return json.dumps(sign_vehicle_manifest(vin, "TCU", {"BMS": sign_ecu_report(report, ecu)},
                                            primary)).encode()


def test_version_report_keys_are_registered_per_tenant_and_checked(
    client: TestClient, database: Database, new_tenant: Callable[[str], Any],
    new_client: Callable[..., Any], get_token: Callable[..., str],
) -> None:
    writer, reader, other = _callers(new_tenant, new_client, get_token)
    vin = _vehicle(database, "acme", 1)
    primary, ecu = CryptoSigner.generate_ed25519(), CryptoSigner.generate_ecdsa()
    body = {"primary_serial": "TCU", "primary_key": _key_body(primary),
            "ecu_keys": {"BMS": _key_body(ecu)}}
    url = f"/v1/ota/vehicles/{vin}/keys"
    assert client.put(url, json=body, headers=other).status_code == 404  # another tenant's
    assert client.put(url, json=body, headers=reader).status_code == 403
    assert client.put(url, json=body).status_code == 401
    bad = [({"primary_key": {**_key_body(primary), "keytype": "rsa"}}, 422),
           ({"primary_key": {**_key_body(primary), "keyval": {"public": "zz"}}}, 422),
           ({"ecu_keys": {"BMS": {**_key_body(ecu), "keyval": {"public": "-----BEGIN"}}}},
            422),
           ({"ecu_keys": {"BMS": {**_key_body(ecu), "scheme": "ed25519"}}}, 422),
           ({"ecu_keys": {}}, 422),
           ({"primary_serial": "bad serial!"}, 422)]
    for change, status in bad:
        response = client.put(url, json=body | change, headers=writer)
        assert response.status_code == status, (change, response.text)
    # nothing registered by the refused attempts
    with database.session() as session, pytest.raises(NotFoundError,
                                                      match="no version-report keys"):
        accept_manifest(session, tenant="acme", vin=vin, raw=_manifest(vin, primary, ecu, 1))
    made = client.put(url, json=body, headers=writer)
    assert made.status_code == 200, made.text
    assert made.json() == {"vin": vin, "primary_serial": "TCU",
                           "primary_keyid": primary.public_key.keyid,
                           "ecu_keyids": {"BMS": ecu.public_key.keyid}}
    with database.session() as session:
        [entry] = list_audit(session, "acme", action="ota.vehicle_keys.register")
        assert entry.target == f"vehicle:{vin}"
        stranger = CryptoSigner.generate_ed25519()
        with pytest.raises(ManifestSignatureError):  # signed by a key nobody registered
            accept_manifest(session, tenant="acme", vin=vin,
                            raw=_manifest(vin, primary, stranger, 1))
        with pytest.raises(ManifestSignatureError):
            accept_manifest(session, tenant="acme", vin=vin,
                            raw=_manifest(vin, stranger, ecu, 1))
        [report] = accept_manifest(session, tenant="acme", vin=vin,
                                   raw=_manifest(vin, primary, ecu, 1))
        assert (report.ecu_serial, report.counter) == ("BMS", 1)
        with pytest.raises(NotFoundError, match="no version-report keys"):  # not globex's
            accept_manifest(session, tenant="globex", vin=vin,
                            raw=_manifest(vin, primary, ecu, 2))


def test_deltas_are_published_from_the_versions_the_tenants_fleet_runs_most(
    client: TestClient, settings: Settings, database: Database,
    new_tenant: Callable[[str], Any], new_client: Callable[..., Any],
    get_token: Callable[..., str],
) -> None:
    """No delta_from: the three versions most installed on BMS-CH50-HW3 across acme's twins
    (not globex's, not another hardware's, not the upload's own version) become the sources,
    each one whose image acme published; the result says the ECU counts and bytes saved."""
    writer, _, _ = _callers(new_tenant, new_client, get_token)
    layout = OtaLayout.under(settings.data_dir)
    layout.init({"root": (1, 1)})
    hw = "BMS-CH50-HW3"
    fleet = [("acme", hw, "2.6.0")] * 3 + [("acme", hw, "2.5.0")] * 2 + [
        ("acme", hw, "2.4.0"), ("acme", hw, "2.7.0"), ("acme", hw, "2.7.0"),
        ("acme", "BMS-OTHER-HW", "2.5.0"), ("acme", "BMS-OTHER-HW", "2.5.0"),
        ("acme", "BMS-OTHER-HW", "2.5.0")] + [("globex", hw, "2.3.0")] * 4
    with database.session() as session:
        for n, (tenant, hardware, version) in enumerate(fleet):
            vin = provision_vehicle(session, tenant=tenant, model="compact-bev", region="EU",
                                    cloud_key=CLOUD.verify_key, actor="test",
                                    rng=random.Random(500 + n))[0].vin
            record_ecu_inventory(session, vin, {"BMS": (hardware, version)})
    for version, counter in (("2.3.0", 3), ("2.5.0", 5), ("2.6.0", 6)):
        done = _publish(client, writer, _firmware(version), name=f"acme/bms-{version}.bin",
                        version=version, release_counter=counter, common_sources=0)
        assert done.status_code == 201 and done.json()["deltas"] == [], done.text

    published = _publish(client, writer, _firmware("2.7.0"), name="acme/bms-2.7.0.bin",
                         version="2.7.0", release_counter=7)
    assert published.status_code == 201, published.text
    body = published.json()
    # 2.4.0 (one ECU) has no published image, so it takes no place among the three
    assert body["common_sources"] == [
        {"version": "2.6.0", "ecus": 3, "image": "acme/bms-2.6.0.bin"},
        {"version": "2.5.0", "ecus": 2, "image": "acme/bms-2.5.0.bin"}]
    by_source = {d["source"]: d for d in body["deltas"]}
    assert set(by_source) == {"acme/bms-2.6.0.bin", "acme/bms-2.5.0.bin"}
    assert all(0 < d["delta_bytes"] < d["full_bytes"] == len(_firmware("2.7.0"))
               for d in by_source.values())
    saved = {s: d["full_bytes"] - d["delta_bytes"] for s, d in by_source.items()}
    assert body["bytes_saved"] == sum(saved.values())
    assert body["fleet_bytes_saved"] == (3 * saved["acme/bms-2.6.0.bin"]
                                         + 2 * saved["acme/bms-2.5.0.bin"])
    targets = layout.images().repo.targets().signed.targets
    assert {d["name"] for d in by_source.values()} <= set(targets)
    with database.session() as session:
        entry = list_audit(session, "acme", action="ota.image.publish")[-1]
    assert entry.target == "image:acme/bms-2.7.0.bin"
    assert entry.details["bytes_saved"] == body["bytes_saved"]

    # one source asked for: only that one, the fleet is not asked
    named = _publish(client, writer, _firmware("2.8.0"), name="acme/bms-2.8.0.bin",
                     version="2.8.0", release_counter=8, delta_from=["acme/bms-2.3.0.bin"])
    assert named.status_code == 201, named.text
    assert [d["source"] for d in named.json()["deltas"]] == ["acme/bms-2.3.0.bin"]
    assert named.json()["common_sources"] == []
    # N = 1: the most installed only
    one = _publish(client, writer, _firmware("2.9.0"), name="acme/bms-2.9.0.bin",
                   version="2.9.0", release_counter=9, common_sources=1)
    assert [d["source"] for d in one.json()["deltas"]] == ["acme/bms-2.6.0.bin"], one.text
    before = layout.images().repo.timestamp().signed.version
    too_many = _publish(client, writer, _firmware("3.0.0"), name="acme/bms-3.0.0.bin",
                        version="3.0.0", release_counter=10, common_sources=9)
    assert too_many.status_code == 422 and "common_sources" in too_many.text, too_many.text
    assert layout.images().repo.timestamp().signed.version == before
