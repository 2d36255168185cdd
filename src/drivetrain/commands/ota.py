"""`drivetrain ota`: the Uptane repositories (keys, images, Director) and the vehicle's TUF
client (``tuf-client``, the command-line protocol of the TUF conformance suite)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from drivetrain.commands import ota_rollout, tuf_client_cli
from drivetrain.commands.api_client import TokenOption, UrlOption, api_call, api_client
from drivetrain.commands.db import fail, load_settings_or_exit, open_migrated_database
from drivetrain.commands.output import Column, JsonOption, emit_json, print_table, stdout_console
from drivetrain.core.errors import DrivetrainError

if TYPE_CHECKING:
    from drivetrain.cloud.ota.layout import OtaLayout
    from drivetrain.cloud.ota.publishing import ImageUpload

app = typer.Typer(
    help="Secure over-the-air updates: Uptane Image and Director repositories on TUF.",
    no_args_is_help=True,
)
image_app = typer.Typer(help="The Image repository: every signed artifact.", no_args_is_help=True)
director_app = typer.Typer(help="The Director: per-vehicle signed assignments.",
                           no_args_is_help=True)
keys_app = typer.Typer(help="Repository signing keys and role thresholds.", no_args_is_help=True)
supplier_app = typer.Typer(help="Suppliers: delegated targets roles of the Image repository, "
                           "each with its own keys.", no_args_is_help=True)
keys_app.add_typer(supplier_app, name="supplier")
app.add_typer(image_app, name="image")
app.add_typer(director_app, name="director")
app.add_typer(keys_app, name="keys")
app.add_typer(tuf_client_cli.app, name="tuf-client")
app.add_typer(ota_rollout.app, name="rollout")


HardwareIdOption = Annotated[str, typer.Option("--hardware-id", help="ECU hardware id.")]
ReleaseCounterOption = Annotated[int, typer.Option(
    "--release-counter", min=0, help="Anti-rollback counter (never lower than installed).")]
VersionOption = Annotated[str, typer.Option("--version", help="Human version, e.g. 2.5.0.")]
KindOption = Annotated[str, typer.Option("--kind",
                                         help="firmware, app, decoder_manifest or model.")]
SupplierOption = Annotated[str | None, typer.Option(
    "--supplier", help="Sign it into this supplier's delegated role.")]
DeltaFromOption = Annotated[list[str] | None, typer.Option(
    "--delta-from", help="A published image vehicles run now: publish a delta from it "
    "(repeat).")]
SupplierThreshold = Annotated[int, typer.Option("--threshold", min=1, max=16,
                                               help="Signatures the supplier's role needs.")]
SupplierKeyCount = Annotated[int, typer.Option("--keys", min=1, max=16,
                                               help="Supplier keys to generate.")]


def _layout() -> OtaLayout:
    from drivetrain.cloud.ota.layout import OtaLayout

    return OtaLayout.under(load_settings_or_exit().data_dir)


def _table(title: str, rows: list[dict[str, Any]], names: list[str]) -> None:
    numeric = {"threshold", "keys", "on_host", "release_counter", "length"}
    print_table(title, [Column(n, "number" if n in numeric else "text") for n in names],
                [[r[n] for n in names] for r in rows])


def _error(e: DrivetrainError) -> NoReturn:
    fail(str(e))


@app.command("init")
def init(
    root_threshold: Annotated[int, typer.Option(
        "--root-threshold", min=1, max=16, help="Root signatures required.")] = 2,
    root_keys: Annotated[int, typer.Option(
        "--root-keys", min=1, max=16, help="Root keys to generate (kept offline).")] = 3,
) -> None:
    """Create the Image and Director repositories and their keys (root: threshold of offline
    keys; targets, snapshot, timestamp: one online key each)."""
    layout = _layout()
    try:
        layout.init({"root": (root_threshold, root_keys)})
    except DrivetrainError as e:
        _error(e)
    stdout_console().print(f"OTA repositories created in {layout.root} (root keys: "
                           f"{root_threshold} of {root_keys}, in keys/*/offline)")


@keys_app.command("show")
def keys_show(json_out: JsonOption = False) -> None:
    """Each repository's roles: threshold, key ids, whether the private key is on this host."""
    layout = _layout()
    rows = []
    try:
        for repo, store in (("image", layout.image_keys), ("director", layout.director_keys)):
            for role, keys in store.roles().items():
                present = {k.keyid for k in store.public_signers_present(role)}
                rows.append({"repository": repo, "role": role, "threshold": keys.threshold,
                             "keys": len(keys.keys), "on_host": len(present),
                             "key_ids": [k.keyid[:16] for k in keys.keys]})
        delegations = {s.name: s for s in layout.images().suppliers()} \
            if layout.initialised else {}
        for name in layout.image_keys.suppliers():
            keys = layout.image_keys.supplier(name)
            present = {k.keyid for k in keys.keys
                       if (layout.image_keys.path / "suppliers" / name / f"{k.keyid}.pem"
                           ).is_file()}
            rows.append({"repository": "image", "role": f"supplier:{name}",
                         "threshold": keys.threshold, "keys": len(keys.keys),
                         "on_host": len(present), "key_ids": [k.keyid[:16] for k in keys.keys],
                         "paths": list(delegations[name].paths) if name in delegations else []})
    except DrivetrainError as e:
        _error(e)
    if json_out:
        emit_json(rows)
        return
    _table("OTA signing keys", rows, ["repository", "role", "threshold", "keys", "on_host"])


