"""Models as the API's camelCase JSON: ids as strings, instants ISO 8601 UTC with `Z`."""
import datetime as dt

from campaigns.models import CampaignStatus, TaskStatus
from campaigns.actions.realtime import epoch_ms, sample_task_body
from dialer.lifecycle import PENDING_TASK_STATUSES
from dialer.windows import time_to_hhmm


def iso(instant):
    if instant is None:
        return None
    return instant.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def string_id(value):
    return None if value is None else str(value)


def campaign_json(campaign, task_counts=None, call_outcomes=None, control=None, counted=True):
    """A campaign with its settings (in the shape POST/PATCH accept), its counts (left out unless
    `counted`), and the progress of a control whose tasks are still being changed
    (`campaigns.actions.control_jobs.running_controls`)."""
    counts = {status: 0 for status in TaskStatus.values}
    counts.update(task_counts or {})
    body = {
        "id": str(campaign.id),
        "type": campaign.type,
        "name": campaign.name,
        "status": campaign.status,
        "agent": str(campaign.agent_id),
        "from": campaign.calling_number.number if campaign.calling_number_id else None,
        "priority": campaign.priority,
        "timezone": campaign.timezone,
        "startAt": iso(campaign.start_at),
        "endAt": iso(campaign.end_at),
        "callingHours": {"start": time_to_hhmm(campaign.calling_start), "end": time_to_hhmm(campaign.calling_end)},
        "callingDays": list(campaign.calling_days),
        "maxRetries": campaign.max_retries,
        "retryInterval": campaign.retry_interval_ms,
        "retryOutcomes": list(campaign.retry_outcomes),
        "slots": campaign.slots,
        "slotMode": campaign.slot_mode,
        "contactsUploadedAt": iso(campaign.contacts_uploaded_at),
        "createdAt": iso(campaign.created_at),
        "updatedAt": iso(campaign.updated_at),
        "completedAt": iso(campaign.completed_at),
        "taskCounts": counts,
        "callOutcomes": dict(sorted((call_outcomes or {}).items())),
        "control": control,
        "pausedReason": (campaign.paused_reason or None) if campaign.status == CampaignStatus.PAUSED else None,
    }
    if not counted:
        del body["taskCounts"], body["callOutcomes"]
    if campaign.type == "realtime":
        body["sampleTask"] = sample_task_body(campaign)
    return body


def task_json(task):
    """A task as listed, and as returned by POST /tasks."""
    return {
        "id": str(task.id),
        "campaign": str(task.campaign_id),
        "phone": task.phone,
        "status": task.status,
        "attemptsMade": task.attempts_made,
        "nextAttemptAt": iso(task.next_attempt_at),
        "callbackAt": iso(task.callback_at),
        "lastOutcome": task.last_outcome or None,
        "finalOutcome": task.final_outcome or None,
        "completionReason": task.completion_reason or None,
        # A finished task keeps the column as it was; only a pending one is still held.
        "heldBy": (task.held_by or None) if task.status in PENDING_TASK_STATUSES else None,
        "context": task.context,
        "createdAt": iso(task.created_at),
        "completedAt": iso(task.completed_at),
    }


def callee_timezone_json(task):
    """The zones the workspace's legal hours are judged in for the task, and why (decided at its
    creation; the campaign's fallback follows the campaign's timezone)."""
    zones = list(task.callee_timezones) or [task.timezone or task.campaign.timezone]
    return {"zones": zones, "source": task.callee_timezone_source}


def resolved_config_json(config, calling_numbers):
    """A resolved TaskConfig in the Create Task body's own shape (`calling_numbers`: id → number)."""
    return {
        "from": calling_numbers.get(config.calling_number_id),
        "agent": string_id(config.agent_id),
        "start": time_to_hhmm(config.window.start),
        "end": time_to_hhmm(config.window.end),
        "timezone": config.window.timezone,
        "days": sorted(config.window.days),
        "startAfter": epoch_ms(config.start_after),
        "endAfter": epoch_ms(config.end_at),
        "retries": config.max_attempts,
        "intervals": list(config.intervals_ms),
        "priorities": list(config.priorities) if config.priorities is not None else None,
        "retryOutcomes": sorted(config.retry_outcomes),
    }


def call_summary_json(call):
    return {
        "id": str(call.id),
        "attempt": call.attempt,
        "status": call.status,
        "outcome": call.outcome or None,
        "startedAt": iso(call.placed_at),
        "endedAt": iso(call.ended_at),
    }


def call_json(call):
    """A call in full: who, from/to, every timestamp, carrier, cost, recording, transcript, analysis."""
    return {
        **call_summary_json(call),
        "task": str(call.task_id),
        "campaign": str(call.campaign_id),
        "agent": string_id(call.agent_id),
        "from": call.from_number,
        "to": call.to_number,
        "carrier": call.carrier,
        "carrierCallId": call.carrier_call_id,
        "carrierStatus": call.carrier_status or None,
        "isCallback": call.is_callback,
        "admittedAt": iso(call.created_at),
        "ringingAt": iso(call.ringing_at),
        "answeredAt": iso(call.answered_at),
        "durationSeconds": call.duration_seconds,
        "cost": None if call.cost is None else str(call.cost),
        "recordingUrl": call.recording_url or None,
        "transcript": call.transcript,
        "analysis": call.analysis,
        "callbackAt": iso(call.callback_at),
    }


def agent_json(agent):
    return {"id": str(agent.id), "name": agent.name, "prompt": agent.prompt, "outcomes": list(agent.outcomes),
            "runtime": agent.runtime or {"kind": "stream"}, "createdAt": iso(agent.created_at)}


def integration_json(integration):
    """A platform's credentials as the API shows them: whether each secret is set, never the secret."""
    return {"platform": integration.platform, "hasApiKey": bool(integration.api_key_encrypted),
            "hasWebhookSecret": bool(integration.webhook_secret_encrypted), "baseUrl": integration.base_url,
            "simulate": integration.simulate, "concurrency": integration.concurrency,
            "updatedAt": iso(integration.updated_at)}


def number_json(number):
    return {"id": str(number.id), "number": number.number, "carrier": number.carrier,
            "callsPerSecond": number.calls_per_second, "createdAt": iso(number.created_at)}


def control_record_json(record):
    """One entry of a campaign's audit trail (`campaigns.actions.audit`)."""
    return {"id": str(record.id), "action": record.action, "task": string_id(record.task_id),
            "source": record.source,
            "actor": {"kind": record.actor_kind, "name": record.actor_name, "prefix": record.actor_prefix or None},
            "tasksChanged": record.tasks_changed, "fields": record.details.get("fields", []),
            "createdAt": iso(record.created_at)}


def workspace_json(workspace):
    return {"id": str(workspace.id), "name": workspace.name, "organisation": str(workspace.organisation_id),
            "slots": workspace.slots, "slotMode": workspace.slot_mode, "webhookUrl": workspace.webhook_url,
            "createdAt": iso(workspace.created_at)}


def dnc_json(entry):
    return {"phone": entry.phone, "reason": entry.reason, "createdAt": iso(entry.created_at)}


def contact_import_json(contact_import):
    return {
        "id": str(contact_import.id),
        "campaign": str(contact_import.campaign_id),
        "filename": contact_import.filename,
        "rowsTotal": contact_import.rows_total,
        "rowsImported": contact_import.rows_imported,
        "duplicates": contact_import.duplicates,
        "errorCount": contact_import.error_count,
        "errors": contact_import.errors,
        "skipInvalid": contact_import.skip_invalid,
        "createdAt": iso(contact_import.created_at),
    }
