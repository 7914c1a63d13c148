"""The CSV import's fast paths give exactly the answers of the straightforward code they replace.

Phone numbers: `reference_check` is `_PhoneChecker.check` as it was before `campaigns.phone_numbers`
(phonenumbers parse, number_type, format E.164, time_zones_for_*): the oracle every generated
number is checked against, together with `_parse_with_phonenumbers` for the parse alone. Contexts:
`json.dumps` of the row's dict.
"""
import json
from json.encoder import encode_basestring

import phonenumbers
import pytest
from hypothesis import example, given, settings as hypothesis_settings, strategies as st
from phonenumbers import PhoneNumberType
from phonenumbers import timezone as phone_timezones

from campaigns import phone_numbers
from campaigns.actions.csv_import import PARSE_ERRORS, UNKNOWN_ZONE, _context_json, _PhoneChecker, _shown
from campaigns.phone_numbers import FROM_CAMPAIGN, CalleeZones
from dialer.windows import InvalidTimezone, zone


def reference_check(raw):
    text = raw.strip()
    if not text:
        return None, None, "The phone number is empty."
    if text.startswith("00"):
        text = "+" + text[2:]
    elif not text.startswith("+"):
        return None, None, (f"{_shown(raw)} has no country code: write it with + and the country code, "
                            "like +442079460958.")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        return None, None, f"{_shown(raw)} {PARSE_ERRORS.get(exc.error_type, 'is not a phone number')}."
    if number.extension:
        return None, None, f"{_shown(raw)} has an extension, which cannot be dialled."
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.UNKNOWN:
        return None, None, f"{_shown(raw)} is not a valid number for country code +{number.country_code}."
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if phonenumbers.is_number_type_geographical(kind, number.country_code):
        zones = phone_timezones.time_zones_for_geographical_number(number)
    else:
        zones = phone_timezones.time_zones_for_number(number)
    known = tuple(name for name in zones if name != UNKNOWN_ZONE and is_zone(name))
    callee = CalleeZones(known, "number" if len(known) == 1 else "number_zones") if known else FROM_CAMPAIGN
    if len(zones) != 1 or not known:
        return e164, ("", callee), None
    return e164, (zones[0], callee), None


def is_zone(name):
    try:
        zone(name)
    except InvalidTimezone:
        return False
    return True


def parse_outcome(parse, text):
    try:
        return parse(text)
    except phonenumbers.NumberParseException as exc:
        return ("raises", exc.error_type)


CHECKER = _PhoneChecker()  # shared on purpose: its caches must never change an answer
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
NON_GEOGRAPHIC_CODES = sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS)
TYPES = [value for name, value in vars(PhoneNumberType).items() if name.isupper() and name != "UNKNOWN"]


def example_numbers():
    """(country code, national significant number) of every example phonenumbers ships."""
    found = set()
    for region in REGIONS:
        for kind in TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.add((number.country_code, phonenumbers.national_significant_number(number)))
    for code in NON_GEOGRAPHIC_CODES:
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            found.add((code, phonenumbers.national_significant_number(number)))
    return sorted(found)


EXAMPLES = example_numbers()
SEPARATORS = [" ", "-", ".", "(", ")", "", "", ""]
digit_text = st.text(alphabet="0123456789", max_size=4)


@st.composite
def national_parts(draw):
    """A country code and national digits: a real example, often mutated (digits changed, added or
    cut, padded to around the longest national number, a national prefix or leading zeros in
    front), sometimes with another country code."""
    country_code, national = draw(st.sampled_from(EXAMPLES))
    if draw(st.booleans()):
        return country_code, national
    if draw(st.booleans()):
        position = draw(st.integers(0, len(national)))
        national = national[:position] + draw(digit_text) + national[position + draw(st.integers(0, 2)):]
    if draw(st.booleans()):
        national = national[:draw(st.integers(0, len(national) + 1))] + draw(digit_text)
    if draw(st.integers(0, 5)) == 0:
        national = national.ljust(draw(st.integers(15, 20)), draw(st.sampled_from("0123456789")))
    if draw(st.integers(0, 3)) == 0:
        national = draw(st.sampled_from(["0", "00", "1", "8", "9", "15", "01", "044"])) + national
    if draw(st.integers(0, 5)) == 0:
        country_code = draw(st.sampled_from([0, 1, 7, 39, 44, 49, 52, 54, 61, 86, 91, 262, 290, 379, 599, 800, 882,
                                             999]))
    return country_code, national


