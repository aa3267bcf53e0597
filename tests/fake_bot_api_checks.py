"""What the fake Bot API checks in requests: parameter decoding, markup, keyboards, results.

Each check raises ApiError with the status and description Telegram uses for the same mistake.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.fake_bot_api_html import HtmlError, ParsedText, parse_html, utf16_len

__all__ = [
    "METHODS",
    "ApiError",
    "check_inline_results",
    "check_reply_markup",
    "decode_params",
    "parse_message_text",
]

MAX_TEXT_UNITS = 4096
MAX_CALLBACK_BYTES = 64
MAX_INLINE_RESULTS = 50


class ApiError(Exception):
    """A refused request: HTTP status, Telegram's description and optional parameters."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def bad_request(text: str) -> ApiError:
    """Return a 400 with Telegram's "Bad Request: " prefix."""
    return ApiError(400, f"Bad Request: {text}")


# Parameter kinds per method, from the Bot API reference. "chat" is an int or an @username.
_COMMON_SEND = {
    "business_connection_id": "str",
    "chat_id": "chat",
    "message_thread_id": "int",
    "direct_messages_topic_id": "int",
    "disable_notification": "bool",
    "protect_content": "bool",
    "allow_paid_broadcast": "bool",
    "message_effect_id": "str",
    "suggested_post_parameters": "json",
    "reply_parameters": "json",
    "reply_markup": "json",
    # Older spellings Telegram still accepts.
    "reply_to_message_id": "int",
    "allow_sending_without_reply": "bool",
}
METHODS: dict[str, dict[str, str]] = {
    "getme": {},
    "getupdates": {"offset": "int", "limit": "int", "timeout": "int", "allowed_updates": "json"},
    "deletewebhook": {"drop_pending_updates": "bool"},
    "getwebhookinfo": {},
    "sendmessage": {
        **_COMMON_SEND,
        "text": "str",
        "parse_mode": "str",
        "entities": "json",
        "link_preview_options": "json",
        "disable_web_page_preview": "bool",
    },
    "sendchataction": {
        "business_connection_id": "str",
        "chat_id": "chat",
        "message_thread_id": "int",
        "action": "str",
    },
    "editmessagetext": {
        "business_connection_id": "str",
        "chat_id": "chat",
        "message_id": "int",
        "inline_message_id": "str",
        "text": "str",
        "parse_mode": "str",
        "entities": "json",
        "link_preview_options": "json",
        "disable_web_page_preview": "bool",
        "reply_markup": "json",
    },
    "editmessagereplymarkup": {
        "business_connection_id": "str",
        "chat_id": "chat",
        "message_id": "int",
        "inline_message_id": "str",
        "reply_markup": "json",
    },
    "answercallbackquery": {
        "callback_query_id": "str",
        "text": "str",
        "show_alert": "bool",
        "url": "str",
        "cache_time": "int",
    },
    "answerinlinequery": {
        "inline_query_id": "str",
        "results": "json",
        "cache_time": "int",
        "is_personal": "bool",
        "next_offset": "str",
        "button": "json",
    },
    "setmycommands": {"commands": "json", "scope": "json", "language_code": "str"},
    "getmycommands": {"scope": "json", "language_code": "str"},
    "deletemycommands": {"scope": "json", "language_code": "str"},
}


def _convert(name: str, kind: str, value: Any) -> Any:
    try:
        if kind == "str":
            if isinstance(value, str):
                return value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
        elif kind == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str):
                return int(value)
        elif kind == "chat":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str):
                return value if value.startswith("@") else int(value)
        elif kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                return value.lower() in ("true", "1")
        elif kind == "json":
            return json.loads(value) if isinstance(value, str) else value
    except (ValueError, json.JSONDecodeError):
        pass
    raise bad_request(f"can't parse parameter {name}")


