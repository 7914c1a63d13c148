import csv
import datetime as dt
import io

import psycopg2
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from campaigns.actions import csv_import
from campaigns.actions.csv_import import ImportRefused, do_import_contacts, error_report_csv
from campaigns.models import CampaignStatus, CampaignType, ContactImport, Task
from campaigns.signals import tasks_changed
from tests.factories import AgentFactory, CampaignFactory, DoNotCallFactory, TaskFactory

pytestmark = pytest.mark.django_db

LONDON = "+442079460958"
PARIS = "+33142685300"
NEW_YORK = "+12125551234"
INDIA = "+919876543210"
AUSTRALIAN_MOBILE = "+61412345678"  # Australian mobiles span several timezones


def upload(campaign, text, skip_invalid=False, encoding="utf-8"):
    data = text if isinstance(text, bytes) else text.encode(encoding)
    return do_import_contacts(campaign, io.BytesIO(data), filename="contacts.csv", skip_invalid=skip_invalid)


def batch_campaign(prompt="Hello ${name}.", **fields):
    workspace_fields = {"agent": AgentFactory(prompt=prompt)} if "agent" not in fields else {}
    campaign_fields = {**workspace_fields, **fields}
    campaign_fields.setdefault("workspace", campaign_fields["agent"].workspace)
    return CampaignFactory(**campaign_fields)


def entries(contact_import):
    return [(e["row"], e["column"], e["reason"]) for e in contact_import.errors]


@pytest.fixture
def campaign():
    return batch_campaign()


class TestValidFiles:
    def test_rows_become_queued_tasks_with_e164_numbers_and_context(self, campaign):
        result = upload(campaign, f"phone,name,plan\n{LONDON},Ada,gold\n0033 1 42 68 53 00,Émile,\n")
        assert (result.rows_total, result.rows_imported, result.error_count, result.errors) == (2, 2, 0, [])
        tasks = list(campaign.tasks.order_by("phone"))
        assert [(t.phone, t.context, t.status) for t in tasks] == [
            (PARIS, {"name": "Émile", "plan": ""}, "queued"),
            (LONDON, {"name": "Ada", "plan": "gold"}, "queued"),
        ]
        assert all(t.dispatch_rank == 0 and t.attempts_made == 0 and t.next_attempt_at for t in tasks)
        campaign.refresh_from_db()
        assert campaign.contacts_uploaded_at is not None

    def test_header_phone_is_matched_case_insensitively_and_trimmed(self, campaign):
        assert upload(campaign, f" Phone ,name\n{LONDON},Ada\n").rows_imported == 1

    @pytest.mark.parametrize("delimiter", [",", ";", "\t"])
    def test_each_delimiter_is_detected(self, campaign, delimiter):
        text = f"phone{delimiter}name{delimiter}city\n{LONDON}{delimiter}\"Ada, Countess\"{delimiter}London\n"
        result = upload(campaign, text)
        assert result.rows_imported == 1
        assert campaign.tasks.get().context == {"name": "Ada, Countess", "city": "London"}

    def test_utf8_byte_order_mark_is_ignored(self, campaign):
        result = upload(campaign, f"phone,name\n{LONDON},Zoë\n".encode("utf-8-sig"))
        assert result.rows_imported == 1 and campaign.tasks.get().context == {"name": "Zoë"}

    def test_crlf_line_endings_and_quoted_newlines_are_kept(self, campaign):
        result = upload(campaign, f'phone,name\r\n{LONDON},"Ada\r\nLovelace"\r\n{PARIS},"say ""hi"" \\o/"\r\n')
        assert result.rows_imported == 2
        assert campaign.tasks.get(phone=LONDON).context == {"name": "Ada\r\nLovelace"}
        assert campaign.tasks.get(phone=PARIS).context == {"name": 'say "hi" \\o/'}

    def test_blank_lines_are_skipped_but_rows_keep_their_spreadsheet_numbers(self, campaign):
        result = upload(campaign, f"phone,name\n\n,\n{LONDON},Ada\n12345,Bob\n")
        assert result.rows_total == 2
        assert entries(result) == [(5, "phone", "'12345' has no country code: write it with + and the country code, "
                                                "like +442079460958.")]

    def test_the_first_attempt_waits_for_the_campaigns_start_and_calling_hours(self):
        start = dt.datetime(2031, 1, 6, 8, 0, tzinfo=dt.timezone.utc)  # a Monday
        campaign = batch_campaign(start_at=start, calling_start=dt.time(10), calling_end=dt.time(18))
        upload(campaign, f"phone,name\n{AUSTRALIAN_MOBILE},Ada\n")  # no zone inferred: the campaign's applies
        assert campaign.tasks.get().next_attempt_at == dt.datetime(2031, 1, 6, 10, 0, tzinfo=dt.timezone.utc)

    def test_dispatcher_is_nudged_after_commit(self, campaign, django_capture_on_commit_callbacks):
        received = []

        def receiver(sender, organisation_id, **kwargs):
            received.append(organisation_id)

        tasks_changed.connect(receiver)
        try:
            with django_capture_on_commit_callbacks(execute=True):
                upload(campaign, f"phone,name\n{LONDON},Ada\n")
                assert received == []
        finally:
            tasks_changed.disconnect(receiver)
        assert received == [campaign.workspace.organisation_id]

    def test_storage_takes_a_fixed_number_of_queries_whatever_the_row_count(self, campaign):
        def queries_for(rows):
            target = batch_campaign()
            text = "phone,name\n" + "".join(f"+4420794{n:05d},N{n}\n" for n in range(rows))
            with CaptureQueriesContext(connection) as captured:
                assert upload(target, text).rows_imported == rows
            return len(captured)

        assert queries_for(3) == queries_for(300)


