"""The Unified Social Credit Code validator (GB 32100-2015, GB 11714 check digit)."""

from __future__ import annotations

from typing import Any

import pytest
from flask_babel import force_locale

from labshare.accounts.credit_code import (
    USCC_ALPHABET,
    CreditCodeError,
    make_credit_code,
    org_code_check_char,
    uscc_check_char,
    validate_credit_code,
)

#: Codes published on real business licences.
REAL_CODES = [
    "914403001922038216",  # Huawei Technologies Co., Ltd.
    "9144030071526726XG",  # Tencent Technology (Shenzhen) Co., Ltd.
    "91330100716105852F",  # Alibaba (China) Co., Ltd.
    "91110000100006485K",  # China Petroleum & Chemical Corporation (Sinopec)
]


@pytest.mark.parametrize("code", REAL_CODES)
def test_real_codes_pass(code: str) -> None:
    assert validate_credit_code(code) == code


@pytest.mark.parametrize("code", REAL_CODES)
def test_lower_case_spaces_and_dashes_are_normalised(code: str) -> None:
    messy = f"  {code[:6].lower()} {code[6:12]}-{code[12:].lower()} "
    assert validate_credit_code(messy) == code


@pytest.mark.parametrize("code", REAL_CODES)
def test_any_single_changed_character_fails(code: str) -> None:
    tried = 0
    for position in range(18):
        for char in USCC_ALPHABET:
            if char == code[position]:
                continue
            changed = code[:position] + char + code[position + 1 :]
            with pytest.raises(CreditCodeError):
                validate_credit_code(changed)
            tried += 1
    assert tried == 18 * 30


@pytest.mark.parametrize("code", REAL_CODES)
def test_swapping_two_different_neighbours_fails(code: str) -> None:
    for i in range(17):
        if code[i] == code[i + 1]:
            continue
        swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
        with pytest.raises(CreditCodeError):
            validate_credit_code(swapped)


def _reason(code: str) -> CreditCodeError:
    with pytest.raises(CreditCodeError) as caught:
        validate_credit_code(code)
    return caught.value


def test_length_reason(app: Any) -> None:
    err = _reason("91440300192203821")
    assert err.reason == "length"
    assert "18 characters; this one has 17" in str(err)
    assert _reason("").reason == "length"
    assert _reason("9144030019220382161").reason == "length"


@pytest.mark.parametrize("bad", ["I", "O", "S", "V", "Z", "*", "中"])
def test_characters_reason(app: Any, bad: str) -> None:
    code = REAL_CODES[0][:10] + bad + REAL_CODES[0][11:]
    err = _reason(code)
    assert err.reason == "characters"
    assert bad.upper() in str(err)
    assert "I, O, S, V and Z" in str(err)


def test_division_reason(app: Any) -> None:
    code = REAL_CODES[0][:4] + "A" + REAL_CODES[0][5:]
    err = _reason(code)
    assert err.reason == "division"
    assert "administrative division" in str(err)


def test_org_check_reason(app: Any) -> None:
    # A wrong organisation-code check digit, with the final check character
    # recomputed so only the GB 11714 digit is wrong.
    code = REAL_CODES[0]
    org_body = code[8:16]
    wrong_digit = next(c for c in "0123456789" if c != org_code_check_char(org_body))
    first17 = code[:16] + wrong_digit
    err = _reason(first17 + uscc_check_char(first17))
    assert err.reason == "org_check"
    assert "organisation code" in str(err)


def test_check_character_reason(app: Any) -> None:
    code = REAL_CODES[2]
    wrong = next(c for c in USCC_ALPHABET if c != code[17])
    err = _reason(code[:17] + wrong)
    assert err.reason == "check"
    assert "check character" in str(err)


def test_messages_are_translated(app: Any) -> None:
    code = REAL_CODES[0][:17] + ("0" if REAL_CODES[0][17] != "0" else "1")
    with app.test_request_context("/"):
        with force_locale("zh_CN"):
            zh = str(_reason(code))
        with force_locale("en"):
            en = str(_reason(code))
    assert "校验码" in zh
    assert "check character" in en


def test_make_credit_code_builds_valid_codes() -> None:
    for n in range(1, 200, 7):
        code = make_credit_code("320100", f"{n:08d}")
        assert validate_credit_code(code) == code
