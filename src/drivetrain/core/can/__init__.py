"""The CAN codec: frames, DBC files, captures, the vectorised decoder and the DBC→VSS map.

Public surface (everything else in this package is internal; import these names from
``drivetrain.core.can``):

- frames: :class:`FrameBatch` (frames as arrays), :class:`DecodedSignals`, the payload limits;
- DBC: :func:`load_dbc` (with the repairs real-world files need), :func:`dump_dbc`,
  :class:`LoadedDbc`;
- captures: :func:`read_capture`, :func:`iter_capture`, :func:`write_capture`,
  :func:`detect_format` over candump, ASC, BLF and two CSV layouts;
- decoding: :class:`BatchDecoder` (bit-exact with cantools), :func:`decode_capture` (a capture
  to Parquet) and its progress and summary;
- decoder manifests (a vehicle model's DBCs and map, as the cloud sends them):
  :class:`DecoderManifest`;
- end-to-end protection (AUTOSAR E2E profile 1 counters and CRC-8 checksums declared in the
  DBC): :class:`E2EChecker`, :class:`E2EProtection`, :func:`e2e_protection`, :class:`Crc8`;
- the DBC→VSS mapping: :class:`SignalMap`, :func:`load_signal_map`, :func:`parse_signal_map`,
  :func:`dump_signal_map`, :func:`dumps_signal_map`, :class:`VssSignals`.
"""

from drivetrain.core.can.captures import (
    CAPTURE_FORMATS,
    DEFAULT_CHUNK_FRAMES,
    Capture,
    CaptureChunk,
    CaptureFormat,
    FrameLabels,
    MalformedLine,
    detect_format,
    iter_capture,
    read_capture,
    write_capture,
)
from drivetrain.core.can.dbc import LoadedDbc, dump_dbc, load_dbc
from drivetrain.core.can.decoder import BatchDecoder, DecodeReport, FrameKey
from drivetrain.core.can.e2e import (
    CHECKSUM_ALGORITHMS,
    CRC8_AUTOSAR_H2F,
    CRC8_SAE_J1850,
    Crc8,
    E2EChecker,
    E2EProtection,
    E2EVerdict,
    e2e_protection,
)
from drivetrain.core.can.frames import (
    CAN_FD_MAX_BYTES,
    CLASSIC_CAN_MAX_BYTES,
    DecodedSignals,
    FrameBatch,
)
from drivetrain.core.can.manifest import MANIFEST_ECU, MAX_MANIFEST_BYTES, DecoderManifest
from drivetrain.core.can.pipeline import (
    BASE_SCHEMA,
    DecodeProgress,
    DecodeSummary,
    decode_capture,
    parquet_options,
)
from drivetrain.core.can.signal_map import (
    SignalMap,
    SignalMapping,
    VssSignals,
    dump_signal_map,
    dumps_signal_map,
    load_signal_map,
    parse_signal_map,
)

__all__ = [
    "BASE_SCHEMA",
    "CAN_FD_MAX_BYTES",
    "CAPTURE_FORMATS",
    "CHECKSUM_ALGORITHMS",
    "CLASSIC_CAN_MAX_BYTES",
    "CRC8_AUTOSAR_H2F",
    "CRC8_SAE_J1850",
    "DEFAULT_CHUNK_FRAMES",
    "MANIFEST_ECU",
    "MAX_MANIFEST_BYTES",
    "BatchDecoder",
    "Capture",
    "CaptureChunk",
    "CaptureFormat",
    "Crc8",
    "DecodeProgress",
    "DecodeReport",
    "DecodeSummary",
    "DecodedSignals",
    "DecoderManifest",
    "E2EChecker",
    "E2EProtection",
    "E2EVerdict",
    "FrameBatch",
    "FrameKey",
    "FrameLabels",
    "LoadedDbc",
    "MalformedLine",
    "SignalMap",
    "SignalMapping",
    "VssSignals",
    "decode_capture",
    "detect_format",
    "dump_dbc",
    "dump_signal_map",
    "dumps_signal_map",
    "e2e_protection",
    "iter_capture",
    "load_dbc",
    "load_signal_map",
    "parquet_options",
    "parse_signal_map",
    "read_capture",
    "write_capture",
]