@keys_app.command("rotate")
def keys_rotate(
    role: Annotated[str, typer.Argument(help="targets, snapshot or timestamp.")],
) -> None:
    """Revoke an online key of the Image repository, make a new one and sign a new root
    naming it (needs the offline root keys back on this host)."""
    layout = _layout()
    try:
        repo = layout.images().repo
        key = layout.image_keys.replace_key(role)
        version = repo.rotate_keys()
    except DrivetrainError as e:
        _error(e)
    stdout_console().print(f"image {role}: new key {key.keyid[:16]}…, root v{version}")


CommonSourcesOption = Annotated[int | None, typer.Option(
    "--common-sources", min=0, max=8, help="With no --delta-from: publish deltas from this "
    "many of the versions most installed on the hardware id across the twins (default: the "
    "ota_delta_common_sources setting, 3).")]


def _print_published(image: dict[str, Any], deltas: list[dict[str, Any]],
                     skipped: list[str], common: list[dict[str, Any]] | None = None,
                     fleet_bytes_saved: int = 0) -> None:
    by = f", signed by supplier {image['supplier']}" if image["supplier"] else ""
    stdout_console().print(f"published {image['name']} ({image['length']:,} bytes, sha256 "
                           f"{image['sha256'][:16]}…{by})")
    for installed in common or ():
        stdout_console().print(f"installed {installed['version']} on {installed['ecus']:,} "
                               f"ECU(s): delta source {installed['image']}")
    for delta in deltas:
        stdout_console().print(f"published {delta['name']}: {delta['delta_bytes']:,} bytes "
                               f"instead of {delta['full_bytes']:,}")
    for source in skipped:
        stdout_console().print(f"no delta from {source}: not smaller than the full image")
    if deltas:
        saved = sum(d["full_bytes"] - d["delta_bytes"] for d in deltas)
        fleet = (f"; {fleet_bytes_saved:,} across the ECUs running the sources"
                 if fleet_bytes_saved else "")
        stdout_console().print(f"bytes saved: {saved:,} per download of each delta{fleet}")


@supplier_app.command("add")
def supplier_add(
    name: Annotated[str, typer.Argument(help="Supplier name, e.g. acme (lower case).")],
    threshold: SupplierThreshold = 1,
    keys: SupplierKeyCount = 1,
    path: Annotated[list[str] | None, typer.Option(
        "--path", help="Path pattern it may sign, e.g. 'acme/*' (repeat; default NAME/* and "
        "NAME/*/*, or NAME/HW/* per --hardware-id).")] = None,
    hardware_id: Annotated[list[str] | None, typer.Option(
        "--hardware-id", help="Only images built for this hardware id (repeat).")] = None,
) -> None:
    """Create a supplier's keys and delegate to it from the Image repository's targets."""
    layout = _layout()
    try:
        images = layout.images()
        layout.image_keys.generate_supplier(name, threshold, keys)
        info = images.add_supplier(name, paths=path or (), hardware_ids=hardware_id or ())
    except DrivetrainError as e:
        _error(e)
    stdout_console().print(f"supplier {info.name}: {info.threshold} of {len(info.keyids)} "
                           f"key(s), paths {', '.join(info.paths)}")