@st.composite
def written_numbers(draw):
    """How people write an international number in a CSV cell: +, 00 or nothing in front, digits
    grouped with spaces, dashes, dots or parentheses, sometimes an extension, stray characters or
    surrounding spaces."""
    country_code, national = draw(national_parts())
    digits = str(country_code) + national
    cuts = sorted(draw(st.lists(st.integers(0, len(digits)), max_size=5)))
    pieces = [digits[start:end] for start, end in zip([0] + cuts, cuts + [len(digits)])]
    text = "".join(piece + draw(st.sampled_from(SEPARATORS)) for piece in pieces)
    text = draw(st.sampled_from(["+", "+", "+", "00", "", "+ ", "+(", "++", "＋", "+0"])) + text
    if draw(st.integers(0, 5)) == 0:
        text += draw(st.sampled_from([" ext. 12", " x123", " #45", ";ext=7", " - 123#", ",,5", " ()", "-", "a", "٣"]))
    if draw(st.integers(0, 7)) == 0:
        position = draw(st.integers(0, len(text)))
        stray = draw(st.sampled_from(["/", "x", "A", "tel:", "\u00a0", "–", "[", "*"]))
        text = text[:position] + stray + text[position:]
    return draw(st.sampled_from(["", " ", "\t"])) + text + draw(st.sampled_from(["", " "]))


plain_texts = st.text(alphabet="+0123456789 ().-", max_size=24)


@hypothesis_settings(max_examples=3000, deadline=None)
@given(written_numbers())
@example("+44 0207 946 0958")  # the UK national prefix after the country code
@example("+39 06 6982 1234")  # Italian leading zero
@example("+1 (212) 555-1234 ext. 7")
@example("+44")
@example("+44 1")
@example("+44 20 7946 0958 1234 5678 9999")
def test_the_checker_answers_as_the_reference_for_written_numbers(raw):
    assert CHECKER.check(raw) == reference_check(raw)


@hypothesis_settings(max_examples=2000, deadline=None)
@given(st.one_of(written_numbers(), plain_texts, plain_texts.map(lambda text: "+" + text)))
def test_the_fast_parse_answers_as_phonenumbers_whenever_it_answers(text):
    fast = parse_outcome(phone_numbers._parse_plain, text)
    if fast is not None:
        assert fast == parse_outcome(phone_numbers._parse_with_phonenumbers, text)
    assert parse_outcome(phone_numbers.parse_international, text) == \
        parse_outcome(phone_numbers._parse_with_phonenumbers, text)


@pytest.mark.parametrize("form", ["+{code}{national}", "+{code} {national}", "00{code}-{national}"])
def test_every_shipped_example_number_gets_the_reference_answer(form):
    for country_code, national in EXAMPLES:
        raw = form.format(code=country_code, national=national)
        assert CHECKER.check(raw) == reference_check(raw), raw


@pytest.mark.parametrize("country_code", [1, 39, 44, 49, 91, 800])
def test_numbers_of_every_length_get_the_reference_answer(country_code):
    for length in range(0, 26):
        raw = f"+{country_code}" + "9" * length
        assert CHECKER.check(raw) == reference_check(raw), raw


def test_the_fast_parse_answers_most_shipped_examples_itself():
    # Only numbers whose national part starts like a national prefix (Argentina's may be empty)
    # are left to phonenumbers; a drop here means the fast path stopped recognising common numbers.
    answered = sum(phone_numbers._parse_plain(f"+{code}{national}") is not None for code, national in EXAMPLES)
    assert answered >= 0.9 * len(EXAMPLES)


def test_country_time_zones_are_phonenumbers_country_level_zones():
    for country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        number = phonenumbers.PhoneNumber(country_code=country_code)
        assert phone_numbers.country_time_zones(country_code) == \
            phone_timezones._country_level_time_zones_for_number(number)


any_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8)


@given(st.lists(st.tuples(any_text, any_text), max_size=5, unique_by=lambda pair: pair[0]))
def test_context_json_is_what_json_dumps_writes(pairs):
    names, values = [name for name, _ in pairs], [value for _, value in pairs]
    keys = [encode_basestring(name) + ":" for name in names]
    assert _context_json(keys, values) == json.dumps(dict(pairs), ensure_ascii=False, separators=(",", ":"))


@given(st.sampled_from(["+44 20 7946 0958", "+1 415 555 0100", "+91 98765 43210", "+33 1 23 45 67 89", "+999 1234",
                        "+44 0207 946 0958", "+1 (212) 555-01", "+61 4 1234 5678", "+49 30 1234567 ext. 9"]))
def test_the_api_check_of_one_number_is_phonenumbers_own_verdict(text):
    from campaigns.phone_numbers import InvalidPhone, parse_e164

    try:
        parsed = phonenumbers.parse(text, None)
        expected = (phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
                    if phonenumbers.is_valid_number(parsed) else None)
    except phonenumbers.NumberParseException:
        expected = None
    try:
        assert parse_e164(text) == expected
    except InvalidPhone:
        assert expected is None
