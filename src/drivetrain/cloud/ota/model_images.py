"""A trained model published as an OTA image: the intrusion detector's model file (written by
``drivetrain ids train``), packed with its card into one hashed file of kind ``model``, for the
vehicle component that runs it. It then goes through :func:`publish_image` like any image, so
it is checked and signed the same way and reaches cars through the Director and the vehicle's
full verification; the car's version reports name the model's version for that component.
"""

from __future__ import annotations

from drivetrain.cloud.ota.publishing import ImageUpload
from drivetrain.core.errors import BadInputError
from drivetrain.edge import IdsModelError, pack_model_image


def default_model_image_name(hardware_id: str, version: str) -> str:
    """Where a model image is published when no name is given."""
    return f"models/{hardware_id}/ids-model-{version}.img"


def model_upload(model_file: bytes, *, hardware_id: str, release_counter: int, version: str,
                 name: str | None = None, model_name: str = "ids",
                 supplier: str | None = None,
                 delta_from: tuple[str, ...] = ()) -> ImageUpload:
    """The upload of an IDS model file as an image of kind ``model``: ``hardware_id`` names the
    vehicle component that runs it, ``version`` is the model's version.

    Raises:
        BadInputError: the file is not a loadable intrusion-detection model (nothing a
            vehicle could not load is published), or an empty version.
    """
    try:
        data = pack_model_image(model_file, name=model_name, version=version)
    except IdsModelError as e:
        raise BadInputError(f"model image: {e}") from e
    return ImageUpload(name or default_model_image_name(hardware_id, version), data,
                       hardware_id, release_counter, version, "model", supplier, delta_from)
