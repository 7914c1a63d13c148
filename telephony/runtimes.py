"""Which provider places a call: the agent's runtime, the workspace's platform credentials, the
calling number's carrier.

- A stream agent (no runtime, or `{"kind": "stream", "url"}`): the calling number's carrier,
  which connects the call's audio to the agent's own media stream (the deployment's
  AGENT_MEDIA_STREAM_URL when the agent names none).
- A platform agent (vapi, retell, elevenlabs): that platform places the call with the workspace's
  credentials, or the simulated carrier when the workspace's integration says `simulate`.
"""
from dataclasses import dataclass, field

from campaigns.encryption import EncryptionUnavailable
from campaigns.models import Integration, Platform, RuntimeKind
from telephony.simulator import NAME as SIMULATED


@dataclass(frozen=True)
class Route:
    """The provider's name and what it needs beyond the request (runtime ids, credentials). Credentials
    are read here, in the dial job's thread, so the placing threads touch no database."""

    carrier: str
    extra: dict = field(default_factory=dict)


def platforms_with_credentials():
    """The platforms some workspace holds credentials for that place real calls (not `simulate`)."""
    return set(Integration.objects.filter(simulate=False).values_list("platform", flat=True).distinct())


def placing_routes(agents):
    """{key: Route} for {key: (workspace id, agent or None, calling number's carrier)}."""
    platform_workspaces = {(workspace_id, agent.runtime_kind) for workspace_id, agent, _ in agents.values()
                           if agent is not None and agent.runtime_kind in Platform.values}
    integrations = {}
    if platform_workspaces:
        for integration in Integration.objects.filter(workspace_id__in={w for w, _ in platform_workspaces}):
            integrations[(integration.workspace_id, integration.platform)] = integration
    return {key: _route(workspace_id, agent, carrier, integrations)
            for key, (workspace_id, agent, carrier) in agents.items()}


def _route(workspace_id, agent, carrier, integrations):
    kind = agent.runtime_kind if agent is not None else RuntimeKind.STREAM
    if kind == RuntimeKind.STREAM:
        url = agent.runtime.get("url") if agent is not None else None
        return Route(carrier, {"stream_url": url} if url else {})
    integration = integrations.get((workspace_id, kind))
    runtime = dict(agent.runtime)
    if integration is None:
        return Route(kind, {"runtime": runtime, "unusable": f"the workspace has no {kind} credentials"})
    if integration.simulate:
        return Route(SIMULATED, {"runtime": runtime})
    try:
        api_key = integration.api_key
    except EncryptionUnavailable as exc:
        return Route(kind, {"runtime": runtime, "unusable": str(exc)})
    return Route(kind, {"runtime": runtime, "api_key": api_key, "base_url": integration.base_url})
