"""The dispatcher's compliance re-check: the facts one pass needs, gathered once, and the rules applied.

Per pass: each workspace's policy is read once (it rides on the campaign rows the pass locks),
its candidates' legal windows are computed once per (zones, country) and their next common
opening once per calling window, and the frequency cap's recent calls for every candidate number
come from one query (`call_number_recent`: to_number, created_at). A pass whose workspaces have
no legal hours and no cap does none of this.
"""
import json
from collections import defaultdict

from django.db import connection

from campaigns.phone_numbers import region_code
from dialer import compliance, eligibility

# A number's calls in its workspace since `since`, for the candidates whose workspace has a cap.
RECENT_CALLS_SQL = """
SELECT k.workspace_id, k.phone, array_agg(c.created_at)
FROM unnest(%s::text[], %s::bigint[], %s::timestamptz[]) AS k(phone, workspace_id, since)
JOIN telephony_call c ON c.to_number = k.phone AND c.created_at > k.since
JOIN campaigns_campaign cc ON cc.id = c.campaign_id AND cc.workspace_id = k.workspace_id
GROUP BY k.workspace_id, k.phone
"""


class ComplianceChecks:
    """Built once per pass from its candidates and their campaigns (`DialableCampaign` rows with
    `workspace_id` and `workspace_compliance`)."""

    def __init__(self, tasks, campaigns, now):
        self.now = now
        self.policies = {}
        for campaign in campaigns.values():
            if campaign.workspace_id not in self.policies:
                # A raw cursor hands jsonb over as its text.
                stored = campaign.workspace_compliance
                self.policies[campaign.workspace_id] = (compliance.NO_POLICY if stored in ("{}", None) else
                                                        compliance.policy_from_json(json.loads(stored)))
        self.active = any(policy.governs_dispatch for policy in self.policies.values())
        self.windows = {}
        self.open = {}
        self.openings = {}
        self.recent = defaultdict(list)
        if self.active:
            self._read_recent_calls(tasks, campaigns)

    def _read_recent_calls(self, tasks, campaigns):
        keys = set()
        for task in tasks:
            workspace_id = campaigns[task.campaign_id].workspace_id
            if self.policies[workspace_id].has_cap:
                keys.add((task.phone, workspace_id))
        if not keys:
            return
        phones, workspaces = zip(*keys)
        since = [self.now - self.policies[workspace_id].cap_window for workspace_id in workspaces]
        with connection.cursor() as cursor:
            cursor.execute(RECENT_CALLS_SQL, [list(phones), list(workspaces), since])
            for workspace_id, phone, created in cursor.fetchall():
                self.recent[workspace_id, phone] = created

    def judge(self, task, campaign, config):
        """`compliance.judge` for a candidate the ordinary re-check would dial."""
        policy = self.policies[campaign.workspace_id]
        if not policy.governs_dispatch:
            return eligibility.Recheck(eligibility.DIAL)
        legal, legal_open, key = (), True, None
        if policy.has_legal_hours:
            # No zones decided: the task's own timezone (tasks stored before zones were), else the campaign's.
            zones = tuple(task.callee_timezones) or (config.window.timezone,)
            country = region_code(task.phone) if policy.country_hours else ""
            key = (campaign.workspace_id, zones, country)
            legal = self.windows.get(key)
            if legal is None:
                legal = self.windows[key] = compliance.legal_windows(policy, zones, country)
                self.open[key] = compliance.all_open(legal, self.now)
            legal_open = self.open[key]
        return compliance.judge(config.window, legal, config.end_at, self.recent.get((campaign.workspace_id, task.phone), ()),
                                policy, self.now, legal_open=legal_open, opening=lambda: self._opening(config.window, key))

    def _opening(self, own_window, key):
        """The first instant the candidate's own and legal windows are all open, once per pair."""
        if (own_window, key) not in self.openings:
            self.openings[own_window, key] = compliance.next_common_opening((own_window, *self.windows[key]), self.now)
        return self.openings[own_window, key]
