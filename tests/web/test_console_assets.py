"""The console and the API docs are served from the package, reference nothing outside the
host, and stay out of the API's OpenAPI document (no browser needed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from drivetrain.api import create_app
from drivetrain.core.settings import Settings
from drivetrain.web.console import CONTENT_SECURITY_POLICY, STATIC_DIR

ASSET = re.compile(r'(?:src|href)="([^"]+)"')
IMPORT = re.compile(r"""(?:^|\s)(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]""", re.MULTILINE)
ABSOLUTE_URL = re.compile(r"https?://[^\s'\"`)]+")
#: The only absolute URL the console's files may hold: SVG's XML namespace (a name, never fetched).
NAMESPACES = {"http://www.w3.org/2000/svg"}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app on its own SQLite database (the console does not depend on the engine)."""
    with TestClient(create_app(settings)) as http:
        yield http


def test_the_console_page_is_served_at_the_root_with_a_same_origin_policy(
    client: TestClient,
) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "connect-src 'self'" in CONTENT_SECURITY_POLICY
    assert "<html" in response.text
    assert client.head("/").status_code == 200


def test_every_asset_and_module_the_console_loads_is_served_from_the_package(
    client: TestClient,
) -> None:
    """Follow index.html's src/href and every ES module import: each resolves on this host."""
    page = client.get("/").text
    pending = [url for url in ASSET.findall(page) if not url.startswith("#")]
    seen: set[str] = set()
    while pending:
        url = pending.pop()
        if url in seen:
            continue
        seen.add(url)
        assert url.startswith("/console/"), f"{url} is not one of the console's own files"
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        if url.endswith(".js"):
            assert "javascript" in response.headers["content-type"], url
            base = url.rsplit("/", 1)[0]
            for target in IMPORT.findall(response.text):
                assert target.startswith(("./", "../")), (url, target)
                parts = (base + "/" + target).split("/")
                resolved: list[str] = []
                for part in parts:
                    if part == "..":
                        resolved.pop()
                    elif part not in (".", ""):
                        resolved.append(part)
                pending.append("/" + "/".join(resolved))
    pages = {u for u in seen if "/pages/" in u}
    assert {f"/console/js/pages/{name}.js" for name in
            ("fleet", "vehicle", "data", "campaigns", "jobs", "ingest", "subscriptions")} <= pages


def test_no_console_file_names_an_outside_address() -> None:
    found = {
        (path.relative_to(STATIC_DIR).as_posix(), url)
        for path in STATIC_DIR.rglob("*") if path.is_file()
        for url in ABSOLUTE_URL.findall(path.read_text(encoding="utf-8"))
        if url not in NAMESPACES
    }
    assert found == set()


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_api_docs_load_their_scripts_from_this_host(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert "default-src 'self'" in response.headers["content-security-policy"]
    urls = ASSET.findall(response.text)
    assert urls and all(url.startswith("/docs-assets/") for url in urls), urls
    for url in urls:
        assert client.get(url).status_code == 200, url
    assert "validatorUrl" not in response.text or '"validatorUrl": null' in response.text


def test_the_console_and_docs_stay_out_of_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith(("/console", "/docs", "/redoc"))]


def test_console_assets_are_package_data() -> None:
    """The wheel ships them: pyproject's package-data patterns cover every static file."""
    text = (Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    patterns = set(re.findall(r'"\*\.(\w+)"', text))
    suffixes = {p.suffix.lstrip(".") for p in STATIC_DIR.rglob("*") if p.is_file()}
    assert suffixes <= patterns, suffixes - patterns