class TestPerContactTimezone:
    def test_timezone_column_sets_the_tasks_own_timezone_and_stays_in_context(self):
        start = dt.datetime(2031, 1, 6, 0, 0, tzinfo=dt.timezone.utc)
        campaign = batch_campaign(start_at=start, calling_start=dt.time(10), calling_end=dt.time(18), timezone="UTC")
        upload(campaign, f"phone,name,timezone\n{NEW_YORK},Ada,Asia/Tokyo\n{PARIS},Bob,\n")
        tokyo = campaign.tasks.get(phone=NEW_YORK)
        assert tokyo.timezone == "Asia/Tokyo" and tokyo.context == {"name": "Ada", "timezone": "Asia/Tokyo"}
        assert tokyo.next_attempt_at == dt.datetime(2031, 1, 6, 1, 0, tzinfo=dt.timezone.utc)  # 10:00 in Tokyo
        paris = campaign.tasks.get(phone=PARIS)
        assert paris.timezone == "Europe/Paris"  # inferred from the number
        assert paris.next_attempt_at == dt.datetime(2031, 1, 6, 9, 0, tzinfo=dt.timezone.utc)

    def test_timezone_is_inferred_from_the_number_only_when_it_has_exactly_one(self):
        campaign = batch_campaign(timezone="Asia/Dubai")
        upload(campaign, f"phone,name\n{INDIA},A\n{NEW_YORK},B\n{AUSTRALIAN_MOBILE},C\n")
        zones = dict(campaign.tasks.values_list("phone", "timezone"))
        assert zones == {INDIA: "Asia/Calcutta", NEW_YORK: "America/New_York", AUSTRALIAN_MOBILE: ""}

    def test_an_unknown_timezone_is_an_error_on_its_row_and_column(self, campaign):
        result = upload(campaign, f"phone,name,TimeZone\n{LONDON},Ada,Mars/Olympus\n")
        assert entries(result) == [(2, "TimeZone", "'Mars/Olympus' is not an IANA timezone (like Europe/London).")]
        assert result.rows_imported == 0

    def test_a_contact_whose_window_cannot_open_before_the_end_is_stored_archived(self):
        start = dt.datetime(2031, 1, 6, 10, 0, tzinfo=dt.timezone.utc)
        campaign = batch_campaign(start_at=start, end_at=start + dt.timedelta(hours=2),
                                  calling_start=dt.time(10), calling_end=dt.time(18), timezone="UTC")
        upload(campaign, f"phone,name,timezone\n{LONDON},Ada,UTC\n{PARIS},Bob,America/Los_Angeles\n")
        assert campaign.tasks.get(phone=LONDON).status == "queued"
        late = campaign.tasks.get(phone=PARIS)
        assert (late.status, late.completion_reason, late.next_attempt_at) == ("archived", "ended", None)


