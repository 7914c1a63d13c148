"""CSV contact import for batch campaigns: validate every row to the letter, then store it fast.

The file (docs/product.md §1, CSV rules): UTF-8 with or without a BOM; comma, semicolon or tab
delimited (detected from the header row); the first header is `phone`; every other column becomes
a context variable (string values, kept exactly as written), and every `${var}` of the agent's
prompt must have a column. An optional `timezone` column (IANA) gives a contact its own calling
timezone; when empty or absent the timezone is inferred from the number where the number maps to
exactly one timezone (the UK's +44 20 → Europe/London, India → Asia/Calcutta), else the campaign's
applies. The timezone column also stays in the context, like every other column. Each task also
keeps the zones the workspace's legal hours are judged in (`callee_timezones`, and why): the
given zone, else the number's one zone, else all the number's zones, else the campaign's.

Report: `ContactImport.errors` is the complete list of `{"row", "column", "reason"}` entries, rows
numbered as a spreadsheet shows them (the header is row 1), sorted by row. It holds errors and
duplicates: `error_count` counts the errors (rows refused, or problems with the whole file, whose
`row` is null when no row is to blame) and `duplicates` the rows not imported because their
number came earlier in the file or is already in the campaign; so
`len(errors) == error_count + duplicates`. Duplicates are never errors: the first row with a
number is imported, later ones are reported.

Policy:
- A file with errors imports nothing unless `skip_invalid`, which imports the valid rows. Errors
  about the whole file (encoding, size, row limit, header, missing prompt variables) import
  nothing even then.
- Contacts can be added while the campaign is `scheduled` (before it has called anyone): a second
  file appends to the list, skipping numbers the campaign already has (the way to add the rows
  fixed after a `skip_invalid` import). Once the campaign runs, is paused, completed or archived,
  or is past its end, uploads are refused with `ImportRefused`.
- Numbers on the organisation's do-not-call list are imported archived (reason `dnc`) so the list
  shows them and why they are never called; contacts whose calling window cannot open before the
  campaign's end are imported archived (reason `ended`). Neither is an error. Under the
  workspace's legal hours a contact's first attempt is their first opening in its zones (the
  task marked held by them), or it is archived `ended` or `ineligible` when there is none.
"""
import csv
import io
import itertools
import random
from json.encoder import encode_basestring as encode_json_string

import phonenumbers
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone as django_timezone

from campaigns.actions.dnc import listed_numbers
from campaigns.models import (
    Campaign, CampaignStatus, CampaignType, CompletionReason, ContactImport, Task, TaskStatus,
)
from campaigns.phone_numbers import explicit_zone, parse_international, time_zones, zones_of
from campaigns.prompts import prompt_variables
from campaigns.signals import tasks_changed
from campaigns.actions.task_store import NULL, copy_array, copy_task_rows
from dialer.compliance import first_legal_attempt, policy_from_json
from dialer.scheduling import first_attempt_at, resolve_config
from dialer.windows import InvalidTimezone, zone

PHONE = "phone"
TIMEZONE = "timezone"
DELIMITERS = (",", ";", "\t")
UNKNOWN_ZONE = "Etc/Unknown"
BACKSLASH, DOUBLED_BACKSLASH = "\\", "\\\\"
COPY_CHUNK_ROWS = 2_000
SHOWN_VALUE_LENGTH = 40
COPY_COLUMNS = (
    "campaign", "phone", "context", "submitted_config", "timezone", "status", "attempts_made", "next_attempt_at",
    "dispatch_rank", "tie_break", "last_outcome", "final_outcome", "completion_reason", "created_at", "updated_at",
    "completed_at", "callee_timezones", "callee_timezone_source", "held_by",
)
PARSE_ERRORS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "has no known country code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "is not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "is too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "is too short",
    phonenumbers.NumberParseException.TOO_LONG: "is too long",
}


class ImportRefused(ValueError):
    """The campaign cannot take contacts now; the message says why, for the operator."""


