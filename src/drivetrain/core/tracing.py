"""OpenTelemetry tracing, optional: spans when ``opentelemetry-api`` is installed (the ``otel``
extra), nothing at all when it is not.

Code on the data path opens spans with :func:`span` and never imports OpenTelemetry itself;
without the package every call here is a cheap no-op, so the embedded deployment and the
vehicle's software carry no tracing cost. With it, the spans go to whatever tracer provider
the process installed — :func:`configure_tracing` installs an OTLP exporter when the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` variable is set (``drivetrain serve`` and ``drivetrain worker``
call it at start-up); tests install an in-memory exporter.

Trace context crosses process boundaries as a W3C ``traceparent`` string
(https://www.w3.org/TR/trace-context/): a vehicle may put one in its envelope's header (the
header is signed and keeps unknown fields, docs/wire-format.md), and a micro-batch's span
*links* to the context of every message it holds — the OpenTelemetry messaging convention
for batch receive: one consumer span, many producers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from opentelemetry.trace import Link, Span, Tracer

try:  # the optional extra: absent, tracing is a no-op
    from opentelemetry import propagate, trace

    AVAILABLE: Final[bool] = True
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    AVAILABLE = False  # type: ignore[misc]

TRACER_NAME: Final = "drivetrain"
#: The W3C trace-context header (also the envelope header field that carries it).
TRACEPARENT: Final = "traceparent"
_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
#: Most links one span gets (a micro-batch of 1000 messages links to the first ones only).
MAX_LINKS: Final = 128

AttributeValue = str | int | float | bool


#: The provider spans go to; None: OpenTelemetry's global one (see :func:`use_tracer_provider`).
_provider: Any = None


def use_tracer_provider(provider: Any) -> None:
    """Send Drivetrain's spans to ``provider`` instead of the global tracer provider (None:
    back to the global one) — for tests, which must not replace the process-wide provider."""
    global _provider
    _provider = provider


def _tracer() -> Tracer:
    if _provider is not None:
        tracer: Tracer = _provider.get_tracer(TRACER_NAME)
        return tracer
    return trace.get_tracer(TRACER_NAME)


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, AttributeValue] | None = None,
    *,
    links: Sequence[str] = (),
    kind: str = "internal",
) -> Iterator[Span | None]:
    """A span named ``name`` around the block (a child of the current one), or None without
    OpenTelemetry. ``links`` are ``traceparent`` strings of the messages the work is for
    (invalid ones are skipped, at most :data:`MAX_LINKS`); ``kind`` is ``internal``,
    ``server``, ``client``, ``producer`` or ``consumer``. An exception escaping the block is
    recorded on the span and re-raised.
    """
    if not AVAILABLE:
        yield None
        return
    span_kind = getattr(trace.SpanKind, kind.upper())
    with _tracer().start_as_current_span(
        name,
        kind=span_kind,
        attributes=dict(attributes or {}),
        links=_links(links),
    ) as current:
        yield current


def _links(traceparents: Sequence[str]) -> list[Link]:
    links: list[Link] = []
    for value in traceparents:
        if len(links) >= MAX_LINKS:
            break
        context = span_context_of(value)
        if context is not None:
            links.append(trace.Link(context))
    return links


def add_links(current: Span | None, traceparents: Sequence[str]) -> int:
    """Link ``current`` (a span from :func:`span`, or None) to the contexts the
    ``traceparent`` strings name, once the messages are read; returns how many links were
    added (invalid ones are skipped, at most :data:`MAX_LINKS`)."""
    if current is None or not current.is_recording():
        return 0
    links = _links(traceparents)
    for link in links:
        current.add_link(link.context)
    return len(links)


def span_context_of(traceparent: str) -> Any:
    """The remote span context a ``traceparent`` string names, or None (malformed, all-zero
    ids, or no OpenTelemetry). Never raises: the string may come from a vehicle."""
    if not AVAILABLE or not isinstance(traceparent, str):
        return None
    if not _TRACEPARENT.fullmatch(traceparent):
        return None
    context = propagate.extract({TRACEPARENT: traceparent})
    span_context = trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


def current_traceparent() -> str | None:
    """The current span's context as a ``traceparent`` string, or None (no span, or no
    OpenTelemetry) — what a producer puts in the message it sends."""
    if not AVAILABLE:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT)


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context to ``headers`` (message or HTTP headers); returns them."""
    if AVAILABLE:
        propagate.inject(headers)
    return headers


@contextmanager
def continued(headers: Mapping[str, str]) -> Iterator[None]:
    """Make the trace context in ``headers`` (e.g. an HTTP request's ``traceparent``) the
    parent of the spans opened in the block; without one, or without OpenTelemetry, nothing
    changes."""
    if not AVAILABLE or TRACEPARENT not in headers:
        yield
        return
    from opentelemetry import context as otel_context

    token = otel_context.attach(propagate.extract(dict(headers)))
    try:
        yield
    finally:
        otel_context.detach(token)


def configure_tracing(service_name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install a tracer provider exporting over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set and ``OTEL_SDK_DISABLED`` is not ``true``;
    returns whether it did. Needs ``opentelemetry-sdk`` and
    ``opentelemetry-exporter-otlp-proto-http``; without them, or without the variables, the
    process keeps the no-op tracer. ``OTEL_SERVICE_NAME`` overrides ``service_name``.
    """
    env = os.environ if environ is None else environ
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not AVAILABLE or not endpoint or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        return False
    name = env.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True