class TestRowErrors:
    @pytest.mark.parametrize("phone, reason", [
        ("", "The phone number is empty."),
        ("2079460958", "'2079460958' has no country code: write it with + and the country code, like +442079460958."),
        ("+999 123456", "'+999 123456' has no known country code."),
        ("+44 hello", "'+44 hello' is not a phone number."),
        ("+44 1", "'+44 1' is too short."),
        ("+1 111 111 1111", "'+1 111 111 1111' is not a valid number for country code +1."),
        ("+44 20 7946 0958 ext. 12", "'+44 20 7946 0958 ext. 12' has an extension, which cannot be dialled."),
        ("+1 415 555 0100 1234 5678 9", "'+1 415 555 0100 1234 5678 9' is too long."),
    ])
    def test_bad_numbers_are_reported_with_row_column_and_reason(self, campaign, phone, reason):
        result = upload(campaign, f"phone,name\n{LONDON},Ada\n{phone},Bob\n")
        assert entries(result) == [(3, "phone", reason)]
        assert (result.error_count, result.rows_imported) == (1, 0)

    def test_a_row_with_the_wrong_number_of_cells_is_an_error(self, campaign):
        result = upload(campaign, f"phone,name\n{LONDON},Ada,extra\n{PARIS}\n")
        assert entries(result) == [(2, "", "The row has 3 cells; the header has 2."),
                                   (3, "", "The row has 1 cells; the header has 2.")]

    def test_every_error_in_the_file_is_reported_at_once(self, campaign):
        result = upload(campaign, "phone,name,timezone\n123,A,\n+44 1,B,Nowhere\n")
        assert [(row, column) for row, column, _ in entries(result)] == [(2, "phone"), (3, "phone"), (3, "timezone")]
        assert result.error_count == 3


