"""International phone numbers → E.164, type and timezones: phonenumbers' verdicts, computed faster.

`parse_international(text)` answers exactly what `phonenumbers.parse(text, None)` followed by
`number_type` and `format_number(..., E164)` answer, for every input: the same exception (same
`error_type`) or the same country code, E.164, extension and `PhoneNumberType`. Why it exists:
those calls cost ~25 µs a number in pure Python (regular expressions compiled again on each call,
per-character Unicode digit normalisation, every type pattern tried twice for shared country codes
like +44), which made them two thirds of a 100,000-row CSV import.

The fast path takes only the plain international form, `+` then ASCII digits with optional
spaces, dashes, dots and parentheses, whose national part does not begin with the country's
national prefix (no "+44 0207..."). For that form phonenumbers' parse reduces to: split off the
country code, keep the rest as the national significant number. The type is then phonenumbers'
own decision procedure (`_number_type_helper`, `region_code_for_number`) run on the same metadata
patterns compiled once. Anything else (other characters, extensions, national prefixes, fewer
than three digits) goes through phonenumbers itself. `tests/test_csv_import_speed_paths.py`
compares both paths on generated numbers.

`time_zones(number)` is `phonenumbers.timezone.time_zones_for_number` for a valid number;
`callee_zones(e164)` the zones a workspace's legal hours are judged in when the task names none.
`parse_e164(value)` is the API's and the admin's check of one number, on the same parser.
"""
import functools
import re
from typing import NamedTuple

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberType
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from campaigns.vocabulary import CalleeTimezoneSource
from dialer.windows import InvalidTimezone, zone

# The plain international form; which of its strings the fast path may answer is narrowed below.
PLAIN_INTERNATIONAL = re.compile(r"\+[0-9 ().\-]+")
SEPARATORS_REMOVED = str.maketrans("", "", " ().-")
# phonenumbers' limits (phonenumberutil _MIN_LENGTH_FOR_NSN, _MAX_LENGTH_FOR_NSN,
# _MAX_LENGTH_COUNTRY_CODE, _MAX_INPUT_STRING_LENGTH).
MIN_NATIONAL_LENGTH = 2
MAX_NATIONAL_LENGTH = 17
MAX_COUNTRY_CODE_LENGTH = 3
MAX_INPUT_LENGTH = 250
# With fewer digits after the +, phonenumbers' viability and IDD length checks decide: left to it.
MIN_PLAIN_DIGITS = 3
UNKNOWN_TIME_ZONES = ("Etc/Unknown",)
COUNTRY_CODES = {str(code): code for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
# The order in which `_number_type_helper` tries the types before fixed line and mobile.
SPECIAL_TYPES = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE), ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST), ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER), ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN), ("voicemail", PhoneNumberType.VOICEMAIL),
)


class InternationalNumber(NamedTuple):
    country_code: int
    e164: str
    extension: str  # "" when there is none
    kind: int  # a PhoneNumberType; UNKNOWN when the number is not valid


class InvalidPhone(ValueError):
    """A phone number that is not a valid international (E.164) number; the message says why."""


def parse_e164(value):
    """The E.164 form of `value`, e.g. "+44 20 7183 8750" → "+442071838750".

    The number must carry its country code and be valid for it (phonenumbers' `is_valid_number`,
    which is a type other than UNKNOWN); raises `InvalidPhone` otherwise.

    >>> parse_e164("+44 20 7946 0958")
    '+442079460958'
    """
    if not isinstance(value, str):
        raise InvalidPhone("must be a string in E.164 form, e.g. +14155550100")
    return _parse_e164_string(value)


@functools.lru_cache(maxsize=8192)
def _parse_e164_string(value):
    """Cached: a bulk request repeats its caller ID on every body."""
    if not value.strip().startswith("+"):
        raise InvalidPhone("must start with + and the country code (E.164), e.g. +14155550100")
    try:
        number = parse_international(value)
    except NumberParseException:
        raise InvalidPhone("is not a phone number (E.164 expected, e.g. +14155550100)") from None
    if number.kind == PhoneNumberType.UNKNOWN:
        raise InvalidPhone("is not a valid phone number for its country code")
    return number.e164


def parse_international(text):
    """`text` (starting with +) as an `InternationalNumber`; raises `phonenumbers.NumberParseException`
    exactly when `phonenumbers.parse(text, None)` does, with the same `error_type`.

    >>> parse_international("+44 20 7946 0958")
    InternationalNumber(country_code=44, e164='+442079460958', extension='', kind=0)
    """
    number = _parse_plain(text)
    return number if number is not None else _parse_with_phonenumbers(text)


def _parse_with_phonenumbers(text):
    number = phonenumbers.parse(text, None)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return InternationalNumber(number.country_code, e164, number.extension or "", phonenumbers.number_type(number))