class _FileProblem(Exception):
    """A problem with the whole file that stops reading it."""

    def __init__(self, row, reason, whole_file=False):
        super().__init__(reason)
        self.row = row
        self.reason = reason
        self.whole_file = whole_file


def do_import_contacts(campaign, fileobj, filename="", skip_invalid=False):
    """Validate the CSV in `fileobj` (binary, read once) and store its contacts as tasks of `campaign`.

    Returns the saved `ContactImport`, also when nothing was imported. Raises `ImportRefused` when
    the campaign cannot take contacts (see the module docstring). Tasks, the ContactImport row and
    `campaign.contacts_uploaded_at` are written in one transaction (tasks through COPY); each task
    gets its first `next_attempt_at` in its own timezone, dispatch rank 0 and a random tie-break.
    After commit, `tasks_changed` nudges the organisation's dispatcher.
    """
    now = django_timezone.now()
    _refuse_unless_open(campaign, now)
    parsed = _parse(fileobj, campaign.agent.prompt)
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        _refuse_unless_open(locked, now)
        contacts = _drop_numbers_already_in(locked, parsed)
        importable = not parsed.fatal and (skip_invalid or parsed.error_count == 0)
        imported, dialable = _copy_tasks(locked, contacts, now) if importable and contacts else (0, 0)
        if imported:
            locked.contacts_uploaded_at = campaign.contacts_uploaded_at = now
            locked.save(update_fields=["contacts_uploaded_at", "updated_at"])
        contact_import = ContactImport.objects.create(
            campaign=locked, filename=filename[:255], rows_total=parsed.rows_total, rows_imported=imported,
            duplicates=parsed.duplicates, error_count=parsed.error_count,
            errors=sorted(parsed.entries, key=_entry_order), skip_invalid=skip_invalid,
        )
        if dialable:
            organisation_id = locked.workspace.organisation_id
            transaction.on_commit(lambda: tasks_changed.send(sender=Task, organisation_id=organisation_id))
    return contact_import


def _refuse_unless_open(campaign, now):
    if campaign.type != CampaignType.BATCH:
        raise ImportRefused("Contacts are uploaded to batch campaigns only; a realtime campaign takes tasks "
                            "through the Create Task API.")
    if campaign.status != CampaignStatus.SCHEDULED:
        raise ImportRefused(f"The campaign is {campaign.status}: contacts can only be added before it starts "
                            "calling. Create a new campaign for these contacts.")
    if campaign.end_at is not None and campaign.end_at <= now:
        raise ImportRefused(f"The campaign ended at {campaign.end_at:%Y-%m-%d %H:%M %Z}; it takes no more contacts.")


def _entry_order(entry):
    return (entry["row"] or 0, entry["column"])


class _Parsed:
    """What reading a file found: the valid contacts and the report."""

    def __init__(self):
        self.rows_total = 0
        self.contacts = []  # (row, e164, context as JSON text, timezone or "")
        self.entries = []
        self.error_count = 0
        self.duplicates = 0
        self.fatal = False
        self.last_row = 0  # the last row read, so a problem met while reading names the next one

    def error(self, row, column, reason, fatal=False):
        self.entries.append({"row": row, "column": column, "reason": reason})
        self.error_count += 1
        self.fatal = self.fatal or fatal

    def duplicate(self, row, reason):
        self.entries.append({"row": row, "column": PHONE, "reason": reason})
        self.duplicates += 1


def _shown(value):
    value = value if len(value) <= SHOWN_VALUE_LENGTH else value[:SHOWN_VALUE_LENGTH] + "…"
    return repr(value)