class TestFileErrors:
    @pytest.mark.parametrize("text, expected", [
        ("", [(1, "", "The file is empty: the first row must be a header starting with phone.")]),
        ("phone,name\n", [(2, "", "The file has a header row but no contacts.")]),
        (f"number,name\n{LONDON},Ada\n", [(1, "number", "The first column's header must be phone, not 'number'.")]),
        (f"name,phone\nAda,{LONDON}\n", [(1, "name", "The first column's header must be phone, not 'name'.")]),
        (f"phone,name,\n{LONDON},Ada,x\n", [(1, "column 3", "Column 3 has no header: name it or delete the column.")]),
        (f"phone,name,Name\n{LONDON},Ada,x\n",
         [(1, "Name", "Column name 'Name' appears twice (columns 2 and 3).")]),
    ])
    def test_header_problems_are_reported_on_the_first_rows(self, campaign, text, expected):
        result = upload(campaign, text, skip_invalid=True)
        assert entries(result) == expected
        assert result.rows_imported == 0 and not campaign.tasks.exists()

    def test_missing_prompt_variables_are_named_on_row_1(self):
        campaign = batch_campaign(prompt="Hi ${name}, about ${ date } in ${city}; ${name} again.")
        result = upload(campaign, f"phone,Name\n{LONDON},Ada\n", skip_invalid=True)
        assert entries(result) == [(1, "", "The agent's prompt uses ${name}, ${date}, ${city} but no column supplies "
                                           "them: add columns named name, date, city (names match exactly: Name is "
                                           "not name).")]
        assert result.rows_imported == 0

    def test_a_file_that_is_not_utf8_is_refused_naming_the_row(self, campaign):
        result = upload(campaign, f"phone,name\n{LONDON},Ada\n{PARIS},Zoë\n", encoding="latin-1")
        assert entries(result) == [(3, "", 'The file is not UTF-8 text: save it as "CSV UTF-8" and upload it again.')]
        assert result.rows_imported == 0

    def test_a_utf16_file_is_refused(self, campaign):
        result = upload(campaign, f"phone,name\n{LONDON},Ada\n", encoding="utf-16")
        assert result.error_count == 1 and result.rows_imported == 0

    def test_broken_quoting_is_reported_on_its_row(self, campaign):
        result = upload(campaign, f'phone,name\n{LONDON},Ada\n{PARIS},"Bob"x\n', skip_invalid=True)
        assert [(row, column) for row, column, _ in entries(result)] == [(3, "")]
        assert "not valid CSV" in result.errors[0]["reason"] and result.rows_imported == 0

    def test_the_row_limit_stops_reading_and_imports_nothing(self, campaign, settings):
        settings.CSV_MAX_ROWS = 3
        rows = "".join(f"+4420794{n:05d},N\n" for n in range(10))
        result = upload(campaign, "phone,name\n" + rows, skip_invalid=True)
        assert entries(result) == [(5, "", "The file has more than 3 contacts, the limit for one upload. "
                                           "Split it into smaller files.")]
        assert result.rows_total == 4 and not campaign.tasks.exists()

    def test_a_file_exactly_at_the_row_limit_is_imported(self, campaign, settings):
        settings.CSV_MAX_ROWS = 3
        rows = "".join(f"+4420794{n:05d},N\n" for n in range(3))
        assert upload(campaign, "phone,name\n" + rows).rows_imported == 3

    def test_the_byte_limit_is_enforced_while_reading(self, campaign, settings):
        settings.CSV_MAX_BYTES = 100
        rows = "".join(f"+4420794{n:05d},N\n" for n in range(20))
        result = upload(campaign, "phone,name\n" + rows, skip_invalid=True)
        assert entries(result) == [(None, "", "The file is larger than the limit of 100 bytes.")]
        assert not campaign.tasks.exists()


class TestDuplicates:
    def test_duplicate_numbers_are_imported_once_and_reported_with_their_rows(self, campaign):
        result = upload(campaign, f"phone,name\n{LONDON},Ada\n+44 20 7946 0958,Ada again\n00442079460958,Third\n")
        assert result.rows_imported == 1 and campaign.tasks.get().context == {"name": "Ada"}
        assert (result.duplicates, result.error_count) == (2, 0)
        assert entries(result) == [
            (3, "phone", f"{LONDON} is also on row 2; only row 2 is imported."),
            (4, "phone", f"{LONDON} is also on row 2; only row 2 is imported."),
        ]

    def test_a_duplicate_of_an_invalid_row_is_the_one_imported_when_skipping(self, campaign):
        result = upload(campaign, f"phone,name,timezone\n{LONDON},Ada,Nowhere\n{LONDON},Bob,\n", skip_invalid=True)
        assert result.duplicates == 0 and campaign.tasks.get().context["name"] == "Bob"

    def test_a_second_upload_appends_and_skips_numbers_already_in_the_campaign(self, campaign):
        upload(campaign, f"phone,name\n{LONDON},Ada\n")
        second = upload(campaign, f"phone,name\n{PARIS},Bob\n{LONDON},Ada again\n")
        assert (second.rows_imported, second.duplicates) == (1, 1)
        assert entries(second) == [(3, "phone", f"{LONDON} is already in this campaign (an earlier upload).")]
        assert sorted(campaign.tasks.values_list("phone", flat=True)) == [PARIS, LONDON]