def _parse_plain(text):
    """The answer for a plain international number, or None when phonenumbers must be asked."""
    if len(text) > MAX_INPUT_LENGTH or not PLAIN_INTERNATIONAL.fullmatch(text):
        return None
    digits = text[1:].translate(SEPARATORS_REMOVED)
    if len(digits) < MIN_PLAIN_DIGITS:
        return None
    country_code, national = _split_country_code(digits)
    if len(national) < MIN_NATIONAL_LENGTH:
        raise NumberParseException(NumberParseException.TOO_SHORT_NSN, "The national number is too short.")
    country = _country(country_code)
    if country.national_prefix is not None and country.national_prefix.match(national):
        return None  # whether a national prefix is stripped depends on the whole number: phonenumbers decides
    if len(national) > MAX_NATIONAL_LENGTH:
        raise NumberParseException(NumberParseException.TOO_LONG, "The national number is too long.")
    # Leading zeros (Italy) stay in the national significant number, as phonenumbers keeps them.
    return InternationalNumber(country_code, "+" + digits, "", country.number_type(national))


def _split_country_code(digits):
    """(country code, the digits after it), as phonenumbers' _extract_country_code takes it: the
    shortest leading digits that are a country code (none starts with 0)."""
    if digits[0] != "0":
        for length in range(1, MAX_COUNTRY_CODE_LENGTH + 1):
            country_code = COUNTRY_CODES.get(digits[:length])
            if country_code is not None:
                return country_code, digits[length:]
    raise NumberParseException(NumberParseException.INVALID_COUNTRY_CODE, "No known country code.")


def time_zones(number):
    """The IANA names phonenumbers gives a valid `InternationalNumber` (("Etc/Unknown",) when it
    knows none): by the longest known prefix for numbers tied to a place (fixed lines, and mobiles
    where the country ties them to one), else the country's."""
    if phonenumbers.is_number_type_geographical(number.kind, number.country_code):
        return _zones_by_prefix(number.e164[1:1 + TIMEZONE_LONGEST_PREFIX])
    return _country(number.country_code).time_zones


@functools.lru_cache(maxsize=10_000)
def _zones_by_prefix(digits):
    # phonenumbers' time_zones_for_geographical_number: the longest prefix of the E.164 digits it
    # knows. It reads no digit past TIMEZONE_LONGEST_PREFIX, so those are the cache key.
    for length in range(len(digits), 0, -1):
        zones = TIMEZONE_DATA.get(digits[:length])
        if zones is not None:
            return zones
    return UNKNOWN_TIME_ZONES


def country_time_zones(country_code):
    """The zones phonenumbers gives the numbers of a country code that are not tied to a place
    (timezone._country_level_time_zones_for_number): those of the code itself, else of its first
    two digits. country_time_zones(7) == ("Asia/Anadyr", ..., "Europe/Moscow", ...)."""
    code = str(country_code)
    for prefix in (code, code[:2]):
        if prefix in TIMEZONE_DATA:
            return TIMEZONE_DATA[prefix]
    return UNKNOWN_TIME_ZONES


_countries = {}


def _country(country_code):
    country = _countries.get(country_code)
    if country is None:
        country = _countries[country_code] = _Country(country_code)
    return country


class _Country:
    """One country calling code's metadata with its patterns compiled once."""

    def __init__(self, country_code):
        self.country_code = country_code
        main_region = phonenumbers.region_code_for_country_code(country_code)
        parsing = PhoneMetadata.metadata_for_region_or_calling_code(country_code, main_region)
        self.national_prefix = _compiled(parsing.national_prefix_for_parsing) \
            if parsing.national_prefix_for_parsing else None
        self.regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[country_code]
        # For shared country codes, as phonenumbers' _region_code_for_number_from_list: a region's
        # leading digits when it has them, else its full validation, decide whether a number is its.
        self.candidates = [
            (region, _compiled(metadata.leading_digits) if metadata.leading_digits is not None else None)
            for region in (self.regions if len(self.regions) > 1 else ())
            if (metadata := PhoneMetadata.metadata_for_region(region, None)) is not None
        ]
        self.types_by_region = {}
        self.time_zones = country_time_zones(country_code)

    def number_type(self, national):
        """phonenumbers.number_type of the number with this country code and national significant number."""
        if len(self.regions) == 1:
            return self._types(self.regions[0]).number_type(national)
        for region, leading_digits in self.candidates:
            if leading_digits is not None:
                if leading_digits.match(national):
                    return self._types(region).number_type(national)
            else:
                kind = self._types(region).number_type(national)
                if kind != PhoneNumberType.UNKNOWN:
                    return kind  # the region's own verdict, which phonenumbers computes a second time
        return PhoneNumberType.UNKNOWN  # no region claims it, so phonenumbers has no metadata for it

    def _types(self, region):
        types = self.types_by_region.get(region)
        if types is None:
            metadata = PhoneMetadata.metadata_for_region_or_calling_code(self.country_code, region)
            types = self.types_by_region[region] = _Types(metadata) if metadata is not None else _NO_TYPES
        return types


class _Types:
    """phonenumbers' _number_type_helper for one region's metadata, its patterns compiled once and
    grouped by number length (a description whose possible lengths exclude a length never matches it)."""

    def __init__(self, metadata):
        self.metadata = metadata
        self.by_length = {}

    def number_type(self, national):
        by_length = self.by_length.get(len(national))
        if by_length is None:
            by_length = self.by_length[len(national)] = _TypesOfLength(self.metadata, len(national))
        return by_length.number_type(national)


class _TypesOfLength:
    def __init__(self, metadata, length):
        self.general = _pattern(metadata.general_desc, length)
        self.specials = [(kind, pattern) for name, kind in SPECIAL_TYPES
                         if (pattern := _pattern(getattr(metadata, name), length)) is not None]
        self.fixed_line = _pattern(metadata.fixed_line, length)
        self.mobile = _pattern(metadata.mobile, length)
        self.same_mobile_and_fixed_line = metadata.same_mobile_and_fixed_line_pattern

    def number_type(self, national):
        if self.general is None or not self.general.fullmatch(national):
            return PhoneNumberType.UNKNOWN
        for kind, pattern in self.specials:
            if pattern.fullmatch(national):
                return kind
        if self.fixed_line is not None and self.fixed_line.fullmatch(national):
            if self.same_mobile_and_fixed_line or (self.mobile is not None and self.mobile.fullmatch(national)):
                return PhoneNumberType.FIXED_LINE_OR_MOBILE
            return PhoneNumberType.FIXED_LINE
        if not self.same_mobile_and_fixed_line and self.mobile is not None and self.mobile.fullmatch(national):
            return PhoneNumberType.MOBILE
        return PhoneNumberType.UNKNOWN


class _NoTypes:
    def number_type(self, national):
        return PhoneNumberType.UNKNOWN


_NO_TYPES = _NoTypes()


def _pattern(description, length):
    """The compiled pattern a number of `length` digits must fully match to fit `description`, or
    None when none can (phonenumbers' _is_number_matching_desc)."""
    if description is None:
        return None
    if description.possible_length and length not in description.possible_length:
        return None
    if not description.national_number_pattern:
        return None
    return _compiled(description.national_number_pattern)


@functools.cache
def _compiled(pattern):
    # Once per pattern of the (fixed, finite) metadata: re's own cache holds 512 and phonenumbers
    # has thousands, and a number's patterns are looked up again for each length it comes in.
    return re.compile(pattern)


@functools.lru_cache(maxsize=100_000)
def region_code(e164):
    """The ISO 3166 country of a valid E.164 number ("" when phonenumbers knows none): the
    country code's only region, else phonenumbers' own choice among those sharing it (+1 → US,
    CA, ...). region_code("+912212345678") == "IN"."""
    number = parse_international(e164)
    regions = _country(number.country_code).regions
    if len(regions) == 1:
        return regions[0] if regions[0] != phonenumbers.UNKNOWN_REGION else ""
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None)) or ""


class CalleeZones(NamedTuple):
    """The zones a callee's legal hours are judged in, and where they came from; no zones means
    the campaign's timezone."""

    zones: tuple
    source: str


FROM_CAMPAIGN = CalleeZones((), CalleeTimezoneSource.CAMPAIGN.value)


def explicit_zone(name):
    return CalleeZones((name,), CalleeTimezoneSource.EXPLICIT.value)


@functools.lru_cache(maxsize=10_000)
def zones_of(number_zones):
    """`CalleeZones` for the zones phonenumbers gives a number: its only zone, else all of them
    (legal hours must be open in every one), else (unknown) the campaign's.

    >>> zones_of(("America/New_York",)).source, zones_of(("America/Chicago", "America/Denver")).source
    ('number', 'number_zones')
    """
    known = tuple(name for name in number_zones if name not in UNKNOWN_TIME_ZONES and _is_known_zone(name))
    if not known:
        return FROM_CAMPAIGN
    if len(known) == 1:
        return CalleeZones(known, CalleeTimezoneSource.NUMBER.value)
    return CalleeZones(known, CalleeTimezoneSource.NUMBER_ZONES.value)


def callee_zones(e164):
    """`zones_of` the zones of a valid E.164 number."""
    return zones_of(time_zones(parse_international(e164)))


def _is_known_zone(name):
    try:
        zone(name)
    except InvalidTimezone:
        return False
    return True
