"""A voice-AI platform's concurrency as a slot limit: a workspace whose integration sets
`concurrency` never has more live calls of agents on that platform than it allows.

The dispatcher holds the organisation's lock while it admits, and a workspace belongs to one
organisation, so counting the platform's live calls in PostgreSQL at the start of the admission
and admitting within the room left (`dialer.slot_model.within_platform_limits`) cannot overshoot.
A call counts from its admission (before it is placed) to its end, by its agent's runtime.
A held candidate stays queued; the end of one of the platform's calls nudges the dispatcher.
"""
from django.db import connection

from config.prepared import PreparedStatement

from dialer.slot_model import within_platform_limits
from telephony.models import LIVE_CALL_STATUSES

# Live calls per capped (workspace, platform) of the organisation; one query, only campaigns'
# workspaces that set a limit are read. `call_live` (organisation, status) serves the calls.
ROOM = PreparedStatement("""
SELECT i.workspace_id, i.platform, i.concurrency - COUNT(c.id) AS free
FROM campaigns_integration i
JOIN campaigns_workspace w ON w.id = i.workspace_id
LEFT JOIN campaigns_agent a ON a.workspace_id = i.workspace_id AND a.runtime->>'kind' = i.platform
LEFT JOIN telephony_call c ON c.agent_id = a.id AND c.organisation_id = w.organisation_id
    AND c.status = ANY(%s::text[])
WHERE w.organisation_id = %s::bigint AND i.concurrency IS NOT NULL
GROUP BY i.workspace_id, i.platform, i.concurrency
""")

AGENT_PLATFORMS_SQL = """
SELECT id, workspace_id, runtime->>'kind' FROM campaigns_agent WHERE id = ANY(%s) AND runtime->>'kind' = ANY(%s)
"""


def platform_room(organisation_id):
    """{(workspace id, platform): calls it may still start} for the organisation's capped platforms."""
    with connection.cursor() as cursor:
        ROOM.execute(cursor, [list(LIVE_CALL_STATUSES), organisation_id])
        return {(workspace_id, platform): free for workspace_id, platform, free in cursor.fetchall()}


def keep_within_platform_limits(organisation_id, candidates, agent_ids):
    """The candidates (in order) that fit their agent's platform concurrency.

    `agent_ids[i]` is the agent that would place `candidates[i]`. Costs nothing without candidates,
    one query when the organisation sets no platform limit, two when it does.
    """
    if not candidates:
        return candidates
    room = platform_room(organisation_id)
    if not room:
        return candidates
    with connection.cursor() as cursor:
        cursor.execute(AGENT_PLATFORMS_SQL, [list(set(agent_ids)), list({platform for _, platform in room})])
        platforms = {agent_id: (workspace_id, platform) for agent_id, workspace_id, platform in cursor.fetchall()}
    kept = within_platform_limits([platforms.get(agent_id) for agent_id in agent_ids], room)
    return [candidate for candidate, keep in zip(candidates, kept) if keep]
