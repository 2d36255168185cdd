"""The fleet registry: which vehicles exist, who owns them, where their data lives, their keys.

Public surface:

- :class:`Vehicle` and the functions :func:`register_vehicle`, :func:`get_vehicle`,
  :func:`get_vehicles`, :func:`list_vehicles`, :func:`count_vehicles`,
  :func:`rotate_vehicle_key`, :func:`retire_vehicle`, :func:`validate_vin`.
- :func:`provision_vehicle`, :class:`VehicleCredentials`, :func:`generate_vin`,
  :func:`load_or_create_cloud_key`, :func:`cloud_signing_key` — identities and keys.
"""

from drivetrain.cloud.fleet.provisioning import (
    VehicleCredentials,
    generate_vin,
    load_or_create_cloud_key,
    provision_vehicle,
)
from drivetrain.cloud.fleet.service import (
    Vehicle,
    count_vehicles,
    get_vehicle,
    get_vehicles,
    list_vehicles,
    register_vehicle,
    retire_vehicle,
    rotate_vehicle_key,
    validate_vin,
)
from drivetrain.core.crypto import SigningKey
from drivetrain.core.settings import Settings
from drivetrain.core.vin import vin_check_digit


def cloud_signing_key(settings: Settings) -> SigningKey:
    """The cloud's downlink signing key: created under data_dir in embedded mode only."""
    return load_or_create_cloud_key(
        settings.cloud_key_path, create=settings.deployment == "embedded"
    )


__all__ = [
    "Vehicle",
    "VehicleCredentials",
    "cloud_signing_key",
    "count_vehicles",
    "generate_vin",
    "get_vehicle",
    "get_vehicles",
    "list_vehicles",
    "load_or_create_cloud_key",
    "provision_vehicle",
    "register_vehicle",
    "retire_vehicle",
    "rotate_vehicle_key",
    "validate_vin",
    "vin_check_digit",
]
