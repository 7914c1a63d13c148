"""Idempotent first-run setup: an admin login, a demo tenant and a batch campaign already dialing,
and one agent on each runtime (a media stream, Vapi, Retell, ElevenLabs; the platforms' integrations
set to `simulate`, so no account is needed) with a realtime campaign calling through each.

The campaign's contacts are a generated CSV imported through `do_import_contacts`, so the demo
exercises the same path as an operator's upload. Most rows script the simulated carrier (`_sim`)
with short ring and talk times so progress, retries and outcomes show within a minute at real
time; the rest leave the call to the simulator's random mix and realistic durations.
"""
import csv
import io
import json
import os
import random

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils import timezone

from campaigns.actions.campaigns import do_create_campaign
from campaigns.campaign_validation import validate_campaign_body
from campaigns.actions.csv_import import do_import_contacts
from campaigns.actions.integrations import do_set_integration, validate_integration_body, workspace_integration
from campaigns.actions.realtime import do_create_tasks
from campaigns.actions.workspace_setup import do_create_agent, validate_agent_body
from campaigns.models import Agent, CallingNumber, Campaign, CampaignType, Platform
from campaigns.actions.tenancy import do_upsert_organisation, do_upsert_workspace
from dialer.lifecycle import OPEN_CAMPAIGN_STATUSES

DEMO_PROMPT = "You are calling ${name} to confirm their appointment on ${date}. Be brief and friendly."
DEMO_CAMPAIGN = "Demo: appointment reminders"
DEMO_CONTACTS = 300
# Ofcom's range for drama (020 7946 0000–0999): real-looking London numbers that reach nobody.
DEMO_NUMBER_BASE = 442079460000
FIRST_NAMES = ["Ada", "Grace", "Alan", "Katherine", "Tim", "Margaret", "Linus", "Barbara", "Ken", "Frances"]
# (weight, per-attempt outcomes) for scripted contacts; retried outcomes get a further attempt.
SCRIPTS = [
    (40, ["connected"]),
    (12, ["no-answer", "connected"]),
    (8, ["busy", "no-answer", "connected"]),
    (8, ["voicemail", "connected"]),
    (6, ["rescheduled"]),
    (6, ["callback", "connected"]),
    (5, ["silent"]),
    (5, ["opt-out"]),
    (5, ["failed", "failed", "failed"]),
]
UNSCRIPTED_SHARE = 0.15
RUNTIMES_CAMPAIGN = "Demo: agents on every runtime"
# One agent per runtime; the platforms' ids are made up (their calls go to the simulated carrier).
DEMO_RUNTIMES = {
    "Stream agent": {"kind": "stream", "url": "wss://agent.invalid/media"},
    "Vapi agent": {"kind": "vapi", "assistantId": "demo-assistant", "phoneNumberId": "demo-phone-number"},
    "Retell agent": {"kind": "retell", "agentId": "agent_demo"},
    "ElevenLabs agent": {"kind": "elevenlabs", "agentId": "agent_demo", "phoneNumberId": "phnum_demo"},
}
RUNTIME_TASKS_PER_AGENT = 5


def demo_csv(count, rng):
    """A contacts CSV: phone, name, date and `_sim` (empty for the unscripted share)."""
    weights, scripts = zip(*SCRIPTS)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["phone", "name", "date", "_sim"])
    for index in range(count):
        script = ""
        if rng.random() >= UNSCRIPTED_SHARE:
            script = json.dumps([_attempt(outcome, rng) for outcome in rng.choices(scripts, weights=weights)[0]])
        day = 1 + index % 28
        writer.writerow([f"+{DEMO_NUMBER_BASE + index}", rng.choice(FIRST_NAMES), f"2030-06-{day:02d}", script])
    return io.BytesIO(out.getvalue().encode())


def _attempt(outcome, rng):
    entry = {"outcome": outcome, "ring_ms": rng.randint(1_000, 4_000), "talk_ms": rng.randint(3_000, 12_000)}
    if outcome == "callback":
        entry["callback_in_ms"] = 60_000
    if outcome == "rescheduled":
        entry["new_date"] = "2030-07-01"
    return entry


