"""The model store's card parser: whatever bytes sit in ``card.json``, reading it answers a
card or a ``ModelArtifactError`` naming the file — never another exception."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from drivetrain.cloud.insights.registry import CARD_FILE, ModelArtifactError, ModelRegistry

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)
_CARD_KEYS = ("name", "version", "kind", "created_at", "code_version", "features", "training",
              "metrics", "parameters", "sha256")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=400) | _JSON.map(lambda v: json.dumps(v).encode())
       | st.fixed_dictionaries({k: _JSON for k in _CARD_KEYS}).map(lambda v: json.dumps(v).encode()))
@example(raw=b"[" * 100_000)  # deep nesting
@example(raw=b'{"version": 1e999999}')  # a huge number
@example(raw=b"\xff\xfe{}")  # bad UTF-8
@example(raw=json.dumps({k: "x" for k in _CARD_KEYS}
                        | {"created_at": "2026-01-01T00:00:00+00:00", "version": float("inf")}).encode())
@example(raw=b" " * (1024 * 1024 + 1))  # over the size cap
def test_any_card_bytes_give_a_card_or_an_artifact_error(tmp_path: Path, raw: bytes) -> None:
    folder = tmp_path / "models" / "maintenance" / "1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CARD_FILE).write_bytes(raw)
    registry = ModelRegistry(tmp_path / "models")
    try:
        card = registry.card("maintenance")
    except ModelArtifactError as e:
        assert CARD_FILE in str(e) or "model card" in str(e)
    else:
        assert card.name == str(json.loads(raw)["name"])
