"""Installing the notification automations (``deployments/notifications.yaml``) in Prefect.

Each channel is a notification block saved under a fixed name (``modelrelease-webhook``, a
Custom Webhook posting Slack's ``{"text": ...}``; ``modelrelease-email``, an
``SmtpEmail``); each automation of the file whose ``channel`` was given is created with
that block's id, replacing any automation of the same name, so installing again updates
rather than duplicates. Channels not given are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from prefect.exceptions import PrefectException
from pydantic import ValidationError

from modelrelease.adapters.email_block import SmtpEmail
from modelrelease.errors import InvalidInput, PrefectError

WEBHOOK_BLOCK, EMAIL_BLOCK = "modelrelease-webhook", "modelrelease-email"
SLACK_PAYLOAD = {"text": "*{{subject}}*\n{{body}}"}
"""What the webhook posts: Slack's incoming-webhook payload (Mattermost and others take it)."""


@dataclass(frozen=True)
class Installed:
    """One automation as installed: its name, id, channel and the block it sends through."""

    name: str
    id: str
    channel: str
    block: str


def automations_of(path: Path) -> list[dict[str, Any]]:
    """The automation documents of ``path``, each with its ``channel``.

    Raises:
        InvalidInput: the file is missing, not YAML, or an automation lacks a channel
            (``webhook`` or ``email``) or is not one Prefect would take.
    """
    from prefect.events.schemas.automations import AutomationCore

    try:
        documents = (yaml.safe_load(path.read_text()) or {}).get("automations")
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"notifications {path}: {exc}") from exc
    if not isinstance(documents, list) or not documents:
        raise InvalidInput(f"notifications {path}: no `automations:` list")
    for document in documents:
        name = document.get("name", "?")
        if document.get("channel") not in ("webhook", "email"):
            raise InvalidInput(f"notifications {path}: automation {name}: `channel` must be "
                               f"webhook or email, not {document.get('channel')!r}")
        probe = {**document, "actions": [
            {**action, "block_document_id": "00000000-0000-0000-0000-000000000000"}
            for action in document.get("actions") or []]}
        try:
            AutomationCore.model_validate(probe)
        except ValidationError as exc:
            raise InvalidInput(f"notifications {path}: automation {name}: "
                               f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
    return list(documents)


def install(path: Path, webhook_url: str | None, email: SmtpEmail | None
            ) -> list[Installed]:
    """Save the given channels' blocks, then (re)create their automations from ``path``.

    Raises:
        InvalidInput: no channel given, or ``path`` is not a valid automations file.
        PrefectError: the Prefect server refused or could not be reached.
    """
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore

    if webhook_url is None and email is None:
        raise InvalidInput("notifications install: give --webhook-url, or --email-to with "
                           "--smtp-host and --email-from (or both)")
    documents = automations_of(path)
    installed: list[Installed] = []
    try:
        blocks: dict[str, tuple[str, Any]] = {}
        if webhook_url is not None:
            webhook = CustomWebhookNotificationBlock(name="modelrelease", url=webhook_url,
                                                     json_data=SLACK_PAYLOAD)
            blocks["webhook"] = (WEBHOOK_BLOCK, webhook.save(WEBHOOK_BLOCK, overwrite=True))
        if email is not None:
            blocks["email"] = (EMAIL_BLOCK, email.save(EMAIL_BLOCK, overwrite=True))
        with get_client(sync_client=True) as client:
            for document in documents:
                channel = document["channel"]
                if channel not in blocks:
                    continue
                block, block_id = blocks[channel]
                automation = AutomationCore.model_validate({**document, "actions": [
                    {**action, "block_document_id": str(block_id)}
                    for action in document["actions"]]})
                for old in client.read_automations_by_name(automation.name):
                    client.delete_automation(old.id)
                created = client.create_automation(automation)
                installed.append(Installed(automation.name, str(created), channel, block))
    except (httpx.HTTPError, PrefectException) as exc:
        raise PrefectError(f"notifications install: {exc}", retriable=isinstance(
            exc, httpx.TransportError)) from exc
    return installed
