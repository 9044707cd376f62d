"""The listener's reader of HL7 v2's pipe format (hl7/er7.py) reads every field as python-hl7, the
maintained parser it replaced for speed, reads it: the same segments, fields, repetitions and
components, on every fixture and on the format's corners."""

import hl7
import pytest

from measurement_service.hl7 import er7
from painkiller_testing.hl7 import adt, loinc, news2_set, pcd01

CORNERS = {
    "repeated identifiers": "MSH|^~\\&|A|B|C|D|20261201||ORU^R01|1|P|2.6\rPID|||X1^^^H^PI~M7^^^H^MR||Doe^Jo",
    "other separators": "MSH#*@$%#A#B#C#D#20261201##ORU*R01#1#P#2.5\rPID###M7*X*Y@M8**%&",
    "empty fields and trailing separators": "MSH|^~\\&|||||||ADT^A01|9|P|2.4|\rPV1|||^^|||\r",
    "whitespace around": "\n MSH|^~\\&|A|B|C|D|20261201||ADT^A08|2|P|2.3\rPID|||M1\r\n",
    "sub-components and escapes kept": "MSH|^~\\&|A|B\rOBX|1|ST|c^d&e|1|x\\F\\y~z^w",
    "MSH alone": "MSH|^~\\&|",
}
FIXTURES = {
    "PCD-01": pcd01("C1", "M1"),
    "LOINC": loinc("C2", "M2"),
    "NEWS2 set": news2_set("C3", "M3"),
    "ADT A01": adt("A01", "C4", "M4"),
    **CORNERS,
}


def theirs(segment: hl7.Segment, position: int) -> tuple[str, list[list[str]], list[str]]:
    """Field `position` as python-hl7 reads it: the text, the repetitions' components, and the first
    repetition's components 1 to 6."""
    try:
        field = segment[position]
    except IndexError:
        return "", [], [""] * 6
    text = str(field)
    if not text:
        return "", [], [""] * 6
    repetitions = [[str(c) for c in rep] if not isinstance(rep, str) else [rep] for rep in field] if (
        isinstance(field, hl7.Field)) else [[text]]  # fmt: skip
    return text, repetitions, [str(part(field[0] if isinstance(field, hl7.Field) else field, n)) for n in range(1, 7)]


def part(value: object, component: int) -> str:
    if isinstance(value, str):
        return value if component == 1 else ""
    try:
        return str(value[component - 1])  # type: ignore[index]
    except IndexError:
        return ""


@pytest.mark.parametrize("name", FIXTURES)
def test_every_field_reads_as_python_hl7_reads_it(name: str) -> None:
    text = FIXTURES[name]
    mine, reference = er7.parse(text), hl7.parse(text)
    assert [segment.name for segment in mine.segments] == [str(segment[0]) for segment in reference]
    for ours, segment in zip(mine.segments, reference, strict=True):
        for position in range(1, max(len(ours.fields), len(segment)) + 2):
            expected_text, expected_repetitions, expected_components = theirs(segment, position)
            assert ours.text(position) == expected_text, (name, ours.name, position)
            if ours.name == "MSH" and position <= 2:
                continue  # the separators themselves, which python-hl7 does not split
            assert ours.repetitions(position) == expected_repetitions, (name, ours.name, position)
            assert [ours.component(position, n) for n in range(1, 7)] == expected_components, (name, position)


def test_the_first_segment_named_is_found_and_a_missing_one_is_none() -> None:
    message = er7.parse(FIXTURES["ADT A01"])
    assert message.segment("PID") is not None and message.segment("PID").name == "PID"  # type: ignore[union-attr]
    assert message.segment("ZZZ") is None


def test_encoding_characters_are_read_whole_without_a_separator_after_them() -> None:
    # python-hl7 drops the last of them here; the separators are still the standard ones.
    msh = er7.parse("MSH|^~\\&").segments[0]
    assert (msh.text(1), msh.text(2), msh.component_separator, msh.repetition_separator) == ("|", "^~\\&", "^", "~")


@pytest.mark.parametrize("text", ["", "hello", "PID|||M1", "MSH"])
def test_what_does_not_start_with_msh_is_not_hl7(text: str) -> None:
    with pytest.raises(er7.NotHL7):
        er7.parse(text)
