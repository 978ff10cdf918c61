"""The Unified Social Credit Code (统一社会信用代码), GB 32100-2015.

18 characters: registration authority (1), category (1), administrative division
(6 digits, GB/T 2260), the organisation code (9, GB 11714, with its own check
digit) and the check character (1). Characters come from a 31-letter alphabet
without I, O, S, V and Z.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = [pow(3, i, 31) for i in range(17)]
_ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]
_ORG_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class CreditCodeError(Exception):
    reason: str  # machine-readable: length, characters, division, org_check, check
    message: object  # lazy string, rendered in the user's language

    def __str__(self) -> str:
        return str(self.message)


def uscc_check_char(first17: str) -> str:
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def org_code_check_char(body8: str) -> str:
    total = sum(_ORG_ALPHABET.index(c) * w for c, w in zip(body8, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def normalize_credit_code(code: str) -> str:
    return code.strip().upper().replace(" ", "").replace("-", "")


def validate_credit_code(code: str) -> str:
    """Return the normalised code, or raise CreditCodeError saying what is wrong."""
    code = normalize_credit_code(code)
    if len(code) != 18:
        raise CreditCodeError(
            "length",
            _l(
                "A Unified Social Credit Code has 18 characters; this one has %(n)d.",
                n=len(code),
            ),
        )
    bad = sorted({c for c in code if c not in _USCC_VALUE})
    if bad:
        raise CreditCodeError(
            "characters",
            _l(
                "The code contains characters that are never used in a credit code: "
                "%(chars)s (the letters I, O, S, V and Z do not occur).",
                chars=" ".join(bad),
            ),
        )
    if not code[2:8].isdigit():
        raise CreditCodeError(
            "division",
            _l("Characters 3 to 8 are the administrative division code and must be digits."),
        )
    org = code[8:17]
    if org_code_check_char(org[:8]) != org[8]:
        raise CreditCodeError(
            "org_check",
            _l(
                "Characters 9 to 17 are the organisation code, and its check digit does "
                "not match. Please check for a mistyped character."
            ),
        )
    if uscc_check_char(code[:17]) != code[17]:
        raise CreditCodeError(
            "check",
            _l(
                "The last character (the check character) does not match the code. "
                "Please check for a mistyped character."
            ),
        )
    return code


def make_credit_code(
    division: str, org_body: str, authority: str = "9", category: str = "1"
) -> str:
    """Build a valid code from its parts (demo data and tests)."""
    org = org_body + org_code_check_char(org_body)
    first17 = authority + category + division + org
    return first17 + uscc_check_char(first17)