class TestAtomicityAndSkipping:
    def test_a_file_with_any_error_leaves_no_task_but_keeps_the_report(self, campaign):
        result = upload(campaign, f"phone,name\n{LONDON},Ada\n{PARIS},Bob\nnope,Eve\n")
        assert not Task.objects.filter(campaign=campaign).exists()
        campaign.refresh_from_db()
        assert campaign.contacts_uploaded_at is None
        stored = ContactImport.objects.get(id=result.id)
        assert (stored.rows_total, stored.rows_imported, stored.error_count) == (3, 0, 1)

    def test_skip_invalid_imports_the_good_rows_and_reports_the_rest(self, campaign):
        result = upload(campaign, f"phone,name\n{LONDON},Ada\nnope,Eve\n{PARIS},Bob\n", skip_invalid=True)
        assert (result.rows_total, result.rows_imported, result.error_count, result.skip_invalid) == (3, 2, 1, True)
        assert [row for row, _, _ in entries(result)] == [3]
        assert sorted(campaign.tasks.values_list("phone", flat=True)) == [PARIS, LONDON]

    def test_a_failure_while_storing_rolls_everything_back(self, campaign, monkeypatch):
        def broken_copy(*args):
            raise RuntimeError("disk full")

        monkeypatch.setattr("campaigns.actions.csv_import._copy_tasks", broken_copy)
        with pytest.raises(RuntimeError):
            upload(campaign, f"phone,name\n{LONDON},Ada\n")
        assert not ContactImport.objects.filter(campaign=campaign).exists()
        campaign.refresh_from_db()
        assert campaign.contacts_uploaded_at is None

    def test_a_failure_midway_through_the_streamed_copy_rolls_everything_back(self, campaign, monkeypatch):
        monkeypatch.setattr("campaigns.actions.csv_import.COPY_CHUNK_ROWS", 1)
        formatted = csv_import._copy_text

        def failing_after_the_first_chunk(*args):
            chunks = formatted(*args)
            yield next(chunks)
            raise RuntimeError("disk full")

        monkeypatch.setattr("campaigns.actions.csv_import._copy_text", failing_after_the_first_chunk)
        with pytest.raises(psycopg2.Error, match="disk full"):
            upload(campaign, f"phone,name\n{LONDON},Ada\n{PARIS},Bob\n")
        assert not Task.objects.filter(campaign=campaign).exists()
        assert not ContactImport.objects.filter(campaign=campaign).exists()
        campaign.refresh_from_db()
        assert campaign.contacts_uploaded_at is None


class TestDoNotCall:
    def test_numbers_on_the_do_not_call_list_are_stored_archived_and_never_queued(self, campaign):
        DoNotCallFactory(organisation=campaign.workspace.organisation, phone=PARIS)
        DoNotCallFactory(phone=LONDON)  # another organisation's list does not apply
        result = upload(campaign, f"phone,name\n{LONDON},Ada\n{PARIS},Bob\n")
        assert (result.rows_imported, result.error_count) == (2, 0)
        blocked = campaign.tasks.get(phone=PARIS)
        assert (blocked.status, blocked.completion_reason, blocked.next_attempt_at) == ("archived", "dnc", None)
        assert campaign.tasks.get(phone=LONDON).status == "queued"

    def test_tasks_streamed_in_several_chunks_keep_their_own_status_timezone_and_context(self, campaign, monkeypatch):
        monkeypatch.setattr("campaigns.actions.csv_import.COPY_CHUNK_ROWS", 2)
        DoNotCallFactory(organisation=campaign.workspace.organisation, phone=PARIS)
        result = upload(campaign, f"phone,name,timezone\n{LONDON},Ada,\n{PARIS},Bob,\n{NEW_YORK},Cy,America/Chicago\n"
                                  f"{INDIA},Di,\n{AUSTRALIAN_MOBILE},Ed,\n")
        assert (result.rows_imported, result.error_count) == (5, 0)
        stored = {task.phone: (task.status, task.completion_reason, task.timezone, task.context["name"])
                  for task in campaign.tasks.all()}
        assert stored == {
            LONDON: ("queued", "", "Europe/London", "Ada"),
            PARIS: ("archived", "dnc", "Europe/Paris", "Bob"),
            NEW_YORK: ("queued", "", "America/Chicago", "Cy"),
            INDIA: ("queued", "", "Asia/Calcutta", "Di"),
            AUSTRALIAN_MOBILE: ("queued", "", "", "Ed"),
        }