class Command(BaseCommand):
    help = ("Create the admin login, a demo organisation, workspace, agent and calling number, and a batch "
            "campaign of simulated contacts that starts dialing at once.")

    def add_arguments(self, parser):
        parser.add_argument("--contacts", type=int, default=DEMO_CONTACTS)

    def handle(self, *args, contacts, **options):
        username = os.environ.get("ADMIN_USERNAME", "admin")
        password = os.environ.get("ADMIN_PASSWORD", "admin")
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            User.objects.create_superuser(username=username, email="", password=password)
        organisation = do_upsert_organisation("Demo", 20)
        workspace = do_upsert_workspace(organisation, "Demo workspace", 10, "soft")
        agent, _ = Agent.objects.get_or_create(workspace=workspace, name="Appointment reminder",
                                               defaults={"prompt": DEMO_PROMPT, "outcomes": ["rescheduled"]})
        number, _ = CallingNumber.objects.get_or_create(workspace=workspace, number="+14155550100")
        campaign = self._demo_campaign(workspace, agent, number, contacts)
        self._runtime_agents_campaign(workspace, number)
        base = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
        self.stdout.write(self.style.SUCCESS(
            f"Demo campaign “{campaign.name}” ({campaign.tasks.count()} contacts, {campaign.status}): "
            f"{base}/admin/campaigns/campaign/{campaign.id}/change/"))
        self.stdout.write(self.style.SUCCESS(f"Admin: {base}/admin/  login: {username} / "
                                             f"{password if user is None else '(unchanged)'}"))

    def _demo_campaign(self, workspace, agent, number, contacts):
        """The open demo campaign, or a new one (with its contacts) when none is open."""
        campaign = (Campaign.objects.filter(workspace=workspace, name__startswith=DEMO_CAMPAIGN,
                                            status__in=OPEN_CAMPAIGN_STATUSES).order_by("-created_at").first())
        if campaign is not None:
            return campaign
        previous = Campaign.objects.filter(workspace=workspace, name__startswith=DEMO_CAMPAIGN).count()
        name = DEMO_CAMPAIGN if not previous else f"{DEMO_CAMPAIGN} #{previous + 1}"
        fields = validate_campaign_body(workspace, {
            "type": CampaignType.BATCH, "name": name, "agent": agent.id, "from": number.number, "priority": "normal",
            "timezone": "Europe/London", "maxRetries": 2, "retryInterval": 60_000,
            "retryOutcomes": ["voicemail"], "slots": 8, "slotMode": "soft",
        })
        campaign = do_create_campaign(workspace, fields)
        report = do_import_contacts(campaign, demo_csv(contacts, random.Random(campaign.id)),
                                    filename=f"demo-{timezone.now():%Y%m%d-%H%M}.csv")
        self.stdout.write(f"Imported {report.rows_imported} demo contacts ({report.error_count} errors).")
        return campaign

    def _runtime_agents_campaign(self, workspace, number):
        """An agent on each runtime, simulated integrations for the platforms, and (once) a realtime
        campaign whose tasks go to each agent in turn."""
        for platform in Platform.values:
            if workspace_integration(workspace, platform) is None:
                do_set_integration(workspace, platform, validate_integration_body({"simulate": True}))
        agents = []
        for name, runtime in DEMO_RUNTIMES.items():
            agent = Agent.objects.filter(workspace=workspace, name=name).first()
            if agent is None:
                agent = do_create_agent(workspace, validate_agent_body(
                    {"name": name, "prompt": DEMO_PROMPT, "runtime": runtime}, workspace))
            agents.append(agent)
        if Campaign.objects.filter(workspace=workspace, name=RUNTIMES_CAMPAIGN).exists():
            return
        campaign = do_create_campaign(workspace, validate_campaign_body(workspace, {
            "type": CampaignType.REALTIME, "name": RUNTIMES_CAMPAIGN, "agent": agents[0].id, "from": number.number,
            "timezone": "Europe/London", "maxRetries": 1, "retryInterval": 60_000, "slots": 4, "slotMode": "soft"}))
        rng = random.Random(campaign.id)
        outcomes = ["connected", "no-answer", "voicemail", "busy", "callback"]
        bodies = [{"campaign": str(campaign.id), "agent": str(agent.id),
                   "phone": f"+{DEMO_NUMBER_BASE + 900 + index * RUNTIME_TASKS_PER_AGENT + n}",
                   "context": {"name": rng.choice(FIRST_NAMES), "date": "2030-06-15",
                               "_sim": json.dumps([_attempt(rng.choice(outcomes), rng), _attempt("connected", rng)])}}
                  for index, agent in enumerate(agents) for n in range(RUNTIME_TASKS_PER_AGENT)]
        do_create_tasks(workspace, bodies)
        self.stdout.write(f"Realtime campaign “{RUNTIMES_CAMPAIGN}”: {len(bodies)} tasks over agents on "
                          f"{', '.join(DEMO_RUNTIMES)}.")