@supplier_app.command("rotate")
def supplier_rotate(
    name: Annotated[str, typer.Argument(help="The supplier.")],
    threshold: SupplierThreshold = 1,
    keys: SupplierKeyCount = 1,
) -> None:
    """Revoke a supplier's keys (lost or compromised), make new ones and delegate to them
    (same paths); its images are re-signed, metadata signed with the old keys is refused."""
    layout = _layout()
    try:
        info = layout.images().rotate_supplier(name, threshold, keys)
    except DrivetrainError as e:
        _error(e)
    stdout_console().print(f"supplier {info.name}: new keys {', '.join(k[:16] for k in info.keyids)}")


@image_app.command("add")
def image_add(
    file: Annotated[Path, typer.Argument(help="The image file.", exists=True, dir_okay=False)],
    name: Annotated[str, typer.Option("--name", help="Target name, e.g. bms/bms-2.5.0.bin.")],
    hardware_id: HardwareIdOption,
    release_counter: ReleaseCounterOption,
    version: VersionOption,
    kind: KindOption = "firmware",
    supplier: SupplierOption = None,
    delta_from: DeltaFromOption = None,
    common_sources: CommonSourcesOption = None,
) -> None:
    """Sign and publish an image in the Image repository (the same checks and signing as
    POST /v1/ota/images). With no --delta-from, deltas come from the versions most
    installed on the hardware id across every tenant's twins (when there is a state
    database)."""
    from drivetrain.cloud.ota.publishing import ImageUpload

    _publish(ImageUpload(name, file.read_bytes(), hardware_id, release_counter, version, kind,
                         supplier, tuple(delta_from or ())), common_sources)


def _publish(upload: ImageUpload, common_sources: int | None) -> None:
    """Publish ``upload`` with :func:`publish_image` into the local Image repository and print
    what was published; without named delta sources, deltas come from the versions most
    installed on its hardware id (``common_sources``, default the setting)."""
    from drivetrain.cloud.ota.publishing import Published, publish_image

    settings = load_settings_or_exit()
    common = settings.ota_delta_common_sources if common_sources is None else common_sources
    images = _layout().images()
    done: Published
    try:
        if upload.delta_from or not common or not (settings.database_url
                                                   or (settings.data_dir / "state.db").is_file()):
            done = publish_image(images, upload, common=common)
        else:
            database = open_migrated_database(settings)
            try:
                with database.session() as session:
                    done = publish_image(images, upload, session=session, common=common)
            finally:
                database.dispose()
    except DrivetrainError as e:
        _error(e)
    _print_published(done.image.to_dict(),
                     [{"name": d.name, "delta_bytes": d.delta_bytes,
                       "full_bytes": d.full_bytes} for d in done.deltas], list(done.skipped),
                     [c.to_dict() for c in done.common], done.fleet_bytes_saved)


@image_app.command("add-model")
def image_add_model(
    file: Annotated[Path, typer.Argument(
        help="An intrusion-detection model file (from 'drivetrain ids train').", exists=True,
        dir_okay=False)],
    hardware_id: Annotated[str, typer.Option(
        "--hardware-id", help="Hardware id of the vehicle component that runs the model.")],
    release_counter: ReleaseCounterOption,
    version: Annotated[str, typer.Option("--version", help="The model's version, e.g. 3.")],
    name: Annotated[str | None, typer.Option(
        "--name", help="Target name (default models/HARDWARE_ID/ids-model-VERSION.img).")] = None,
    supplier: SupplierOption = None,
    delta_from: DeltaFromOption = None,
) -> None:
    """Publish a trained IDS model as an image of kind model: the model file and its card,
    packed and hashed, signed like any image (the same checks as 'ota image add')."""
    from drivetrain.cloud.ota.model_images import model_upload

    try:
        upload = model_upload(file.read_bytes(), hardware_id=hardware_id,
                              release_counter=release_counter, version=version, name=name,
                              supplier=supplier, delta_from=tuple(delta_from or ()))
    except DrivetrainError as e:
        _error(e)
    _publish(upload, None)


