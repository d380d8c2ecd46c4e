"""The Bot API methods the fake implements, one function each, registered with @api.

Split out of fake_telegram.py for size only: the functions are FakeTelegram's behaviour
and use its underscore helpers (chat lookup, formatting, posting, editing) freely.
Telegram's wording is kept verbatim in every error, since bots match on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .state import (
    ALL_UPDATE_TYPES,
    QUERY_TOO_OLD,
    ApiError,
    Call,
    ChatState,
    JsonDict,
    Params,
    QueuedUpdate,
    WebhookState,
    bad_request,
    commands_key,
)

if TYPE_CHECKING:
    from .fake_telegram import FakeTelegram

DOWNLOAD_LIMIT = 20 * 1024 * 1024  # bots may download files up to 20 MB

MEDIA_FIELDS = {
    "sendPhoto": "photo",
    "sendDocument": "document",
    "sendAudio": "audio",
    "sendVideo": "video",
    "sendAnimation": "animation",
    "sendVoice": "voice",
    "sendVideoNote": "video_note",
    "sendSticker": "sticker",
}
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_TRIVIAL_SETTERS = frozenset(
    {
        "setMyDescription",
        "setMyShortDescription",
        "setMyName",
        "setChatMenuButton",
        "setMyDefaultAdministratorRights",
        "setMessageReaction",
    }
)
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")

Handler = Callable[["FakeTelegram", Params, Call], Awaitable[Any]]
HANDLERS: dict[str, Handler] = {}


def api(name: str) -> Callable[[Handler], Handler]:
    """Register a Bot API method implementation."""

    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn

    return register


@api("getMe")
async def _get_me(tg: FakeTelegram, p: Params, call: Call) -> Any:
    return {
        **tg.bot_user,
        "can_join_groups": True,
        "can_read_all_group_messages": not tg.privacy_mode,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


@api("logOut")
@api("close")
async def _ok(tg: FakeTelegram, p: Params, call: Call) -> Any:
    return True


@api("getUpdates")
async def _get_updates(tg: FakeTelegram, p: Params, call: Call) -> Any:
    if tg.webhook is not None:
        raise ApiError(
            409,
            "Conflict: can't use getUpdates method while webhook is active; "
            "use deleteWebhook to delete the webhook first",
        )
    offset = p.int_("offset", 0) or 0
    limit = min(max(p.int_("limit", 100) or 100, 1), 100)
    timeout = max(p.int_("timeout", 0) or 0, 0)
    if p.has("allowed_updates"):
        allowed = p.json_("allowed_updates")
        if not isinstance(allowed, list):
            raise bad_request("can't parse allowed_updates JSON object")
        tg._allowed_updates = [str(kind) for kind in allowed if kind in ALL_UPDATE_TYPES]
    tg._confirm(offset)
    # Telegram answers an older pending getUpdates with 409 when a newer one arrives.
    tg._poll_generation += 1
    generation = tg._poll_generation
    tg.feed.notify()
    superseded = False

    def ready() -> list[QueuedUpdate] | None:
        nonlocal superseded
        if tg._closing:
            return []
        if tg._poll_generation != generation:
            superseded = True
            return []
        return tg._queue[:limit] or None

    try:
        batch = await tg.feed.wait_for(ready, timeout)
    except TimeoutError:
        batch = []
    if superseded:
        raise ApiError(
            409,
            "Conflict: terminated by other getUpdates request; "
            "make sure that only one bot instance is running",
        )
    for queued in batch:
        queued.deliveries += 1
        if queued.replay:
            tg._queue.remove(queued)  # the duplicate went out; it will not come again
    return [copy.deepcopy(q.update) for q in batch]


@api("setWebhook")
async def _set_webhook(tg: FakeTelegram, p: Params, call: Call) -> Any:
    url = p.str_("url") or ""
    if p.bool_("drop_pending_updates"):
        tg.drop_pending_requests.append(("setWebhook", call.at))
        tg._queue.clear()
    if p.has("allowed_updates"):
        allowed = p.json_("allowed_updates")
        tg._allowed_updates = [str(k) for k in allowed or [] if k in ALL_UPDATE_TYPES]
    if not url:
        tg.webhook = None
        await tg._stop_webhook_task()
        return True
    if not url.startswith(("http://", "https://")):
        # Telegram insists on HTTPS and ports 443/80/88/8443; the fake accepts local HTTP.
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    secret = p.str_("secret_token")
    if secret is not None and not _SECRET_RE.match(secret):
        raise bad_request("secret token contains unallowed characters")
    await tg._stop_webhook_task()
    tg.webhook = WebhookState(
        url=url,
        secret_token=secret,
        max_connections=p.int_("max_connections", 40) or 40,
        set_at=call.at,
    )
    tg._webhook_task = asyncio.create_task(tg._webhook_loop(tg.webhook))
    return True


@api("deleteWebhook")
async def _delete_webhook(tg: FakeTelegram, p: Params, call: Call) -> Any:
    if p.bool_("drop_pending_updates"):
        tg.drop_pending_requests.append(("deleteWebhook", call.at))
        tg._queue.clear()
    tg.webhook = None
    await tg._stop_webhook_task()
    return True


@api("getWebhookInfo")
async def _get_webhook_info(tg: FakeTelegram, p: Params, call: Call) -> Any:
    hook = tg.webhook
    info: JsonDict = {
        "url": hook.url if hook else "",
        "has_custom_certificate": False,
        "pending_update_count": len(tg._queue),
    }
    if hook is not None:
        info["max_connections"] = hook.max_connections
        info["ip_address"] = "127.0.0.1"
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
    if tg._allowed_updates:
        info["allowed_updates"] = list(tg._allowed_updates)
    return info


@api("sendMessage")
async def _send_message(tg: FakeTelegram, p: Params, call: Call) -> Any:
    text, entities = tg._formatted(p, "text", caption=False)
    content: JsonDict = {"text": text}
    if entities:
        content["entities"] = entities
    return tg._bot_post(p, content, source=p.str_("text"))


async def _send_media(tg: FakeTelegram, p: Params, call: Call) -> Any:
    kind = MEDIA_FIELDS[call.method]
    tg._target_chat(p, write=True)  # chat errors win over file errors, as in Telegram
    caption, entities = tg._formatted(p, "caption", caption=True)
    stored = tg._upload(p, kind, kind)
    content: JsonDict = {kind: tg._media_object(kind, stored, p)}
    if caption:
        content["caption"] = caption
    if entities:
        content["caption_entities"] = entities
    return tg._bot_post(p, content, source=p.str_("caption"))


for _method in MEDIA_FIELDS:
    api(_method)(_send_media)


@api("sendLocation")
async def _send_location(tg: FakeTelegram, p: Params, call: Call) -> Any:
    location = {"latitude": p.get("latitude", 0.0), "longitude": p.get("longitude", 0.0)}
    return tg._bot_post(p, {"location": location})


@api("sendContact")
async def _send_contact(tg: FakeTelegram, p: Params, call: Call) -> Any:
    contact = {
        "phone_number": p.str_("phone_number") or "",
        "first_name": p.str_("first_name") or "",
    }
    return tg._bot_post(p, {"contact": contact})


@api("sendMediaGroup")
async def _send_media_group(tg: FakeTelegram, p: Params, call: Call) -> Any:
    media = p.json_("media")
    if not isinstance(media, list) or not 2 <= len(media) <= 10:
        raise bad_request("wrong number of media items (must be 2-10)")
    group_id = str(13_000_000_000_000_000 + call.seq)
    sent = []
    for item in media:
        kind = str(item.get("type", "photo"))
        sub = Params({"media": item.get("media"), "chat_id": p.get("chat_id")}, p.uploads)
        stored = tg._upload(sub, "media", kind)
        content: JsonDict = {kind: tg._media_object(kind, stored, p), "media_group_id": group_id}
        if item.get("caption"):
            content["caption"] = item["caption"]
        sent.append(tg._bot_post(p, content))
    return sent


@api("copyMessage")
@api("forwardMessage")
async def _copy_message(tg: FakeTelegram, p: Params, call: Call) -> Any:
    source_chat = tg._target_chat(Params({"chat_id": p.get("from_chat_id")}), write=False)
    source = source_chat.messages.get(p.int_("message_id") or 0)
    if source is None or source.deleted:
        raise bad_request(
            "message to forward not found"
            if call.method == "forwardMessage"
            else "message to copy not found"
        )
    keep = (
        "text",
        "entities",
        "caption",
        "caption_entities",
        *MEDIA_FIELDS.values(),
        "contact",
        "location",
    )
    content = {k: copy.deepcopy(v) for k, v in source.data.items() if k in keep}
    if call.method == "forwardMessage":
        origin_user = source.data.get("from") or tg.bot_user
        content["forward_origin"] = {
            "type": "user",
            "date": source.data["date"],
            "sender_user": origin_user,
        }
        return tg._bot_post(p, content)
    if p.has("caption"):
        caption, entities = tg._formatted(p, "caption", caption=True)
        content["caption"] = caption
        content.pop("caption_entities", None)
        if entities:
            content["caption_entities"] = entities
    message = tg._bot_post(p, content)
    return {"message_id": message["message_id"]}


@api("editMessageText")
async def _edit_message_text(tg: FakeTelegram, p: Params, call: Call) -> Any:
    chat, stored = tg._message_to_edit(p)
    if "text" not in stored.data:
        raise bad_request("there is no text in the message to edit")
    text, entities = tg._formatted(p, "text", caption=False)
    # Editing without reply_markup removes the inline keyboard, as in Telegram.
    markup = tg._reply_markup(p, inline_only=True)
    new = copy.deepcopy(stored.data)
    new["text"] = text
    new.pop("entities", None)
    new.pop("reply_markup", None)
    new.pop("edit_date", None)
    if entities:
        new["entities"] = entities
    if markup is not None:
        new["reply_markup"] = markup
    stored.source = p.str_("text")
    return tg._apply_edit(chat, stored, new)


@api("editMessageCaption")
async def _edit_message_caption(tg: FakeTelegram, p: Params, call: Call) -> Any:
    chat, stored = tg._message_to_edit(p)
    if "text" in stored.data:
        raise bad_request("there is no caption in the message to edit")
    caption, entities = tg._formatted(p, "caption", caption=True)
    markup = tg._reply_markup(p, inline_only=True)
    new = copy.deepcopy(stored.data)
    for key in ("caption", "caption_entities", "reply_markup", "edit_date"):
        new.pop(key, None)
    if caption:
        new["caption"] = caption
    if entities:
        new["caption_entities"] = entities
    if markup is not None:
        new["reply_markup"] = markup
    return tg._apply_edit(chat, stored, new)


@api("editMessageReplyMarkup")
async def _edit_message_reply_markup(tg: FakeTelegram, p: Params, call: Call) -> Any:
    chat, stored = tg._message_to_edit(p)
    markup = tg._reply_markup(p, inline_only=True)
    new = copy.deepcopy(stored.data)
    new.pop("reply_markup", None)
    new.pop("edit_date", None)
    if markup is not None:
        new["reply_markup"] = markup
    return tg._apply_edit(chat, stored, new)


@api("deleteMessage")
async def _delete_message(tg: FakeTelegram, p: Params, call: Call) -> Any:
    chat = tg._target_chat(p, write=False)
    _delete_one(tg, chat, p.int_("message_id") or 0)
    return True


@api("deleteMessages")
async def _delete_messages(tg: FakeTelegram, p: Params, call: Call) -> Any:
    chat = tg._target_chat(p, write=False)
    ids = p.json_("message_ids") or []
    deleted = 0
    for message_id in ids:
        with contextlib.suppress(ApiError):
            _delete_one(tg, chat, int(message_id))
            deleted += 1
    if not deleted:
        raise bad_request("message to delete not found")
    return True


def _delete_one(tg: FakeTelegram, chat: ChatState, message_id: int) -> None:
    stored = chat.messages.get(message_id)
    if stored is None or stored.deleted:
        raise bad_request("message to delete not found")
    if chat.type != "private" and not stored.from_bot and chat.bot_status != "administrator":
        raise bad_request("message can't be deleted")
    stored.deleted = True
    if message_id in chat.pinned:
        chat.pinned.remove(message_id)
    tg._record_event(chat.id, "delete", stored)


@api("answerCallbackQuery")
async def _answer_callback_query(tg: FakeTelegram, p: Params, call: Call) -> Any:
    query = tg.callback_queries.get(p.str_("callback_query_id") or "")
    if (
        query is None
        or query.answered_at is not None
        or call.at - query.created_at > tg.callback_query_ttl
    ):
        raise bad_request(QUERY_TOO_OLD)
    query.answered_at = call.at
    query.answer = {
        key: p.get(key) for key in ("text", "show_alert", "url", "cache_time") if p.has(key)
    }
    chat = tg.chat(query.chat_id)
    tg._record_event(chat.id, "answer", chat.messages.get(query.message_id), query_id=query.id)
    return True


@api("getFile")
async def _get_file(tg: FakeTelegram, p: Params, call: Call) -> Any:
    stored = tg.files.get(p.str_("file_id") or "")
    if stored is None:
        raise bad_request("wrong file_id or the file is temporarily unavailable")
    if len(stored.data) > DOWNLOAD_LIMIT:
        raise bad_request("file is too big")
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": len(stored.data),
        "file_path": stored.file_path,
    }


@api("setMyCommands")
async def _set_my_commands(tg: FakeTelegram, p: Params, call: Call) -> Any:
    commands = p.json_("commands")
    if not isinstance(commands, list):
        raise bad_request("can't parse commands JSON object")
    if len(commands) > 100:
        raise bad_request("BOT_COMMANDS_TOO_MUCH")
    for command in commands:
        name = str(command.get("command", "")).lstrip("/")
        if not _COMMAND_RE.match(name):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(command.get("description", ""))) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    key = commands_key(p.json_("scope"), p.str_("language_code") or "")
    tg.commands[key] = [
        {"command": str(c["command"]).lstrip("/"), "description": str(c["description"])}
        for c in commands
    ]
    return True


@api("getMyCommands")
async def _get_my_commands(tg: FakeTelegram, p: Params, call: Call) -> Any:
    return tg.sent_commands(p.json_("scope"), p.str_("language_code") or "")


@api("deleteMyCommands")
async def _delete_my_commands(tg: FakeTelegram, p: Params, call: Call) -> Any:
    tg.commands.pop(commands_key(p.json_("scope"), p.str_("language_code") or ""), None)
    return True


async def _trivial_setter(tg: FakeTelegram, p: Params, call: Call) -> Any:
    tg.bot_settings[call.method] = dict(p.values)
    return True


for _method in _TRIVIAL_SETTERS:
    api(_method)(_trivial_setter)


@api("getChat")
async def _get_chat(tg: FakeTelegram, p: Params, call: Call) -> Any:
    return tg._chat_full_info(tg._target_chat(p, write=False))


@api("getChatMember")
async def _get_chat_member(tg: FakeTelegram, p: Params, call: Call) -> Any:
    chat = tg._target_chat(p, write=False)
    user_id = p.int_("user_id")
    if user_id is None:
        raise bad_request("user_id is empty")
    return tg._member_json(chat, user_id)


@api("getChatAdministrators")
async def _get_chat_administrators(tg: FakeTelegram, p: Params, call: Call) -> Any:
    chat = tg._target_chat(p, write=False)
    if chat.type == "private":
        raise bad_request("there are no administrators in the private chat")
    ids = ([chat.owner] if chat.owner is not None else []) + sorted(chat.admins - {chat.owner})
    if chat.bot_status == "administrator":
        ids.append(tg.bot_id)
    return [tg._member_json(chat, user_id) for user_id in ids if user_id is not None]


@api("getChatMemberCount")
async def _get_chat_member_count(tg: FakeTelegram, p: Params, call: Call) -> Any:
    chat = tg._target_chat(p, write=False)
    if chat.type == "private":
        return 2
    return len(chat.members) + (chat.bot_status in ("member", "administrator"))


@api("leaveChat")
async def _leave_chat(tg: FakeTelegram, p: Params, call: Call) -> Any:
    chat = tg._target_chat(p, write=False)
    if chat.type == "private":
        raise bad_request("chat member status can't be changed in private chats")
    chat.bot_status = "left"
    return True


@api("pinChatMessage")
async def _pin_chat_message(tg: FakeTelegram, p: Params, call: Call) -> Any:
    chat = tg._target_chat(p, write=True)
    message_id = p.int_("message_id") or 0
    stored = chat.messages.get(message_id)
    if stored is None or stored.deleted:
        raise bad_request("message to pin not found")
    if message_id in chat.pinned:
        chat.pinned.remove(message_id)
    chat.pinned.append(message_id)
    tg.feed.notify()
    return True


@api("unpinChatMessage")
async def _unpin_chat_message(tg: FakeTelegram, p: Params, call: Call) -> Any:
    chat = tg._target_chat(p, write=True)
    message_id = p.int_("message_id")
    if message_id is None:
        if chat.pinned:
            chat.pinned.pop()
    elif message_id in chat.pinned:
        chat.pinned.remove(message_id)
    tg.feed.notify()
    return True


@api("unpinAllChatMessages")
async def _unpin_all_chat_messages(tg: FakeTelegram, p: Params, call: Call) -> Any:
    tg._target_chat(p, write=True).pinned.clear()
    tg.feed.notify()
    return True


@api("sendChatAction")
async def _send_chat_action(tg: FakeTelegram, p: Params, call: Call) -> Any:
    tg._target_chat(p, write=True)
    if p.str_("action") not in _CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    return True