def _lines(fileobj, max_bytes):
    """Decoded lines of a binary file, the BOM removed; raises `_FileProblem` past the size limit
    or at bytes that are not UTF-8 (with row None: the caller knows which row it was reading).

    Reads are bounded by what is left of the limit, so a huge file without line breaks is refused
    without ever being held in memory.
    """
    declared = getattr(fileobj, "size", None)
    if declared is not None and declared > max_bytes:
        raise _FileProblem(None, f"The file is larger than the limit of {max_bytes:,} bytes.", whole_file=True)
    size = 0
    number = 0
    while raw := fileobj.readline(max_bytes - size + 1):
        size += len(raw)
        if size > max_bytes:
            raise _FileProblem(None, f"The file is larger than the limit of {max_bytes:,} bytes.", whole_file=True)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _FileProblem(None, "The file is not UTF-8 text: save it as \"CSV UTF-8\" and upload it again.") from None
        if "\x00" in line:
            raise _FileProblem(None, "The file contains NUL characters: it is not a CSV text file "
                                   "(an Excel workbook or a UTF-16 file?). Save it as \"CSV UTF-8\".")
        yield line[1:] if number == 0 and line.startswith("\ufeff") else line
        number += 1


def _delimiter(header_line):
    """The delimiter that splits the header row into the most columns (comma when none does)."""
    widths = {delimiter: len(next(csv.reader([header_line], delimiter=delimiter))) for delimiter in DELIMITERS}
    return max(DELIMITERS, key=lambda delimiter: (widths[delimiter], delimiter == ","))


def _check_header(header, prompt, parsed):
    """Header rules, reported on row 1; returns the cleaned column names, or None when the phone
    column is missing (rows cannot be read then)."""
    names = [name.strip() for name in header]
    if not names or names[0].lower() != PHONE:
        first = names[0] if names else ""
        parsed.error(1, first or "column 1", f"The first column's header must be phone, not {_shown(first)}.",
                     fatal=True)
        return None
    names[0] = PHONE
    seen = {}
    for index, name in enumerate(names[1:], start=2):
        if not name:
            parsed.error(1, f"column {index}", f"Column {index} has no header: name it or delete the column.", fatal=True)
        elif name.lower() in seen:
            parsed.error(1, name, f"Column name {_shown(name)} appears twice (columns {seen[name.lower()]} and {index}).",
                         fatal=True)
        else:
            seen[name.lower()] = index
    missing = [variable for variable in prompt_variables(prompt) if variable not in names[1:]]
    if missing:
        listed = ", ".join(missing)
        near = [f"{name} is not {variable}" for variable in missing for name in names[1:] if name.lower() == variable.lower()]
        parsed.error(1, "", f"The agent's prompt uses {', '.join('${' + v + '}' for v in missing)} but no column "
                            f"supplies {'it' if len(missing) == 1 else 'them'}: add columns named {listed}"
                            + (f" (names match exactly: {'; '.join(near)})." if near else "."), fatal=True)
    return names


class _PhoneChecker:
    """Number → (E.164, its zones), or a reason; caches what it learns about zones. The zones are
    (the inferred timezone or "", `CalleeZones`)."""

    def __init__(self):
        self.inferred_zones = {}
        self.known_zones = {}

    def check(self, raw):
        """(e164, zones, None) for a valid number, else (None, None, reason)."""
        text = raw.strip()
        if not text:
            return None, None, "The phone number is empty."
        if text.startswith("00"):
            text = "+" + text[2:]
        elif not text.startswith("+"):
            return None, None, (f"{_shown(raw)} has no country code: write it with + and the country code, "
                                "like +442079460958.")
        try:
            number = parse_international(text)
        except phonenumbers.NumberParseException as exc:
            return None, None, f"{_shown(raw)} {PARSE_ERRORS.get(exc.error_type, 'is not a phone number')}."
        if number.extension:
            return None, None, f"{_shown(raw)} has an extension, which cannot be dialled."
        if number.kind == phonenumbers.PhoneNumberType.UNKNOWN:
            return None, None, f"{_shown(raw)} is not a valid number for country code +{number.country_code}."
        return number.e164, self._timezone(number), None

    def _timezone(self, number):
        zones = time_zones(number)
        inferred = self.inferred_zones.get(zones)
        if inferred is None:
            single = len(zones) == 1 and zones[0] != UNKNOWN_ZONE and self.is_known_zone(zones[0])
            inferred = self.inferred_zones[zones] = (zones[0] if single else "", zones_of(zones))
        return inferred

    def is_known_zone(self, name):
        known = self.known_zones.get(name)
        if known is None:
            try:
                zone(name)
                known = True
            except InvalidTimezone:
                known = False
            self.known_zones[name] = known
        return known