def decode_params(method: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Return the parameters typed as the method expects; refuse unknown ones."""
    schema = METHODS[method]
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in schema:
            # Telegram ignores unknown parameters; the fake refuses them to catch typos.
            raise bad_request(f"fake: unknown parameter {name!r} for {method}")
        out[name] = _convert(name, schema[name], value)
    return out


def parse_message_text(text: Any, parse_mode: str | None, entities: Any = None) -> ParsedText:
    """Return the text as Telegram stores it, or refuse it."""
    if not isinstance(text, str) or not text.strip():
        raise bad_request("message text is empty")
    if parse_mode is None or parse_mode == "":
        parsed = ParsedText(text.strip(), list(entities or []))
    elif parse_mode.upper() == "HTML":
        if entities:
            raise bad_request("fake: entities and parse_mode together")
        try:
            parsed = parse_html(text)
        except HtmlError as exc:
            raise bad_request(str(exc)[0].lower() + str(exc)[1:]) from None
    else:
        raise bad_request(f"fake: parse_mode {parse_mode!r} is not supported by the fake")
    if not parsed.text:
        raise bad_request("message text is empty")
    if parsed.units > MAX_TEXT_UNITS:
        raise bad_request("message is too long")
    return parsed


_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


def check_reply_markup(markup: Any) -> None:
    """Refuse an inline keyboard Telegram would refuse."""
    if markup is None:
        return
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        return  # reply keyboards and force_reply are not used by the bot under test
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
    if sum(len(r) for r in rows) > 100:
        raise bad_request("too many inline keyboard buttons")
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not str(button.get("text", "")).strip():
                raise bad_request("BUTTON_TEXT_INVALID")
            actions = [a for a in _BUTTON_ACTIONS if a in button]
            if len(actions) != 1:
                raise bad_request("BUTTON_TYPE_INVALID")
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_BYTES:
                    raise bad_request("BUTTON_DATA_INVALID")
            if "url" in button and not re.match(r"^(https?|tg)://\S+$", str(button["url"])):
                raise bad_request("BUTTON_URL_INVALID")


def check_link_preview(options: Any) -> None:
    """Refuse malformed link preview options."""
    if options is None:
        return
    if not isinstance(options, dict):
        raise bad_request("can't parse link preview options")
    url = options.get("url")
    if url is not None and not re.match(r"^https?://\S+$", str(url)):
        raise bad_request("fake: link preview url is not an http(s) URL")


def check_inline_results(results: Any, button: Any, next_offset: str | None) -> None:
    """Refuse inline results Telegram would refuse."""
    if not isinstance(results, list):
        raise bad_request("can't parse inline query results JSON object")
    if len(results) > MAX_INLINE_RESULTS:
        raise bad_request("RESULTS_TOO_MUCH")
    seen: set[str] = set()
    for result in results:
        if not isinstance(result, dict) or result.get("type") != "article":
            raise bad_request("fake: only article results are supported")
        rid = result.get("id")
        if not isinstance(rid, str) or not 1 <= len(rid.encode("utf-8")) <= 64:
            raise bad_request("RESULT_ID_INVALID")
        if rid in seen:
            raise bad_request("RESULT_ID_DUPLICATE")
        seen.add(rid)
        if not str(result.get("title", "")).strip():
            raise bad_request("RESULT_TITLE_EMPTY")
        content = result.get("input_message_content")
        if not isinstance(content, dict) or "message_text" not in content:
            raise bad_request("fake: article result needs input_message_content with message_text")
        try:
            parse_message_text(content["message_text"], content.get("parse_mode"), content.get("entities"))
        except ApiError as exc:
            raise bad_request(f"MESSAGE_TEXT_INVALID ({exc.description})") from None
        check_link_preview(content.get("link_preview_options"))
        check_reply_markup(result.get("reply_markup"))
    if next_offset is not None and len(next_offset.encode("utf-8")) > 64:
        raise bad_request("NEXT_OFFSET_INVALID")
    if button is not None:
        if not isinstance(button, dict) or not str(button.get("text", "")).strip():
            raise bad_request("BUTTON_TEXT_INVALID")
        start = button.get("start_parameter")
        if start is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", str(start)):
            raise bad_request("START_PARAM_INVALID")


def check_commands(commands: Any) -> None:
    """Refuse a command list Telegram would refuse."""
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("can't parse commands")
    for c in commands:
        if not isinstance(c, dict) or not re.fullmatch(r"[a-z0-9_]{1,32}", str(c.get("command", ""))):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(c.get("description", "")).strip()) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")


def units(text: str) -> int:
    """Return the UTF-16 length of ``text``."""
    return utf16_len(text)
