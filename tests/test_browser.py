"""The operator's path through the dashboard in a real browser, against real workers and the
simulated carrier: log in, create a batch campaign, upload contacts (a bad file, then a good
one), watch the progress bar move without reloading, pause and resume, open a task, expand a call.

Chromium is Debian's (`/usr/bin/chromium`, installed by `.ci/run`), driven headless by Playwright.
Screenshots of each step go to test-artifacts/screenshots/.
"""
import json
import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from campaigns.models import Campaign, CampaignStatus, TaskStatus
from tests.factories import AgentFactory, CallingNumberFactory, WorkspaceFactory
from bench.live_system import LiveSystem

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
CONTACTS = 16

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"),
]


def contacts_csv(bad_row=False):
    script = json.dumps([{"outcome": "connected", "ring_ms": 400, "talk_ms": 1200}])
    rows = ["phone,name,_sim"]
    for index in range(CONTACTS):
        rows.append(f'+44207946{index:04d},Ada {index},"{script.replace(chr(34), chr(34) * 2)}"')
    if bad_row:
        rows.insert(3, "12345,Bob,")
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture
def operator():
    workspace = WorkspaceFactory(slots=4, name="Browser workspace")
    AgentFactory(workspace=workspace, name="Reminder agent", prompt="Hi ${name}")
    CallingNumberFactory(workspace=workspace, number="+14155550100")
    get_user_model().objects.create_superuser("operator", "", "pass-word-123")
    return workspace


def test_operator_creates_uploads_watches_pauses_resumes_and_inspects_a_call(live_server, operator, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API runs an event loop in this thread; our ORM reads here are plain sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SHOTS.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    with LiveSystem(time_scale=1.0, concurrency=2), sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.set_default_timeout(20_000)
        try:
            page.goto(f"{base}/admin/login/?next=/admin/campaigns/campaign/add/")
            page.fill("#id_username", "operator")
            page.fill("#id_password", "pass-word-123")
            page.click("input[type=submit]")

            page.select_option("#id_workspace", label=str(operator))
            page.fill("#id_name", "Browser renewals")
            page.select_option("#id_agent", label="Reminder agent")
            page.select_option("#id_calling_number", label="+14155550100")
            page.fill("#id_slots", "2")
            page.click("input[name=_save]")
            expect(page).to_have_url(f"{base}/admin/campaigns/campaign/{Campaign.objects.get().id}/contacts/")
            campaign = Campaign.objects.get()

            page.set_input_files("#id_file", {"name": "contacts.csv", "mimeType": "text/csv",
                                              "buffer": contacts_csv(bad_row=True)})
            page.click("#upload_form input[type=submit]")
            report = page.locator("#report tbody tr").first
            expect(report.locator("td").nth(0)).to_have_text("4")
            expect(report.locator("td").nth(1)).to_have_text("phone")
            expect(page.locator("#import-report")).to_contain_text("Nothing was imported")
            page.screenshot(path=str(SHOTS / "upload-error-report.png"), full_page=True)

            page.set_input_files("#id_file", {"name": "contacts.csv", "mimeType": "text/csv",
                                              "buffer": contacts_csv()})
            page.click("#upload_form input[type=submit]")
            expect(page.locator("#import-report")).to_contain_text(f"{CONTACTS} imported")

            page.goto(f"{base}/admin/campaigns/campaign/{campaign.id}/change/")
            # The page refreshes its figures from stats.json: no reload needed to see progress.
            page.wait_for_function(
                "document.querySelector('[data-stat=done]').textContent !== '0'", timeout=45_000)
            width = page.eval_on_selector("#progress-bar", "bar => parseFloat(bar.style.width)")
            assert 0 < width
            page.screenshot(path=str(SHOTS / "campaign-running.png"), full_page=True)

            page.click("#control-pause")
            expect(page.locator("#control-summary")).to_contain_text("will change (queued → paused)")
            page.screenshot(path=str(SHOTS / "pause-confirmation.png"))
            page.click("#confirm-control")
            expect(page.locator("#campaign-summary [data-role=status]")).to_have_text("Paused")
            expect(page.locator(".messagelist")).to_contain_text("1 campaign paused")
            assert campaign.tasks.filter(status=TaskStatus.QUEUED).count() == 0

            page.click("#control-resume")
            page.click("#confirm-control")
            expect(page.locator(".messagelist")).to_contain_text("1 campaign resumed")
            campaign.refresh_from_db()
            assert campaign.status == CampaignStatus.RUNNING

            page.goto(f"{base}/admin/campaigns/campaign/{campaign.id}/change/?task_status=completed#tasks")
            page.click("#task-table tbody a")
            expect(page.locator("#call-table")).to_contain_text("Ended")
            page.click("[data-toggle-row]")
            details = page.locator(".dash-call-details").first
            expect(details).to_be_visible()
            expect(details).to_contain_text("+14155550100 →")
            expect(details.locator("audio")).to_have_count(1)
            expect(details).to_contain_text("connected")
            page.screenshot(path=str(SHOTS / "task-call-expanded.png"), full_page=True)
            page.click("#tab-details")
            expect(page.locator("#resolved-config")).to_contain_text("Max attempts")
        finally:
            browser.close()