class TestRefusals:
    def test_realtime_campaigns_take_no_csv(self):
        campaign = batch_campaign(type=CampaignType.REALTIME)
        with pytest.raises(ImportRefused, match="batch campaigns only"):
            upload(campaign, f"phone,name\n{LONDON},Ada\n")

    @pytest.mark.parametrize("status", [CampaignStatus.RUNNING, CampaignStatus.PAUSED, CampaignStatus.COMPLETED,
                                        CampaignStatus.ARCHIVED])
    def test_campaigns_that_started_calling_or_ended_refuse_contacts(self, status):
        campaign = batch_campaign(status=status)
        TaskFactory(campaign=campaign)
        with pytest.raises(ImportRefused, match=f"The campaign is {status}: contacts can only be added before"):
            upload(campaign, f"phone,name\n{LONDON},Ada\n")
        assert campaign.tasks.count() == 1 and not campaign.imports.exists()

    def test_a_campaign_past_its_end_refuses_contacts(self):
        now = dt.datetime.now(dt.timezone.utc)
        campaign = batch_campaign(start_at=now - dt.timedelta(days=2), end_at=now - dt.timedelta(days=1))
        with pytest.raises(ImportRefused, match="ended at"):
            upload(campaign, f"phone,name\n{LONDON},Ada\n")


class TestErrorReport:
    def test_error_report_lists_every_entry_and_neutralises_formulas(self, campaign):
        result = upload(campaign, 'phone,name,"=HYPERLINK(""x"")"\n=1+2,Ada,x\n-5,Bob,y\n', skip_invalid=True)
        rows = list(csv.reader(io.StringIO(error_report_csv(result))))
        assert rows[0] == ["row", "column", "reason"]
        assert rows[1] == ["2", "phone", "'=1+2' has no country code: write it with + and the country code, "
                                         "like +442079460958."]
        assert rows[2][2].startswith("'-5'")

    def test_cells_starting_with_formula_characters_get_a_quote(self):
        contact_import = ContactImport(errors=[{"row": None, "column": "=cmd", "reason": "@SUM(A1)"},
                                               {"row": 2, "column": "+x", "reason": "-1"}])
        rows = list(csv.reader(io.StringIO(error_report_csv(contact_import))))
        assert rows[1:] == [["", "'=cmd", "'@SUM(A1)"], ["2", "'+x", "'-1"]]


# Valid London numbers: +44 20 7946 0000–9999 plus the 7xxx block gives plenty of distinct ones.
london_numbers = st.integers(min_value=0, max_value=99_999_999).map(lambda n: f"+44207{n:07d}"[:13])
cell_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00\r"), max_size=12)
column_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(lambda name: name not in {"phone", "timezone"})


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    columns=st.lists(column_names, min_size=1, max_size=4, unique=True),
    data=st.data(),
    delimiter=st.sampled_from([",", ";", "\t"]),
    bom=st.booleans(),
)
def test_generated_valid_files_round_trip_exactly_into_tasks(columns, data, delimiter, bom):
    campaign = batch_campaign(prompt=" ".join(f"${{{name}}}" for name in columns))
    phones = data.draw(st.lists(london_numbers, min_size=1, max_size=15, unique=True))
    rows = [[phone] + [data.draw(cell_text) for _ in columns] for phone in phones]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, quoting=csv.QUOTE_ALL if delimiter != "," else csv.QUOTE_MINIMAL,
                        lineterminator="\n")
    writer.writerow(["phone"] + columns)
    writer.writerows(rows)
    result = upload(campaign, out.getvalue().encode("utf-8-sig" if bom else "utf-8"))
    assert (result.rows_imported, result.error_count, result.duplicates) == (len(rows), 0, 0)
    stored = {task.phone: task.context for task in campaign.tasks.all()}
    assert stored == {row[0]: dict(zip(columns, row[1:])) for row in rows}


def test_an_upload_is_asked_only_for_the_variables_the_prompt_will_fill():
    campaign = batch_campaign(prompt="Hi ${first name} ${ name }, ${_sim}")
    result = upload(campaign, f"phone,name\n{LONDON},Ada\n")
    assert entries(result) == [] and result.rows_imported == 1