@image_app.command("publish")
def image_publish(
    file: Annotated[Path, typer.Argument(help="The image file.", exists=True, dir_okay=False)],
    name: Annotated[str, typer.Option(
        "--name", help="Target name under the token's tenant, e.g. acme/bms/bms-2.6.1.bin.")],
    hardware_id: HardwareIdOption,
    release_counter: ReleaseCounterOption,
    version: VersionOption,
    token: TokenOption,
    kind: KindOption = "firmware",
    supplier: SupplierOption = None,
    delta_from: DeltaFromOption = None,
    common_sources: CommonSourcesOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Publish an image through the API (POST /v1/ota/images, scope ota:write): the platform
    signs it with the same checks as 'ota image add'."""
    params: dict[str, Any] = {"name": name, "hardware_id": hardware_id,
                              "release_counter": release_counter, "version": version,
                              "kind": kind}
    if supplier is not None:
        params["supplier"] = supplier
    if delta_from:
        params["delta_from"] = delta_from
    if common_sources is not None:
        params["common_sources"] = common_sources
    with api_client(url, token) as client:
        done = api_call(client, "POST", "/v1/ota/images", params=params,
                        content=file.read_bytes(),
                        headers={"Content-Type": "application/octet-stream"}).json()
    if as_json:
        emit_json(done)
        return
    _print_published(done["image"], done["deltas"], done["skipped_delta_sources"],
                     done["common_sources"], done["fleet_bytes_saved"])


@image_app.command("delta")
def image_delta(
    source: Annotated[str, typer.Argument(help="The image vehicles run now.")],
    target: Annotated[str, typer.Argument(help="The image they should get.")],
) -> None:
    """Publish a bsdiff4 delta from SOURCE to TARGET (the full image stays the fallback)."""
    try:
        delta = _layout().images().add_delta(source, target)
    except DrivetrainError as e:
        _error(e)
    stdout_console().print(f"published {delta.name}: {delta.delta_bytes:,} bytes instead of "
                           f"{delta.full_bytes:,} ({delta.bytes_saved:,} saved per vehicle)")


@image_app.command("list")
def image_list(json_out: JsonOption = False) -> None:
    """Every image the Image repository signs."""
    try:
        images = [i.to_dict() for i in _layout().images().images()]
    except DrivetrainError as e:
        _error(e)
    if json_out:
        emit_json(images)
        return
    if not images:
        stdout_console().print("no images yet: publish one with 'drivetrain ota image add'")
        return
    _table("Image repository", images,
           ["name", "version", "hardware_id", "release_counter", "length", "kind", "supplier"])


@director_app.command("assign")
def director_assign(
    vin: Annotated[str, typer.Argument(help="The vehicle.")],
    ecu: Annotated[list[str], typer.Option(
        "--ecu", help="SERIAL=HARDWARE_ID=IMAGE (repeat per ECU).")],
) -> None:
    """Sign new Director targets for a vehicle: exactly these ECUs and images."""
    from drivetrain.cloud.ota.director import EcuAssignment

    assignments = []
    for spec in ecu:
        parts = spec.split("=")
        if len(parts) != 3 or not all(parts):
            fail(f"--ecu {spec!r}: expected SERIAL=HARDWARE_ID=IMAGE", code=2)
        assignments.append(EcuAssignment(*parts))
    layout = _layout()
    try:
        version = layout.director().assign(vin, assignments, layout.images())
    except DrivetrainError as e:
        _error(e)
    stdout_console().print(f"{vin}: Director targets v{version} ({len(assignments)} ECU(s))")


@director_app.command("show")
def director_show(
    vin: Annotated[str, typer.Argument(help="The vehicle.")], json_out: JsonOption = False,
) -> None:
    """What the Director currently tells a vehicle to install."""
    try:
        rows = [{"ecu_serial": a.ecu_serial, "hardware_id": a.hardware_id, "image": a.image}
                for a in _layout().director().assignments(vin)]
    except DrivetrainError as e:
        _error(e)
    if json_out:
        emit_json(rows)
        return
    if not rows:
        stdout_console().print(f"the Director assigns no image to {vin}")
        return
    _table(f"Director assignments of {vin}", rows, ["ecu_serial", "hardware_id", "image"])


@app.command("refresh-timestamp")
def refresh_timestamp() -> None:
    """Re-sign the Image repository's timestamp so vehicles can tell it is not frozen."""
    try:
        version = _layout().images().repo.refresh_timestamp()
    except DrivetrainError as e:
        _error(e)
    stdout_console().print(f"timestamp v{version}")


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="Port (0: any free port).")] = 8780,
) -> None:
    """Serve the Image and Director repositories over HTTP, read-only (metadata is signed)."""
    from drivetrain.cloud.ota.serve import make_server

    layout = _layout()
    try:
        layout.images()
    except DrivetrainError as e:
        _error(e)
    server = make_server(layout, host, port)
    bound_host, bound_port = server.server_address[:2]
    stdout_console().print(f"serving OTA repositories of {layout.root} on "
                           f"http://{bound_host!s}:{bound_port} (image/, director/<VIN>/)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
