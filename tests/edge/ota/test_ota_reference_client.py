"""python-tuf's own reference client (ngclient ``Updater``, default settings) refreshes against
our Image repository over HTTP, served by ``drivetrain.cloud.ota.serve``, and downloads an
image: our repository is plain TUF that any conforming client can use."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tuf.ngclient import Updater

from drivetrain.cloud.ota.layout import OtaLayout
from drivetrain.cloud.ota.serve import BackgroundServer


def test_reference_ngclient_refreshes_and_downloads_an_image(tmp_path: Path) -> None:
    layout = OtaLayout.under(tmp_path / "cloud")
    layout.init({"root": (2, 3)})
    image = b"\x7fELF firmware " * 4096
    layout.images().add_image("bms/bms-2.5.0.bin", image, hardware_id="bms-v2",
                              release_counter=5, version="2.5.0")
    metadata, downloads = tmp_path / "client" / "metadata", tmp_path / "client" / "downloads"
    metadata.mkdir(parents=True)
    downloads.mkdir()
    with BackgroundServer(layout) as server:
        updater = Updater(
            str(metadata), f"{server.url}/image/metadata", str(downloads),
            f"{server.url}/image/targets", bootstrap=layout.images().repo.root_bytes(1),
        )
        updater.refresh()
        info = updater.get_targetinfo("bms/bms-2.5.0.bin")
        assert info is not None
        assert info.custom == {"hardware_id": "bms-v2", "release_counter": 5,
                               "version": "2.5.0", "kind": "firmware"}
        path = updater.download_target(info)
    assert Path(path).read_bytes() == image
    assert info.hashes["sha256"] == hashlib.sha256(image).hexdigest()
    # the client kept what it verified: every top-level role
    assert {p.name for p in metadata.iterdir()} >= {"root.json", "timestamp.json",
                                                    "snapshot.json", "targets.json"}
