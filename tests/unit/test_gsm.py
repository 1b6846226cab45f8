"""GSM 03.38, UCS-2 and parts: tables for the rules, properties for every text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecosms_gw.core import gsm

# ---------------------------------------------------------------- tables


@pytest.mark.parametrize(("source", "sent"), [
    ("Â â Ê ê Î î Ô ô Û û", "A a E e I i O o U u"),
    ("Ë ë Ï ï", "E e I i"),
    ("20°", "20o"),
    ("cœur", "coeur"),
    ("`quoted`", "quoted"),
    ("l’été", "lété"),
    ("wait…", "wait..."),
    ("ç", "ç"),  # kept as ç, sent as 0x09
    ("À «x» “y” – — \t\xa0😀", " x y   "),  # deleted: not GSM, not in the seed's list
    ("Œ", ""),  # only the small ligature is in the seed's list
    ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà",
     "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà"),
    ("^{}\\[]~|€\f", "^{}\\[]~|€\f"),
])
def test_transliteration_is_the_seeds_list_and_deletes_the_rest(source: str, sent: str) -> None:
    assert gsm.to_gsm_text(source) == sent


def test_transliterations_report_names_each_change() -> None:
    assert gsm.transliterations("ê«ç…a") == {"ê": "e", "«": "", "…": "..."}


@pytest.mark.parametrize(("text", "septets"), [
    ("", 0), ("abc", 3), ("€", 2), ("a^b", 4), ("{}[]~|\\\f€^", 20), ("ç", 1),
])
def test_extension_characters_count_two_septets(text: str, septets: int) -> None:
    assert gsm.septet_count(text) == septets


def test_encoding_uses_gsm_code_points_not_ascii() -> None:
    assert gsm.encode_gsm("@$§") == bytes([0x00, 0x02, 0x5F])
    assert gsm.encode_gsm("€") == bytes([0x1B, 0x65])
    assert gsm.encode_gsm("ç") == gsm.encode_gsm("Ç") == bytes([0x09])
    assert gsm.encode_gsm("\f") == bytes([0x1B, 0x0A])
    assert gsm.decode_gsm(bytes([0x1B, 0x65, 0x00, 0x5F])) == "€@§"


def test_ucs2_is_utf16_big_endian_with_surrogates() -> None:
    assert gsm.encode_ucs2("é😀") == b"\x00\xe9\xd8\x3d\xde\x00"
    assert gsm.utf16_units("é😀") == 3


@pytest.mark.parametrize(("text", "encoding", "segments"), [
    ("a" * 160, "gsm7", 1),
    ("a" * 161, "gsm7", 2),
    ("a" * 159 + "€", "gsm7", 2),  # 161 septets
    ("a" * 158 + "€", "gsm7", 1),  # 160 septets
    ("a" * 306, "gsm7", 2),
    ("a" * 307, "gsm7", 3),
    ("a" * 152 + "€" + "a" * 10, "gsm7", 2),  # the pair moves whole to part 2
    ("é" * 70, "ucs2", 1),
    ("é" * 71, "ucs2", 2),
    ("😀" * 35, "ucs2", 1),
    ("é" + "😀" * 35, "ucs2", 2),
    ("é" * 134, "ucs2", 2),
    ("é" * 135, "ucs2", 3),
])
def test_segment_limits(text: str, encoding: gsm.Encoding, segments: int) -> None:
    assert len(gsm.split(text, encoding)) == segments
    assert gsm.segment_count(text, encoding, gsm.units(text, encoding)) == segments


def test_escape_pair_at_the_part_boundary_moves_whole() -> None:
    parts = gsm.split("a" * 152 + "€" + "b" * 10, "gsm7")
    assert parts == ["a" * 152, "€" + "b" * 10]


def test_concatenation_headers() -> None:
    assert gsm.concatenation_header(0xAB, 3, 1) == bytes([5, 0, 3, 0xAB, 3, 1])
    assert gsm.concatenation_header(0x1234, 2, 2, ref16=True) == bytes([6, 8, 4, 0x12, 0x34, 2, 2])
    with pytest.raises(ValueError):
        gsm.concatenation_header(1, 2, 3)


def test_encode_parts_puts_a_header_on_each_part_only_when_split() -> None:
    assert gsm.encode_parts("hello", "gsm7", 7) == [b"hello"]
    parts = gsm.encode_parts("x" * 200, "gsm7", 7)
    assert [p[:6] for p in parts] == [bytes([5, 0, 3, 7, 2, 1]), bytes([5, 0, 3, 7, 2, 2])]
    assert b"".join(p[6:] for p in parts) == b"x" * 200
    ucs2 = gsm.encode_parts("é" * 100, "ucs2", 9, ref16=True)
    assert [len(p) for p in ucs2] == [7 + 132, 7 + 68]  # 66 units per part with 16-bit refs


# ---------------------------------------------------------------- properties

any_text = st.text(max_size=600)
gsm_heavy = st.text(alphabet=st.sampled_from("ab €^{}[]~|\\\fçé\n"), max_size=600)
ucs2_heavy = st.text(alphabet=st.sampled_from("ab é😀𝄞€"), max_size=300)


@given(st.one_of(any_text, gsm_heavy))
def test_decode_of_encode_gives_back_the_transliterated_text(text: str) -> None:
    sent = gsm.to_gsm_text(gsm.normalize(text))
    assert gsm.decode_gsm(gsm.encode_gsm(sent)) == sent.replace("ç", "Ç")
    assert gsm.septet_count(sent) == len(gsm.encode_gsm(sent))


def _minimal_parts(costs: list[int], limit: int) -> int:
    """Reference: fewest parts of at most `limit` units, by dynamic programming."""
    best = [0] + [len(costs) + 1] * len(costs)
    for end in range(1, len(costs) + 1):
        used, start = 0, end
        while start > 0 and used + costs[start - 1] <= limit:
            used += costs[start - 1]
            start -= 1
            best[end] = min(best[end], best[start] + 1)
    return best[-1]


@settings(max_examples=300)
@given(st.one_of(gsm_heavy, ucs2_heavy), st.sampled_from(["gsm7", "ucs2"]), st.booleans())
def test_parts_fit_join_back_keep_pairs_and_are_fewest(text: str, encoding: gsm.Encoding,
                                                       ref16: bool) -> None:
    if encoding == "gsm7":
        text = gsm.to_gsm_text(text)
    parts = gsm.split(text, encoding, ref16=ref16)
    assert "".join(parts) == text
    total = gsm.units(text, encoding)
    single = 160 if encoding == "gsm7" else 70
    if total <= single:
        assert parts == [text]
        return
    limit = {("gsm7", False): 153, ("gsm7", True): 152,
             ("ucs2", False): 67, ("ucs2", True): 66}[(encoding, ref16)]
    assert all(0 < gsm.units(part, encoding) <= limit for part in parts)
    # No pair cut: every part is whole characters; for UCS-2 each part is valid UTF-16.
    for part in parts:
        part.encode("utf-16-be").decode("utf-16-be")
    costs = [2 if (c in gsm.EXTENSION if encoding == "gsm7" else c > "\uffff") else 1 for c in text]
    assert len(parts) == _minimal_parts(costs, limit)
    if not ref16:
        assert gsm.segment_count(text, encoding, total) == len(parts)


@given(any_text)
def test_gsm_text_only_holds_gsm_characters(text: str) -> None:
    assert set(gsm.to_gsm_text(text)) <= gsm.GSM_CHARS
