"""The one exception tree.

Every error a Drivetrain API raises on purpose is a ``DrivetrainError``. The subtrees name the
failure domain, so callers (and the HTTP layer, which maps them to statuses in one place) can
react to the kind of failure without parsing messages. Messages quote the bad value and say
what was expected. Programmer misuse stays ``TypeError``/``ValueError``.
"""

from __future__ import annotations


class DrivetrainError(Exception):
    """Root of every error Drivetrain raises deliberately."""


# --- bad input: the caller sent something we cannot accept ------------------------------------
class BadInputError(DrivetrainError):
    """Input was malformed or out of the accepted domain. Nothing was changed."""


class UnknownSignalError(BadInputError):
    """A VSS path that is not in the catalog."""


class SignalTypeError(BadInputError):
    """A value whose type does not match the signal's VSS datatype."""


class SignalRangeError(BadInputError):
    """A value outside the signal's min/max."""


class CatalogFormatError(BadInputError):
    """A VSS export (JSON) that cannot be read as a signal tree."""


class DbcFormatError(BadInputError):
    """A DBC file that cannot be parsed or resolved."""


class CaptureFormatError(BadInputError):
    """A CAN capture (log file) that cannot be read; names the file and line."""


class SignalMapError(BadInputError):
    """A DBC→VSS mapping file that is malformed or points at unknown signals."""


class ExpressionSyntaxError(BadInputError):
    """A filter or trigger expression that does not parse; names the bad token."""


class QuerySyntaxError(ExpressionSyntaxError):
    """A fleet query that does not parse or names something unknown.

    ``token`` is the offending token as written and ``column`` its 1-based position.
    """

    def __init__(self, message: str, *, token: str = "", column: int = 0) -> None:
        super().__init__(message)
        self.token = token
        self.column = column


class InvalidTopicError(BadInputError):
    """A message topic or topic filter that breaks the MQTT rules or the ``dt/v1`` scheme."""


class WireFormatError(BadInputError):
    """A vehicle-link message (envelope or body) that cannot be parsed; names the bad field."""


class PayloadTooLargeError(WireFormatError):
    """A message (or what it declares: rows, decompressed bytes) exceeds a receiver's cap."""


class CampaignFormatError(WireFormatError):
    """A collection campaign (JSON) that is malformed or names unknown signals; names the field."""


class KeyFormatError(BadInputError):
    """A key (PEM, raw or base64) that cannot be read as the expected key type."""


class DriveCycleFormatError(BadInputError):
    """A drive-cycle speed table (CSV) that cannot be read; names the file, line and column."""


class SimulationConfigError(BadInputError):
    """Virtual-fleet settings that cannot be simulated (unknown model or region, a parameter
    outside its physical range); names the setting and what was expected."""


class TelemetrySchemaError(BadInputError):
    """A telemetry table whose columns or values break the lake's row schema; names the column."""


class QueryError(BadInputError):
    """A telemetry query (parameters or SQL) that cannot run; names the cause."""


# --- verification: something failed a cryptographic or integrity check -----------------------
class VerificationError(DrivetrainError):
    """A signature, digest or metadata check failed."""


class SignatureError(VerificationError):
    """A signature did not verify against the expected key."""


# --- identity and access ---------------------------------------------------------------------
class AuthError(DrivetrainError):
    """Root of authentication and authorization failures."""


class AuthenticationError(AuthError):
    """No credentials, or credentials that are invalid or expired (HTTP 401)."""


class PermissionDeniedError(AuthError):
    """Valid credentials without the scope, role or tenant for the action (HTTP 403)."""


# --- state -------------------------------------------------------------------------------------
class NotFoundError(DrivetrainError):
    """The named thing does not exist (or is not visible to the caller)."""


class ConflictError(DrivetrainError):
    """The change conflicts with the current state (duplicate, stale version)."""


class VersionConflictError(ConflictError):
    """An optimistic-concurrency write against a version that is no longer current.

    ``current`` and ``given`` (when the raiser knows them) are the resource's version and the
    one the writer based its change on.
    """

    def __init__(self, message: str, *, current: int | None = None, given: int | None = None) -> None:
        super().__init__(message)
        self.current = current
        self.given = given


class StateTransitionError(ConflictError):
    """A lifecycle change that the current state does not allow (approve a running campaign,
    cancel a finished job); names the current state and what it allows."""


# --- infrastructure ------------------------------------------------------------------------------
class TransportError(DrivetrainError):
    """A message could not be delivered or received over the vehicle link or bus."""


class TransportClosedError(TransportError):
    """A publish or subscribe on a transport that has been closed."""


class BackpressureTimeoutError(TransportError):
    """A publisher waited longer than its timeout for room in a full delivery queue."""


class RateLimitedError(DrivetrainError):
    """Too many requests of one kind from one caller; ``retry_after_s`` says when to retry
    (HTTP 429 with ``Retry-After``)."""

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StorageError(DrivetrainError):
    """The state database or file store failed (disk full, unreachable server)."""


class ConfigurationError(DrivetrainError):
    """Settings are missing or unsafe (for example a default secret outside the demo)."""
