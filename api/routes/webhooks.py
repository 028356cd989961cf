"""Webhooks: the organization's default URL and signing secret, and the delivery log (with retry)."""

from __future__ import annotations

import json
from typing import Any

from api import errors
from api.keys import POOL
from api.models.webhooks import (
    DeliveryOut,
    DeliveryQuery,
    WebhookSecretOut,
    WebhookSettingsOut,
    WebhookSettingsUpdate,
)
from api.routing import Ctx, Result
from store import webhooks as store

from . import registry


def _settings_out(record: dict[str, Any]) -> dict[str, Any]:
    return WebhookSettingsOut.model_validate({
        "webhook_url": record["webhook_url"], "webhook_events": record["webhook_events"],
        "secret_hint": "whsec_…" + record["webhook_secret"][-4:], "secret_rotated_at": record["webhook_secret_rotated_at"],
    }).model_dump(mode="json")


def _delivery_out(record: dict[str, Any], attempts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    data = {**record, "delivery_id": record["id"], "payload": json.loads(record["body"]),
            "next_attempt_at": record["next_attempt_at"] if record["status"] == "pending" else None,
            "attempt_log": attempts}
    return DeliveryOut.model_validate(data).model_dump(mode="json")


@registry.route("GET", "/webhook-settings", summary="The organization's default webhook and signing settings",
                tag="Webhooks", response=WebhookSettingsOut)
async def get_webhook_settings(ctx: Ctx) -> Result:
    record = await store.settings(ctx.app[POOL], ctx.org_id)
    assert record is not None
    return Result(_settings_out(record))


@registry.route("PATCH", "/webhook-settings", summary="Set the organization's default webhook URL and events",
                tag="Webhooks", body=WebhookSettingsUpdate, response=WebhookSettingsOut)
async def update_webhook_settings(ctx: Ctx) -> Result:
    body: WebhookSettingsUpdate = ctx.body
    changes = body.model_dump(include=set(body.model_fields_set))
    record = await store.update_settings(ctx.app[POOL], ctx.org_id, changes)
    assert record is not None
    return Result(_settings_out(record))


@registry.route("POST", "/webhook-secret/rotate", summary="Replace the webhook signing secret (shown only here)",
                tag="Webhooks", response=WebhookSecretOut)
async def rotate_webhook_secret(ctx: Ctx) -> Result:
    secret = await store.rotate_secret(ctx.app[POOL], ctx.org_id)
    record = await store.settings(ctx.app[POOL], ctx.org_id)
    assert record is not None
    return Result(WebhookSecretOut(webhook_secret=secret, rotated_at=record["webhook_secret_rotated_at"])
                  .model_dump(mode="json"))


@registry.route("GET", "/webhook-deliveries", summary="Webhook deliveries (newest first)", tag="Webhooks",
                query=DeliveryQuery, response=DeliveryOut, many=True)
async def list_deliveries(ctx: Ctx) -> Result:
    q: DeliveryQuery = ctx.query
    items, total = await store.list_deliveries(ctx.app[POOL], ctx.org_id, q.model_dump(exclude={"limit", "offset"}),
                                               q.limit, q.offset)
    return Result([_delivery_out(r) for r in items], total=total, limit=q.limit, offset=q.offset)


@registry.route("GET", "/webhook-deliveries/{delivery_id}", summary="A delivery with every attempt",
                tag="Webhooks", response=DeliveryOut, errors=(404,))
async def get_delivery(ctx: Ctx) -> Result:
    record = await store.get_delivery(ctx.app[POOL], ctx.org_id, ctx.ids["delivery_id"])
    if record is None:
        raise errors.NotFound("No webhook delivery with that id.")
    return Result(_delivery_out(record, await store.attempts(ctx.app[POOL], record["id"])))


@registry.route("POST", "/webhook-deliveries/{delivery_id}/retry", summary="Send a delivery again now",
                tag="Webhooks", response=DeliveryOut, errors=(404, 409))
async def retry_delivery(ctx: Ctx) -> Result:
    outcome = await store.retry(ctx.app[POOL], ctx.org_id, ctx.ids["delivery_id"])
    if outcome == "missing":
        raise errors.NotFound("No webhook delivery with that id.")
    if outcome == "busy":
        raise errors.Conflict("The delivery is being sent right now; look again in a few seconds.")
    record = await store.get_delivery(ctx.app[POOL], ctx.org_id, ctx.ids["delivery_id"])
    assert record is not None
    return Result(_delivery_out(record))
