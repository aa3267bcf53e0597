"""A strict fake of the Telegram Bot API, spoken over real HTTP on loopback.

The bot under test points PTB's ``base_url`` at :attr:`FakeBotApi.base_url` and talks to it as it
would to Telegram: ``POST /bot<token>/<method>`` with form-encoded or JSON bodies, answered with
``{"ok": ...}`` envelopes and the status codes PTB maps to its exceptions. Tests play the users:
they push updates (the fake assigns strictly increasing ``update_id``s), then wait for and inspect
what the bot sent. Whatever Telegram refuses, the fake refuses; every refusal is recorded so a
test can assert there were none. Faults (429 with retry_after, 403, 5xx, a dropped connection) can
be injected per method, and the whole API can go down (connections refused, open ones cut) and come
back on the same port with its world intact (:meth:`FakeBotApi.go_down`, :meth:`FakeBotApi.come_back`).

Used as a proxy (``HTTPS_PROXY`` pointing at it), it records any attempt to reach another host,
so a bot that tries the real Telegram fails the test instead of leaving the machine.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from tests.fake_bot_api_checks import (
    METHODS,
    ApiError,
    bad_request,
    check_commands,
    check_inline_results,
    check_link_preview,
    check_reply_markup,
    decode_params,
    parse_message_text,
)
from tests.fake_bot_api_html import utf16_len

__all__ = ["Call", "FakeBotApi"]

DEFAULT_UPDATES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)
ALL_UPDATES = DEFAULT_UPDATES | {"chat_member", "message_reaction", "message_reaction_count"}


@dataclass
class Call:
    """One request the bot made and how the fake answered it."""

    method: str
    params: dict[str, Any]
    status: int = 200
    result: Any = None
    description: str = ""
    injected: bool = False
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Fault:
    method: str
    status: int  # 0 means: drop the connection without answering
    description: str
    retry_after: int | None
    times: int


class FakeBotApi:
    """The fake server and the world it simulates: one bot, its chats, users and messages."""

    def __init__(self, token: str, *, username: str = "NewsqaTestBot", bot_id: int = 7000001) -> None:
        self.token = token
        self.bot_user = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Newsqa",
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": True,
        }
        self._cond = threading.Condition()
        self._update_ids = itertools.count(10_001)
        self._query_ids = itertools.count(1)
        self._pending: list[dict[str, Any]] = []
        self._allowed = DEFAULT_UPDATES
        self._poll_generation = 0
        self.polls_started = 0
        self._closing = False
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.chats: dict[int, dict[str, Any]] = {}
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._next_message_id: dict[int, int] = {}
        self.callback_queries: dict[str, dict[str, Any]] = {}
        self.inline_queries: dict[str, dict[str, Any]] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.blocked: set[int] = set()
        self._faults: list[_Fault] = []
        self.webhook_url = ""
        self.down = False
        self._connections: set[socket.socket] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """Return the TCP port the fake listens on (and listens on again after coming back)."""
        return self._port

    @property
    def base_url(self) -> str:
        """Return the value for PTB's ``base_url`` (the token is appended by PTB)."""
        return f"http://127.0.0.1:{self.port}/bot"

    def start(self) -> FakeBotApi:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Answer waiting long polls and stop serving."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if not self.down:
            self._server.shutdown()
            self._server.server_close()

    def go_down(self) -> None:
        """Stop answering, as an unreachable Telegram would: new connections are refused, open ones cut."""
        with self._cond:
            self.down = True
            self._cond.notify_all()
            open_connections = list(self._connections)
        self._server.shutdown()
        self._server.server_close()
        for connection in open_connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def come_back(self) -> None:
        """Listen again on the same port; chats, messages and update ids are as they were."""
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler_for(self))
        self._server.daemon_threads = True
        with self._cond:
            self.down = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- the world: users, chats, updates ----------------------------------------------------

    @staticmethod
    def user(user_id: int, first_name: str = "Ann", username: str | None = None) -> dict[str, Any]:
        """Return a (human) User object."""
        user: dict[str, Any] = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "language_code": "en",
        }
        if username:
            user["username"] = username
        return user

    def private_chat(self, user: dict[str, Any]) -> dict[str, Any]:
        """Return (and remember) the private chat between ``user`` and the bot."""
        chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        with self._cond:
            self.chats[chat["id"]] = chat
        return chat

    def group(self, chat_id: int, title: str = "News room", kind: str = "supergroup") -> dict[str, Any]:
        """Return (and remember) a group the bot is a member of."""
        chat = {"id": chat_id, "type": kind, "title": title}
        with self._cond:
            self.chats[chat_id] = chat
        return chat

    def push(self, kind: str, payload: dict[str, Any]) -> int:
        """Queue an update of ``kind`` and return the update_id the fake gave it."""
        with self._cond:
            update_id = next(self._update_ids)
            self._pending.append({"update_id": update_id, kind: payload})
            self._cond.notify_all()
        return update_id

    def send_text(
        self,
        chat: dict[str, Any],
        user: dict[str, Any],
        text: str,
        *,
        reply_to: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Play ``user`` writing ``text`` in ``chat``; entities are detected as Telegram does."""
        with self._cond:
            message = self._new_message(chat, user, text, _detect_entities(text))
            if reply_to is not None:
                message["reply_to_message"] = {k: v for k, v in reply_to.items() if k != "reply_to_message"}
        self.push("message", message)
        return message

    def press(self, message: dict[str, Any], user: dict[str, Any], button_text: str) -> str:
        """Play ``user`` pressing the button labelled ``button_text``; return the query id."""
        with self._cond:
            current = self.messages[(message["chat"]["id"], message["message_id"])]
            data = next(
                (
                    b["callback_data"]
                    for row in current.get("reply_markup", {}).get("inline_keyboard", [])
                    for b in row
                    if b["text"] == button_text and "callback_data" in b
                ),
                None,
            )
            if data is None:
                raise AssertionError(f"no button {button_text!r} under message {current.get('text')!r}")
            query_id = str(next(self._query_ids) * 7919 + 4_000_000_000)
            self.callback_queries[query_id] = {"answered": False, "answer": None}
            payload = {
                "id": query_id,
                "from": user,
                "message": json.loads(json.dumps(current)),
                "chat_instance": f"ci{current['chat']['id']}",
                "data": data,
            }
        self.push("callback_query", payload)
        return query_id

    def inline_query(self, user: dict[str, Any], query: str, offset: str = "") -> str:
        """Play ``user`` typing ``@bot query`` in some chat; return the query id."""
        with self._cond:
            query_id = str(next(self._query_ids) * 104729 + 9_000_000_000)
            self.inline_queries[query_id] = {"answered": False, "answer": None}
        self.push(
            "inline_query",
            {"id": query_id, "from": user, "query": query, "offset": offset, "chat_type": "sender"},
        )
        return query_id

    def member_update(self, chat: dict[str, Any], user: dict[str, Any], old: str, new: str) -> int:
        """Play a change of the bot's membership in ``chat`` (e.g. "member" -> "kicked")."""
        if new in ("kicked", "left"):
            self.blocked.add(chat["id"])
        else:
            self.blocked.discard(chat["id"])
        member = {"user": self.bot_user}
        return self.push(
            "my_chat_member",
            {
                "chat": chat,
                "from": user,
                "date": int(time.time()),
                "old_chat_member": {**member, "status": old},
                "new_chat_member": {
                    **member,
                    "status": new,
                    **({"until_date": 0} if new == "kicked" else {}),
                },
            },
        )

    def _new_message(
        self,
        chat: dict[str, Any],
        sender: dict[str, Any],
        text: str,
        entities: list[dict[str, Any]],
    ) -> dict[str, Any]:
        chat_id = chat["id"]
        self.chats.setdefault(chat_id, chat)
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": sender,
            "chat": self.chats[chat_id],
            "date": int(time.time()),
            "text": text,
        }
        if entities:
            message["entities"] = entities
        self.messages[(chat_id, message_id)] = message
        return message

    # ---- faults ------------------------------------------------------------------------------

    def inject(
        self,
        method: str,
        status: int,
        description: str,
        *,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with this error instead."""
        with self._cond:
            self._faults.append(_Fault(method.lower(), status, description, retry_after, times))

    def drop(self, method: str, *, times: int = 1) -> None:
        """Close the connection of the next ``times`` calls of ``method`` without answering."""
        self.inject(method, 0, "connection dropped", times=times)

    def _take_fault(self, method: str) -> _Fault | None:
        for fault in self._faults:
            if fault.method == method and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    # ---- inspection --------------------------------------------------------------------------

    def wait_for(
        self,
        method: str,
        where: Callable[[Call], bool] = lambda c: True,
        *,
        count: int = 1,
        timeout: float = 10.0,
        ok: bool = True,
    ) -> list[Call]:
        """Wait for ``count`` answered calls of ``method`` matching ``where``; return them."""
        method = method.lower()
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [c for c in self.calls if c.method == method and (c.status == 200 or not ok) and where(c)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(c.method, c.status, c.description) for c in self.calls[-15:]]
                    raise AssertionError(
                        f"waited {timeout}s for {count} {method} call(s), saw {len(found)}; last calls: {seen}"
                    )
                self._cond.wait(left)

    def wait_polling(self, timeout: float = 10.0) -> None:
        """Wait until the bot is long polling for updates."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.polls_started:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("the bot never called getUpdates")
                self._cond.wait(left)

    def sent(self, chat_id: int) -> list[dict[str, Any]]:
        """Return the messages the bot has sent to ``chat_id`` (current content), oldest first."""
        with self._cond:
            return [
                m
                for (cid, _), m in sorted(self.messages.items())
                if cid == chat_id and m["from"]["id"] == self.bot_user["id"]
            ]

    def wait_sent(self, chat_id: int, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until the bot has sent ``count`` messages to ``chat_id``; return them all."""
        self.wait_for(
            "sendMessage",
            lambda c: c.params.get("chat_id") == chat_id,
            count=count,
            timeout=timeout,
        )
        return self.sent(chat_id)

    def refusals(self) -> list[Call]:
        """Return the requests the fake refused on its own (not injected faults, not 409s)."""
        with self._cond:
            return [c for c in self.calls if c.status >= 400 and not c.injected and c.status != 409]

    def pending_updates(self) -> int:
        """Return how many updates the bot has not confirmed yet."""
        with self._cond:
            return len(self._pending)

    # ---- the HTTP side ---------------------------------------------------------------------

    def handle(self, token: str, method: str, raw: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        """Serve one request; return (status, envelope), envelope None to drop the connection."""
        key = method.lower()
        call = Call(method=key, params=dict(raw))
        if self.down:
            return 0, None  # a request that slipped in as the API went down: cut, unanswered
        try:
            if token != self.token:
                raise ApiError(401, "Unauthorized")
            if key not in METHODS:
                raise ApiError(404, "Not Found")
            params = decode_params(key, raw)
            call.params = params
            with self._cond:
                fault = self._take_fault(key)
            if fault is not None:
                call.injected = True
                if fault.status == 0:
                    call.status, call.description = 0, fault.description
                    self._record(call)
                    return 0, None
                raise ApiError(
                    fault.status,
                    fault.description,
                    {"retry_after": fault.retry_after} if fault.retry_after else None,
                )
            result = getattr(self, f"_api_{key}")(params, call)
            call.result = result
            self._record(call)
            return 200, {"ok": True, "result": result}
        except ApiError as exc:
            call.status, call.description = exc.status, exc.description
            self._record(call)
            envelope: dict[str, Any] = {
                "ok": False,
                "error_code": exc.status,
                "description": exc.description,
            }
            if exc.parameters:
                envelope["parameters"] = exc.parameters
            return exc.status, envelope

    def _record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def violation(self, what: str) -> None:
        """Record a request that tried to leave loopback."""
        with self._cond:
            self.violations.append(what)
            self._cond.notify_all()

    # ---- methods -----------------------------------------------------------------------------

    def _api_getme(self, params: dict[str, Any], call: Call) -> Any:
        return self.bot_user

    def _api_deletewebhook(self, params: dict[str, Any], call: Call) -> Any:
        with self._cond:
            self.webhook_url = ""
            if params.get("drop_pending_updates"):
                self._pending.clear()
        return True

    def _api_getwebhookinfo(self, params: dict[str, Any], call: Call) -> Any:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }

    def _api_getupdates(self, params: dict[str, Any], call: Call) -> Any:
        offset = params.get("offset")
        limit = max(1, min(100, params.get("limit", 100)))
        timeout = max(0, params.get("timeout", 0))
        deadline = time.monotonic() + timeout
        with self._cond:
            if self.webhook_url:
                raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
            if "allowed_updates" in params:
                asked = set(params["allowed_updates"] or [])
                if asked - ALL_UPDATES:
                    raise bad_request("fake: unknown update type in allowed_updates")
                self._allowed = frozenset(asked) if asked else DEFAULT_UPDATES
            # A newer long poll terminates the one still waiting, as on Telegram.
            self.polls_started += 1
            self._poll_generation += 1
            generation = self._poll_generation
            self._cond.notify_all()
            while True:
                if offset is not None:
                    self._pending = [u for u in self._pending if u["update_id"] >= offset]
                # Updates of types the bot did not ask for are never delivered.
                self._pending = [u for u in self._pending if _kind(u) in self._allowed]
                if self._pending or self._closing or self.down:
                    return self._pending[:limit]
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(left)
                if self._poll_generation != generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; "
                        "make sure that only one bot instance is running",
                    )

    def _chat(self, chat_id: Any) -> dict[str, Any]:
        chat = self.chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            raise bad_request("chat not found")
        if chat_id in self.blocked:
            if chat["type"] == "private":
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            raise ApiError(403, f"Forbidden: bot was kicked from the {chat['type']} chat")
        return chat

    def _api_sendmessage(self, params: dict[str, Any], call: Call) -> Any:
        if "chat_id" not in params:
            raise bad_request("chat_id is empty")
        parsed = parse_message_text(params.get("text"), params.get("parse_mode"), params.get("entities"))
        check_reply_markup(params.get("reply_markup"))
        check_link_preview(params.get("link_preview_options"))
        with self._cond:
            chat = self._chat(params["chat_id"])
            reply = params.get("reply_parameters") or {}
            reply_id = reply.get("message_id", params.get("reply_to_message_id"))
            replied = None
            if reply_id is not None:
                replied = self.messages.get((chat["id"], reply_id))
                allow = reply.get("allow_sending_without_reply", params.get("allow_sending_without_reply"))
                if replied is None and not allow:
                    raise bad_request("message to be replied not found")
            message = self._new_message(chat, self.bot_user, parsed.text, parsed.entities)
            if params.get("reply_markup"):
                message["reply_markup"] = params["reply_markup"]
            if params.get("link_preview_options"):
                message["link_preview_options"] = params["link_preview_options"]
            if replied is not None:
                message["reply_to_message"] = {k: v for k, v in replied.items() if k != "reply_to_message"}
            return message

    def _api_sendchataction(self, params: dict[str, Any], call: Call) -> Any:
        with self._cond:
            self._chat(params.get("chat_id"))
        return True

    def _editable(self, params: dict[str, Any]) -> dict[str, Any]:
        if "inline_message_id" in params:
            raise bad_request("fake: inline messages cannot be edited in the fake")
        with self._cond:
            chat = self._chat(params.get("chat_id"))
            message = self.messages.get((chat["id"], params.get("message_id", -1)))
            if message is None:
                raise bad_request("message to edit not found")
            if message["from"]["id"] != self.bot_user["id"]:
                raise bad_request("message can't be edited")
            return message

    def _api_editmessagetext(self, params: dict[str, Any], call: Call) -> Any:
        parsed = parse_message_text(params.get("text"), params.get("parse_mode"), params.get("entities"))
        check_reply_markup(params.get("reply_markup"))
        check_link_preview(params.get("link_preview_options"))
        message = self._editable(params)
        with self._cond:
            markup = params.get("reply_markup") or None
            if (
                message["text"] == parsed.text
                and message.get("entities", []) == parsed.entities
                and message.get("reply_markup") == markup
            ):
                raise bad_request(_NOT_MODIFIED)
            message["text"] = parsed.text
            _set(message, "entities", parsed.entities)
            _set(message, "reply_markup", markup)
            message["edit_date"] = int(time.time())
            return json.loads(json.dumps(message))

    def _api_editmessagereplymarkup(self, params: dict[str, Any], call: Call) -> Any:
        check_reply_markup(params.get("reply_markup"))
        message = self._editable(params)
        with self._cond:
            markup = params.get("reply_markup") or None
            if _empty_markup(message.get("reply_markup")) == _empty_markup(markup):
                raise bad_request(_NOT_MODIFIED)
            _set(message, "reply_markup", None if _empty_markup(markup) is None else markup)
            message["edit_date"] = int(time.time())
            return json.loads(json.dumps(message))

    def _api_answercallbackquery(self, params: dict[str, Any], call: Call) -> Any:
        with self._cond:
            query = self.callback_queries.get(params.get("callback_query_id", ""))
            if query is None or query["answered"]:
                raise bad_request("query is too old and response timeout expired or query ID is invalid")
            if len(params.get("text", "")) > 200:
                raise bad_request("MESSAGE_TOO_LONG")
            query["answered"] = True
            query["answer"] = params
            return True

    def _api_answerinlinequery(self, params: dict[str, Any], call: Call) -> Any:
        check_inline_results(params.get("results"), params.get("button"), params.get("next_offset"))
        with self._cond:
            query = self.inline_queries.get(params.get("inline_query_id", ""))
            if query is None or query["answered"]:
                raise bad_request("query is too old and response timeout expired or query ID is invalid")
            query["answered"] = True
            query["answer"] = params
            return True

    def _api_setmycommands(self, params: dict[str, Any], call: Call) -> Any:
        check_commands(params.get("commands"))
        scope = params.get("scope") or {"type": "default"}
        if scope.get("type") == "chat" and scope.get("chat_id") not in self.chats:
            raise bad_request("chat not found")
        with self._cond:
            self.commands[json.dumps(scope, sort_keys=True)] = params["commands"]
        return True

    def _api_getmycommands(self, params: dict[str, Any], call: Call) -> Any:
        scope = params.get("scope") or {"type": "default"}
        return self.commands.get(json.dumps(scope, sort_keys=True), [])

    def _api_deletemycommands(self, params: dict[str, Any], call: Call) -> Any:
        scope = params.get("scope") or {"type": "default"}
        self.commands.pop(json.dumps(scope, sort_keys=True), None)
        return True

    def commands_for(self, scope_type: str = "default", **extra: Any) -> list[dict[str, Any]]:
        """Return the commands the bot registered for a scope."""
        return self.commands.get(json.dumps({"type": scope_type, **extra}, sort_keys=True), [])


_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)


def _set(message: dict[str, Any], key: str, value: Any) -> None:
    if value:
        message[key] = value
    else:
        message.pop(key, None)


def _empty_markup(markup: Any) -> Any:
    if not markup or not any(markup.get("inline_keyboard", [])):
        return None
    return markup


def _kind(update: dict[str, Any]) -> str:
    return next(k for k in update if k != "update_id")


def _detect_entities(text: str) -> list[dict[str, Any]]:
    """Return bot_command and mention entities as Telegram's server finds them (UTF-16 offsets)."""
    entities = []
    for m in re.finditer(
        r"(?<![\w/@])(/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?)|(?<![\w@])(@[A-Za-z0-9_]{3,32})",
        text,
    ):
        kind = "bot_command" if m.group(1) else "mention"
        entities.append({"type": kind, "offset": utf16_len(text[: m.start()]), "length": utf16_len(m.group(0))})
    return entities


def _handler_for(api: FakeBotApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without this, Nagle adds 40 ms a request.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with api._cond:
                api._connections.add(self.connection)

        def finish(self) -> None:
            with api._cond:
                api._connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            """Stay quiet; the fake records calls itself."""

        def do_CONNECT(self) -> None:
            api.violation(f"CONNECT {self.path}")
            self._reply(403, {"ok": False, "error_code": 403, "description": "fake: no way out"})

        def do_GET(self) -> None:
            self._serve(b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._serve(self.rfile.read(length) if length else b"")

        def _serve(self, body: bytes) -> None:
            if self.path.startswith(("http://", "https://")):
                api.violation(f"{self.command} {self.path}")
                self._reply(403, {"ok": False, "error_code": 403, "description": "fake: no way out"})
                return
            parts = self.path.split("?", 1)[0].strip("/").split("/")
            if len(parts) != 2 or not parts[0].startswith("bot"):
                self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                return
            try:
                raw = self._params(body)
            except ApiError as exc:
                self._reply(
                    exc.status,
                    {"ok": False, "error_code": exc.status, "description": exc.description},
                )
                return
            status, envelope = api.handle(parts[0][3:], parts[1], raw)
            if envelope is None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._reply(status, envelope)

        def _params(self, body: bytes) -> dict[str, Any]:
            kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            query = self.path.split("?", 1)[1] if "?" in self.path else ""
            raw: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
            if not body:
                return raw
            if kind == "application/json":
                try:
                    data = json.loads(body)
                except json.JSONDecodeError:
                    raise bad_request("can't parse JSON") from None
                if not isinstance(data, dict):
                    raise bad_request("can't parse JSON object")
                raw.update(data)
            elif kind == "application/x-www-form-urlencoded":
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    raise bad_request("strings must be encoded in UTF-8") from None
                raw.update(parse_qsl(text, keep_blank_values=True, strict_parsing=False))
            else:
                raise bad_request(f"fake: unsupported content type {kind!r}")
            return raw

        def _reply(self, status: int, envelope: dict[str, Any]) -> None:
            data = json.dumps(envelope, ensure_ascii=False).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                # The client gave up on a long poll (e.g. the bot stopped); nothing to tell it.
                self.close_connection = True

    return Handler
