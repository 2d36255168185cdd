"""DBC loading: IMPORT inlining, repairs of real-world quirks, and errors that name the line."""

from __future__ import annotations

from pathlib import Path

import cantools
import pytest

from drivetrain.core.can import LoadedDbc, load_dbc
from drivetrain.core.can.dbc_text import repair, tokenize
from drivetrain.core.errors import DbcFormatError

DBC_DIR = Path(__file__).resolve().parents[1] / "data" / "dbc"


def _names(loaded: LoadedDbc) -> set[str]:
    return {m.name for m in loaded.database.messages}


def test_imports_are_inlined_recursively_before_the_including_file() -> None:
    loaded = load_dbc(DBC_DIR / "imports" / "car.dbc")
    assert [m.name for m in loaded.database.messages] == ["BASE", "COMMON", "CAR_ONLY"]
    assert loaded.notes == (
        "inlined IMPORT _base.dbc (from _common.dbc)",
        "inlined IMPORT _common.dbc (from car.dbc)",
    )
    gear = loaded.database.get_message_by_name("COMMON").get_signal_by_name("GEAR")
    assert gear.conversion.choices[3] == "D"
    speed = loaded.database.get_message_by_name("CAR_ONLY").get_signal_by_name("SPEED")
    assert speed.comment == "vehicle speed"


def test_a_file_imported_twice_is_inlined_once() -> None:
    loaded = load_dbc(DBC_DIR / "imports" / "twice.dbc")
    assert sorted(_names(loaded)) == ["BASE", "COMMON", "OWN"]
    assert "skipped repeated IMPORT _base.dbc in twice.dbc (already inlined)" in loaded.notes


def test_import_cycle_is_refused_with_the_chain() -> None:
    with pytest.raises(
        DbcFormatError, match=r"_b\.dbc:1: IMPORT cycle _a\.dbc -> _b\.dbc -> _a\.dbc"
    ):
        load_dbc(DBC_DIR / "cycle" / "_a.dbc")


def test_import_of_a_missing_file_names_the_importer_and_line() -> None:
    with pytest.raises(
        DbcFormatError, match=r"missing\.dbc:1: IMPORT '_nowhere\.dbc' names no file"
    ):
        load_dbc(DBC_DIR / "imports" / "missing.dbc")


def test_missing_dbc_file_is_reported_with_its_path() -> None:
    with pytest.raises(DbcFormatError, match=r"cannot read DBC file .*no_such\.dbc"):
        load_dbc(DBC_DIR / "no_such.dbc")


def test_syntax_error_names_file_and_line() -> None:
    with pytest.raises(
        DbcFormatError, match=r"syntax_error\.dbc:14:\d+: not valid DBC syntax in '"
    ):
        load_dbc(DBC_DIR / "syntax_error.dbc")


def test_syntax_error_inside_an_import_names_the_imported_file() -> None:
    text = (DBC_DIR / "syntax_error.dbc").read_text()
    # the broken fragment follows a 3-line including file: its own line number must come back
    with pytest.raises(DbcFormatError, match=r"_broken\.dbc:14:\d+: not valid DBC syntax"):
        _load_pair("_broken.dbc", text)


def _load_pair(fragment: str, fragment_text: str) -> LoadedDbc:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / fragment).write_text(fragment_text)
        main = Path(tmp) / "main.dbc"
        main.write_text(
            f'CM_ "IMPORT {fragment}";\n\nBO_ 9 MAIN: 8 XXX\n SG_ S : 0|8@1+ (1,0) [0|255] "" XXX\n'
        )
        return load_dbc(main)


@pytest.fixture(scope="module")
def loaded() -> LoadedDbc:
    return load_dbc(DBC_DIR / "quirks.dbc")


class TestQuirksOfRealFiles:
    def test_cantools_alone_refuses_the_file(self) -> None:
        with pytest.raises(cantools.database.UnsupportedDatabaseFormatError):
            cantools.database.load_file(DBC_DIR / "quirks.dbc", strict=False)

    def test_id_above_0x7ff_without_flag_becomes_extended_everywhere(
        self, loaded: LoadedDbc
    ) -> None:
        message = loaded.database.get_message_by_name("J1939_ENGINE")
        assert (message.frame_id, message.is_extended_frame) == (0x18FEF100, True)
        assert message.get_signal_by_name("ENGINE_SPEED").comment == "J1939 engine speed"
        assert message.get_signal_by_name("0_COUNTER").conversion.choices[15] == "fifteen"
        assert any("as extended: 0x18FEF100" in note for note in loaded.notes)

    def test_names_starting_with_a_digit_are_kept(self, loaded: LoadedDbc) -> None:
        message = loaded.database.get_message_by_name("2017_5")
        assert [s.name for s in message.signals] == ["5_SEC_TIMER"]
        assert loaded.database.decode_message(1275, b"\x2a" + bytes(7)) == {"5_SEC_TIMER": 42}

    def test_leading_dot_number_is_read_as_its_value(self, loaded: LoadedDbc) -> None:
        speed = loaded.database.get_message_by_name("J1939_ENGINE").get_signal_by_name(
            "ENGINE_SPEED"
        )
        assert speed.conversion.scale == 0.125

    def test_message_with_an_id_beyond_29_bits_is_dropped_with_its_references(
        self, loaded: LoadedDbc
    ) -> None:
        assert "TOO_WIDE" not in _names(loaded)
        assert any("TOO_WIDE (0x40140639)" in note for note in loaded.notes)

    def test_comment_fixes_and_unknown_value_tables_are_noted(self, loaded: LoadedDbc) -> None:
        notes = "\n".join(loaded.notes)
        assert "dropped 1 comment(s) without a valid target (BU_/BO_/SG_/EV_): " in notes
        assert "quirks.dbc:23" in notes
        assert "closed 1 statement(s) missing their ';': " in notes
        assert "VAL_ 1275 NOT_A_SIGNAL" in notes
        assert (
            loaded.database.get_message_by_name("2017_5").comment
            == "a comment without its semicolon"
        )


def test_repairs_keep_the_line_count() -> None:
    text = (DBC_DIR / "quirks.dbc").read_text()
    assert repair(text).text.count("\n") == text.count("\n")


def test_tokenizer_reads_exponents_as_numbers_and_digit_names_as_words() -> None:
    kinds = [(t.kind, t.text) for t in tokenize("1e-5 64_BIT_LE 2017 .25 -3.5")]
    assert kinds == [
        ("NUMBER", "1e-5"),
        ("WORD", "64_BIT_LE"),
        ("NUMBER", "2017"),
        ("NUMBER", ".25"),
        ("NUMBER", "-3.5"),
    ]


def test_unexpected_character_is_refused_with_its_line() -> None:
    with pytest.raises(DbcFormatError, match=r"<text>:2: unexpected character '\$'"):
        repair('VERSION ""\nBO_ 1 A: 8 XXX $\n')


@pytest.mark.parametrize("text", ["", "\n\n", "// only a comment\n"])
def test_an_empty_dbc_is_refused_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.dbc"
    path.write_text(text)
    with pytest.raises(DbcFormatError) as refused:
        load_dbc(path)
    assert str(refused.value).startswith(f"{path}: the DBC file is empty; expected")


def test_a_syntax_error_names_file_line_column_and_the_text(tmp_path: Path) -> None:
    path = tmp_path / "bad.dbc"
    path.write_text('VERSION ""\n\nBO_ 12 Foo: 8 Vector__XXX\n SG_ Oops : x\n')
    with pytest.raises(DbcFormatError) as refused:
        load_dbc(path)
    message = str(refused.value)
    assert message.startswith(f"{path}:4:13: not valid DBC syntax in 'SG_ Oops : x' at 'x'")
    assert ">>!<<" not in message and "Invalid syntax" not in message


def test_decoding_with_a_dbc_without_messages_is_refused(tmp_path: Path) -> None:
    from drivetrain.core.can.pipeline import decode_capture

    dbc = tmp_path / "none.dbc"
    dbc.write_text('VERSION ""\n')
    capture = tmp_path / "one.log"
    capture.write_text("(1.0) can0 0C0#00\n")
    with pytest.raises(DbcFormatError, match="defines no message"):
        decode_capture(capture, dbc, tmp_path / "out.parquet")
