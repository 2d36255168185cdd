"""Hypothesis strategies shared by the wire tests."""

from __future__ import annotations

from hypothesis import strategies as st

#: Telemetry rows as a sender may write them: (path index 0-4, time ns, number or null, text
#: or null), the text encodable (what a sender can put in Arrow) and without NUL.
SAMPLE_ROWS = st.lists(
    st.tuples(
        st.integers(0, 4),
        st.integers(0, 2**62),
        st.one_of(st.none(), st.floats(allow_nan=False)),
        st.one_of(st.none(), st.text(
            st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
            max_size=20,
        )),
    ),
    max_size=300,
)
