"""Messages composed from names: "an aarch64 library", "a rpi4 board" read wrong with a fixed "a"."""

from __future__ import annotations

CONSONANT_SOUNDING = ("uni", "usa", "use", "usu", "eu", "one", "once")  # a unit, a user, a one-off
# Letters whose spoken name starts with a vowel: an initialism starting with one takes "an" (an x86, an RPi).
VOWEL_NAMED_LETTERS = set("fhlmnrsx")


def article(word: str) -> str:
    """'a' or 'an' for `word` as it is read aloud: 'an' before a vowel sound ('an aarch64', 'an x86-64',
    'an rpi4', 'an ARM', 'an 8-bit'), 'a' otherwise ('a cuda', 'a jetson-orin', 'a snapdragon', 'a unit')."""
    lower = word.lower()
    if lower.startswith(CONSONANT_SOUNDING):
        return "a"
    if lower[:1] in ("a", "e", "i", "o", "u", "8") or lower.startswith(("11", "18")):
        return "an"
    return "an" if lower[:1] in VOWEL_NAMED_LETTERS and _spelled_out(word) else "a"


def with_article(word: str) -> str:
    return f"{article(word)} {word}"


def _spelled_out(word: str) -> bool:
    """Read letter by letter: an all-capital initialism (ARM, HTTP), or a name whose first letter is not
    followed by a vowel where English words never do so (x86, rpi4, fp16, llvm, h100, sm_90)."""
    head = word.split("-")[0].split("_")[0]
    if len(head) > 1 and head.isalpha() and head.isupper():
        return True
    second = word[1:2].lower()
    if not second or not second.isalpha():
        return True
    if second in "aeiouy":
        return False
    # clusters that open ordinary words: fl-/fr-, sc-/sk-/sl-/sm-/sn-/sp-/st-/sw-/sh-, rh-
    return second not in {"f": "lr", "s": "cklmnpqtwh", "r": "h"}.get(word[0].lower(), "")