def _parse(fileobj, prompt):
    """Read and validate the whole file; nothing is written."""
    parsed = _Parsed()
    lines = _lines(fileobj, settings.CSV_MAX_BYTES)
    try:
        first_line = next(lines, None)
        if first_line is None or not first_line.strip():
            parsed.error(1, "", "The file is empty: the first row must be a header starting with phone.", fatal=True)
            return parsed
        reader = csv.reader(itertools.chain([first_line], lines), delimiter=_delimiter(first_line), strict=True)
        names = _check_header(next(reader), prompt, parsed)
        parsed.last_row = 1
        if names is None:
            return parsed
        _read_rows(reader, names, settings.CSV_MAX_ROWS, parsed)
    except _FileProblem as problem:
        row = None if problem.whole_file else (problem.row or parsed.last_row + 1)
        parsed.error(row, "", problem.reason, fatal=True)
        return parsed
    except csv.Error as exc:
        parsed.error(parsed.last_row + 1, "", f"The row is not valid CSV ({exc}); check its quotes.", fatal=True)
        return parsed
    if parsed.rows_total == 0:
        parsed.error(2, "", "The file has a header row but no contacts.", fatal=True)
    return parsed


def _read_rows(reader, names, max_rows, parsed):
    width = len(names)
    context_keys = [encode_json_string(name) + ":" for name in names[1:]]
    timezone_index = next((index for index, name in enumerate(names) if name.lower() == TIMEZONE), None)
    phones = _PhoneChecker()
    first_row_of = {}
    for row, cells in enumerate(reader, start=2):
        parsed.last_row = row
        if len(cells) != width or not cells[0]:
            if not any(cell.strip() for cell in cells):
                continue  # a blank line, or a row of empty cells a spreadsheet left behind
            if len(cells) != width:
                parsed.rows_total += 1
                parsed.error(row, "", f"The row has {len(cells)} cells; the header has {width}.")
                continue
        parsed.rows_total += 1
        if parsed.rows_total > max_rows:
            raise _FileProblem(row, f"The file has more than {max_rows:,} contacts, the limit for one upload. "
                                    "Split it into smaller files.")
        e164, contact_zone, reason = phones.check(cells[0])
        valid = reason is None
        if not valid:
            parsed.error(row, PHONE, reason)
        if timezone_index is not None:
            given = cells[timezone_index].strip()
            if given and phones.is_known_zone(given):
                contact_zone = (given, explicit_zone(given))
            elif given:
                parsed.error(row, names[timezone_index], f"{_shown(given)} is not an IANA timezone (like Europe/London).")
                valid = False
        if not valid:
            continue
        earlier = first_row_of.setdefault(e164, row)
        if earlier != row:
            parsed.duplicate(row, f"{e164} is also on row {earlier}; only row {earlier} is imported.")
            continue
        parsed.contacts.append((row, e164, _context_json(context_keys, cells[1:]), contact_zone))


def _context_json(keys, values):
    """The context object as `json.dumps(dict(zip(names, values)), ensure_ascii=False,
    separators=(",", ":"))` writes it, without building the dict and an encoder per row; `keys` are
    the names already encoded, each followed by ":".

    >>> _context_json(['"name":', '"plan":'], ["Zoë", "gold"])
    '{"name":"Zoë","plan":"gold"}'
    """
    return "{" + ",".join(map(str.__add__, keys, map(encode_json_string, values))) + "}"


def _drop_numbers_already_in(campaign, parsed):
    """The parsed contacts minus numbers the campaign already has (reported as duplicates)."""
    if campaign.contacts_uploaded_at is None or not parsed.contacts:
        return parsed.contacts
    phones = [contact[1] for contact in parsed.contacts]
    existing = _campaign_phones_among(campaign.id, phones)
    kept = []
    for contact in parsed.contacts:
        if contact[1] in existing:
            parsed.duplicate(contact[0], f"{contact[1]} is already in this campaign (an earlier upload).")
        else:
            kept.append(contact)
    return kept


