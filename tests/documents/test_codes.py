from __future__ import annotations

import math

from service.documents.codes import ALPHABET, CODE_LENGTH, display_code, new_code, normalize_code, verification_url


def test_codes_carry_at_least_128_random_bits() -> None:
    assert CODE_LENGTH * math.log2(len(ALPHABET)) >= 128
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == CODE_LENGTH and set(c) <= set(ALPHABET) for c in codes)


def test_people_can_type_the_printed_code_loosely() -> None:
    code = "K7Q3M9XD2HFA8RTWZP4N6JCYB1VE"
    printed = display_code(code)
    assert printed == "K7Q3-M9XD-2HFA-8RTW-ZP4N-6JCY-B1VE"
    assert normalize_code(printed) == code
    assert normalize_code(" k7q3 m9xd 2hfa 8rtw zp4n 6jcy blve ") == code  # l read as 1
    assert normalize_code("K7Q3") is None
    assert normalize_code("'; drop table documents; --") is None


def test_url() -> None:
    assert verification_url("https://x.cn/", "ABC") == "https://x.cn/v/ABC"
