"""The edge package ships to cars: it imports drivetrain.core and libraries, nothing from the cloud;
the vehicle reads the credential file the fleet registry writes."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from drivetrain.cloud.fleet import VehicleCredentials
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import BadInputError, ConfigurationError, KeyFormatError
from drivetrain.edge import VehicleIdentity

EDGE = Path(__file__).parents[2] / "src/drivetrain/edge"


def test_edge_modules_import_only_core_and_libraries() -> None:
    offenders = []
    for module in sorted(EDGE.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("drivetrain.") and not name.startswith(
                    ("drivetrain.core", "drivetrain.edge")
                ):
                    offenders.append(f"{module.name}: {name}")
    assert offenders == []
    assert len(list(EDGE.glob("*.py"))) >= 10


def test_importing_the_agent_loads_no_cloud_code() -> None:
    code = (
        "import sys, drivetrain.edge.agent, drivetrain.edge.sources;"
        "print(sorted(m for m in sys.modules if m.startswith(('drivetrain.cloud', 'drivetrain.api', 'drivetrain.sim.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _credentials(tmp_path: Path) -> Path:
    credentials = VehicleCredentials(
        vin="DTVJETH88T571PG8B", model="compact-bev", region="EU", tenant="acme",
        signing_key=SigningKey.generate(), cloud_key=SigningKey.generate().verify_key,
    )  # fmt: skip
    path = tmp_path / "vehicle.json"
    credentials.write(path)
    return path


def test_vehicle_reads_the_credential_file_the_registry_writes(tmp_path: Path) -> None:
    path = _credentials(tmp_path)
    written = VehicleCredentials.read(path)
    identity = VehicleIdentity.read(path)
    assert identity.vin == written.vin and identity.region == "EU" and identity.tenant == "acme"
    assert identity.signing_key.key_id == written.signing_key.key_id
    assert identity.cloud_key == written.cloud_key
    assert "PRIVATE" not in repr(identity) and identity.vin in repr(identity)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"version": 2}, BadInputError, "version 2; expected 1"),
        ({"vin": "WDD123"}, BadInputError, "field 'vin'"),
        ({"private_key_pem": None}, BadInputError, "'private_key_pem' missing"),
        ({"cloud_public_key": "not base64!"}, KeyFormatError, "not valid base64"),
    ],
)
def test_malformed_credentials_are_refused_naming_the_field(
    tmp_path: Path, change: dict[str, object], error: type[Exception], message: str
) -> None:
    path = _credentials(tmp_path)
    data = json.loads(path.read_text())
    data.update(change)
    path.write_text(json.dumps(data))
    with pytest.raises(error, match=message):
        VehicleIdentity.read(path)


def test_missing_or_exposed_credentials_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="vehicle credentials"):
        VehicleIdentity.read(tmp_path / "absent.json")
    path = _credentials(tmp_path)
    path.chmod(0o640)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        VehicleIdentity.read(path)