def _campaign_phones_among(campaign_id, phones):
    """The subset of `phones` (E.164, so free of commas) the campaign already has tasks for, sent
    as one text the server splits, like `campaigns.actions.dnc.listed_numbers` does."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT phone FROM campaigns_task WHERE campaign_id = %s "
                       "AND phone = ANY(string_to_array(%s, ','))", [campaign_id, ",".join(phones)])
        return {phone for (phone,) in cursor.fetchall()}


def _copy_tasks(campaign, contacts, now):
    """COPY the contacts into campaigns_task; returns (tasks stored, tasks queued for dialling)."""
    on_dnc = listed_numbers(campaign.workspace.organisation_id, [contact[1] for contact in contacts])
    policy = policy_from_json(campaign.workspace.compliance)
    first_attempts = {}  # zones → (first attempt or None, completion reason, held by)
    for contact_zone in {contact[3] for contact in contacts}:
        config = resolve_config(Task(timezone=contact_zone[0]), campaign)
        at, reason, held_by = first_legal_attempt(policy, config.window, contact_zone[1].zones or (config.window.timezone,),
                                                  first_attempt_at(config, now), config.end_at)
        first_attempts[contact_zone] = (at.isoformat() if at else None, reason, held_by)
    dialable = sum(1 for _, phone, _, contact_zone in contacts
                   if phone not in on_dnc and first_attempts[contact_zone][0] is not None)
    copy_task_rows(COPY_COLUMNS, _copy_text(campaign.id, contacts, on_dnc, first_attempts, now.isoformat()))
    return len(contacts), dialable


def _copy_text(campaign_id, contacts, on_dnc, first_attempts, stamp):
    """The contacts as rows of COPY_COLUMNS in COPY's text format, COPY_CHUNK_ROWS rows a chunk."""
    # Given its zones and whether it is on the do-not-call list, a task's columns are fixed but
    # for phone, context and tie-break: written once, as the text before and after the tie-break.
    fixed = {}
    for (window_zone, callee), (first_attempt, not_dialable, held_by) in first_attempts.items():
        for blocked in (False, True):
            next_attempt = first_attempt
            if blocked:
                status, reason, next_attempt, completed = TaskStatus.ARCHIVED, CompletionReason.DNC, None, stamp
            elif next_attempt is None:
                status, reason, completed = TaskStatus.ARCHIVED, not_dialable, stamp
            else:
                status, reason, completed = TaskStatus.QUEUED, "", None
            fixed[(window_zone, callee), blocked] = (
                f"\t{{}}\t{window_zone}\t{status}\t0\t{next_attempt or NULL}\t0\t",
                f"\t\t\t{reason}\t{stamp}\t{stamp}\t{completed or NULL}\t{copy_array(callee.zones)}\t{callee.source}"
                f"\t{held_by if status == TaskStatus.QUEUED else ''}\n")
    for start in range(0, len(contacts), COPY_CHUNK_ROWS):
        lines = []
        for _, phone, context_json, contact_zone in contacts[start:start + COPY_CHUNK_ROWS]:
            before_tie_break, after_tie_break = fixed[contact_zone, phone in on_dnc]
            # JSON escapes control characters itself; COPY's text format only needs backslashes doubled.
            lines.append(f"{campaign_id}\t{phone}\t{context_json.replace(BACKSLASH, DOUBLED_BACKSLASH)}"
                         f"{before_tie_break}{random.getrandbits(31)}{after_tie_break}")
        yield "".join(lines)


def error_report_csv(contact_import):
    """The import's report as CSV text (row, column, reason), safe to open in a spreadsheet: a
    cell starting with = + - @ (or a tab or carriage return) is prefixed with ' so it is not run
    as a formula."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "column", "reason"])
    for entry in contact_import.errors:
        writer.writerow([_neutralised("" if entry["row"] is None else str(entry["row"])),
                         _neutralised(entry["column"]), _neutralised(entry["reason"])])
    return out.getvalue()


def _neutralised(cell):
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell
