"""NATS for tether's JetStream engines: the ``nats://`` URL and one connection per URL.

URL::

    nats://HOST[:PORT][,HOST[:PORT]...][/][?prefix=tether&replicas=1&timeout=5]
    nats://user:password@h1:4222,h2:4222,h3:4222/?replicas=3&prefix=acme

Several comma-separated servers are one cluster (the client fails over between
them); each may repeat ``nats://``, as in the server lists NATS tools print, and
credentials given on one apply to all. The port defaults to 4222. ``prefix``
(letters and digits, default ``tether``) namespaces everything tether creates, so
several deployments can share one NATS account; ``replicas`` (1-5, default 1) is the
replication of the streams and buckets tether creates (existing ones are used as
they are); ``timeout`` (seconds, default 5) bounds every round of requests.

Each distinct connection part of the URL (servers, credentials, timeout) gets one
NATS connection per process, run by an asyncio loop in a background thread; the
stream objects of that URL share it and the last one closed closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import re
import threading
import urllib.parse
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from tether.errors import EngineError, SettingsError

T = TypeVar("T")
_PREFIX = re.compile(r"[A-Za-z0-9]{1,32}")
_PARAMS = ("prefix", "replicas", "timeout")
_IN_FLIGHT = 1000  # requests of one round waiting for their answers at once
NS = 1_000_000_000
_WRONG_LAST_SEQUENCE = 10071
_STREAM_NOT_FOUND = 10059
_STREAM_NAME_IN_USE = 10058
_HINT = "is nats-server running with JetStream enabled (-js)?"


# The URL ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A parsed ``nats://`` stream URL."""

    servers: tuple[str, ...]  # nats://[user:password@]host:port, one per server
    display: str  # the servers without credentials, for messages
    prefix: str
    replicas: int
    timeout: float

    @property
    def link_key(self) -> tuple[tuple[str, ...], float]:
        return self.servers, self.timeout


def parse_url(url: str) -> Target:
    """Parse and check a ``nats://`` stream URL (SettingsError naming the problem)."""
    example = "nats://127.0.0.1:4222/?prefix=tether"
    scheme, sep, rest = url.partition("://")
    rest, _, query_text = rest.partition("?")
    if scheme != "nats" or not sep or "#" in query_text:
        raise SettingsError(f"stream URL {url!r} is not a NATS URL; use the form {example}")
    servers: list[str] = []
    shown: list[str] = []
    items = rest.split(",")
    credentials = ""
    for n, item in enumerate(items):
        item = item.strip().removeprefix("nats://")
        item, slash, path = item.partition("/")
        if slash and (path or n < len(items) - 1):
            raise SettingsError(
                f"stream URL {url!r}: a NATS URL has no path ({'/' + path!r}); "
                f"name the namespace with ?prefix=..., e.g. {example}"
            )
        userinfo, at, host = item.rpartition("@")
        if at:
            credentials = userinfo + "@"  # given on one server, used for the rest too
        if not host or host.startswith(":"):
            if len(items) == 1:
                raise SettingsError(f"stream URL {url!r} names no server; use the form {example}")
            raise SettingsError(f"stream URL {url!r}: an empty server in {rest!r}")
        try:
            port = urllib.parse.urlsplit(f"//{host}").port
        except ValueError as exc:
            raise SettingsError(f"stream URL {url!r}: bad server {host!r} ({exc})") from None
        if port is None:
            host = f"{host}:4222"
        servers.append(host)
        shown.append(host)
    servers = [f"nats://{credentials}{host}" for host in servers]
    try:
        query = urllib.parse.parse_qs(query_text, keep_blank_values=True)
    except ValueError as exc:
        raise SettingsError(f"stream URL {url!r}: bad query ({exc})") from None
    for name, values in query.items():
        if name not in _PARAMS:
            raise SettingsError(
                f"stream URL {url!r}: unknown parameter {name!r}; known: {', '.join(_PARAMS)}"
            )
        if len(values) > 1:
            raise SettingsError(f"stream URL {url!r}: parameter {name!r} is given twice")
    prefix = query.get("prefix", ["tether"])[0]
    if not _PREFIX.fullmatch(prefix):
        raise SettingsError(
            f"stream URL {url!r}: prefix={prefix!r} is not allowed; use 1-32 letters or digits"
        )
    replicas_text = query.get("replicas", ["1"])[0]
    if not replicas_text.isdigit() or not 1 <= int(replicas_text) <= 5:
        raise SettingsError(
            f"stream URL {url!r}: replicas={replicas_text!r}; use a number from 1 to 5"
        )
    timeout_text = query.get("timeout", ["5"])[0]
    try:
        timeout = float(timeout_text)
    except ValueError:
        timeout = math.nan
    if not 0 < timeout <= 3600:
        raise SettingsError(
            f"stream URL {url!r}: timeout={timeout_text!r}; use seconds above 0, e.g. timeout=5"
        )
    return Target(tuple(servers), ",".join(shown), prefix, int(replicas_text), timeout)


# The connection --------------------------------------------------------------------------


class ApiError(Exception):
    """JetStream answered with an error."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"{description} (JetStream error {code})")
        self.code = code
        self.description = description


class NoResponders(Exception):
    """Nothing listens on the subject: JetStream is off, or the stream is gone."""


class ConsumerGone(Exception):
    """The pull consumer behind a read no longer exists on the server."""


def _status(msg: Msg) -> str | None:
    headers = msg.headers
    return headers.get("Status") if headers else None


def answer(msg: Msg) -> dict[str, Any]:
    """The JSON body of a JetStream reply; ApiError if it is an error."""
    body: dict[str, Any] = json.loads(msg.data)
    error = body.get("error")
    if error is not None:
        raise ApiError(int(error.get("err_code", error.get("code", 0))), error["description"])
    return body


def wrong_last(error: ApiError) -> int | None:
    """The sequence a failed expectation names ("wrong last sequence: N"), else None."""
    if error.code != _WRONG_LAST_SEQUENCE:
        return None
    return int(error.description.rpartition(":")[2])


class _Batch:
    """The messages a pull request delivers, until ``limit`` or a status message."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.limit = limit
        self.msgs: list[Msg] = []
        self.status: str | None = None
        self.done: asyncio.Future[None] = loop.create_future()

    def feed(self, msg: Msg) -> None:
        if self.done.done():
            return
        status = _status(msg)
        if status is not None:
            self.status = status
            self.done.set_result(None)
            return
        self.msgs.append(msg)
        if len(self.msgs) >= self.limit:
            self.done.set_result(None)


class Link:
    """One NATS connection on a private asyncio loop in a background thread."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.display = target.display
        self.timeout = target.timeout
        self.users = 0
        self.epoch = 0  # reconnects so far: server-side state made before may be gone
        self._nc: Client | None = None
        self._routes: dict[str, asyncio.Future[Msg]] = {}
        self._tokens = itertools.count()
        self._reply = ""
        self._connected = asyncio.Event()
        self._last_error: BaseException | None = None
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name=f"tether-nats {self.display}", daemon=True
        )
        self._thread.start()
        try:
            self.call(self._connect(), "connect")
        except BaseException:
            self.close()
            raise

    # running coroutines from the caller's thread
    def call(self, coro: Coroutine[Any, Any, T], what: str) -> T:
        return asyncio.run_coroutine_threadsafe(self._guard(coro, what), self.loop).result()

    async def _guard(self, coro: Coroutine[Any, Any, T], what: str) -> T:
        try:
            return await coro
        except (EngineError, SettingsError, ValueError):
            raise
        except ApiError as exc:
            raise EngineError(f"{what}: NATS JetStream at {self.display} refused: {exc}") from None
        except NoResponders as exc:
            if str(exc).startswith("$JS.API."):
                raise EngineError(
                    f"{what}: NATS at {self.display} has no JetStream answering; start "
                    "nats-server with JetStream enabled (-js, or a jetstream {} block in its "
                    "configuration)"
                ) from None
            raise EngineError(
                f"{what}: no JetStream stream at {self.display} takes messages on "
                f"{str(exc)!r}: the stream was deleted (open it again to recreate it), or its "
                "cluster is electing a new leader (retry in a few seconds)"
            ) from None
        except (TimeoutError, nats.errors.TimeoutError):
            retry = (
                "; it may have landed: retrying a unique append is safe"
                if what.startswith("append")
                else ""
            )
            raise EngineError(
                f"{what}: NATS at {self.display} did not answer within {self.timeout:g} s; "
                f"is the server up (for a cluster: a majority of its nodes){retry}?"
            ) from None
        except nats.errors.MaxPayloadError:
            raise EngineError(
                f"{what}: an entry is larger than the NATS server's max_payload; "
                "raise max_payload in the server configuration or send smaller entries"
            ) from None
        except (nats.errors.Error, OSError) as exc:
            raise EngineError(
                f"{what}: lost the connection to NATS at {self.display} "
                f"({type(exc).__name__}: {exc}); {_HINT}"
            ) from None

    # connecting
    async def _connect(self) -> None:
        async def on_error(exc: Exception) -> None:
            self._last_error = exc

        async def on_disconnect() -> None:
            self._connected.clear()

        async def on_reconnect() -> None:
            self.epoch += 1
            self._connected.set()

        try:
            nc = await nats.connect(
                list(self.target.servers),
                name="tether",
                connect_timeout=max(1, math.ceil(min(self.timeout, 5))),
                reconnect_time_wait=1,
                # Try each server twice when connecting; once connected, reconnect for ever.
                max_reconnect_attempts=1,
                # Fail a publish at once while disconnected rather than buffer it.
                pending_size=0,
                # tether builds every subject from checked names and escaped keys.
                skip_subject_validation=True,
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            cause = self._last_error or exc
            if isinstance(cause, nats.errors.AuthorizationError):
                raise EngineError(
                    f"NATS at {self.display} refused the connection: check the user and "
                    "password in the stream URL (nats://user:password@host:4222)"
                ) from None
            raise EngineError(
                f"cannot reach NATS at {self.display}: {_HINT} "
                f"({type(cause).__name__}: {cause or 'no answer'})"
            ) from None
        nc.options["max_reconnect_attempts"] = -1
        self._nc = nc
        self._connected.set()
        self._reply = nc.new_inbox() + "."
        await nc.subscribe(self._reply + "*", cb=self._route)
        try:
            await self.api("INFO")
        except NoResponders:
            await nc.close()
            raise EngineError(
                f"NATS at {self.display} answers but JetStream is not enabled; "
                "start nats-server with -js (or a jetstream {} block in its configuration)"
            ) from None

    async def _route(self, msg: Msg) -> None:
        future = self._routes.pop(msg.subject[len(self._reply) :], None)
        if future is not None and not future.done():
            future.set_result(msg)

    async def client(self) -> Client:
        """The connection, waiting up to the timeout while it reconnects."""
        nc = self._nc
        if nc is None or nc.is_closed:
            raise EngineError(f"the connection to NATS at {self.display} is closed")
        if not nc.is_connected:
            try:
                await asyncio.wait_for(self._connected.wait(), self.timeout)
            except TimeoutError:
                cause = self._last_error
                raise EngineError(
                    f"cannot reach NATS at {self.display} (reconnecting for "
                    f"{self.timeout:g} s): {_HINT}" + (f" ({cause})" if cause else "")
                ) from None
        return nc

    # requests
    async def requests(
        self, requests: Iterable[tuple[str, bytes, dict[str, str] | None]]
    ) -> list[Msg]:
        """Publish in order, each with a reply subject of our own, and gather the replies.

        At most _IN_FLIGHT wait at once; each round of them must finish within the timeout.
        """
        nc = await self.client()
        out: list[Msg] = []
        subjects: list[str] = []
        tokens: list[str] = []
        futures: list[asyncio.Future[Msg]] = []
        routes = self._routes
        reply = self._reply
        for subject, payload, headers in requests:
            token = str(next(self._tokens))
            future: asyncio.Future[Msg] = self.loop.create_future()
            routes[token] = future
            subjects.append(subject)
            tokens.append(token)
            futures.append(future)
            await nc.publish(subject, payload, reply=reply + token, headers=headers)
            if len(futures) >= _IN_FLIGHT:
                out += await self._gather(subjects, tokens, futures)
                subjects, tokens, futures = [], [], []
        return out + await self._gather(subjects, tokens, futures)

    async def _gather(
        self, subjects: list[str], tokens: list[str], futures: list[asyncio.Future[Msg]]
    ) -> list[Msg]:
        if not futures:
            return []
        try:
            async with asyncio.timeout(self.timeout):
                replies = list(await asyncio.gather(*futures))
        finally:
            for token, future in zip(tokens, futures, strict=True):
                self._routes.pop(token, None)
                future.cancel()
        for subject, msg in zip(subjects, replies, strict=True):
            if _status(msg) == "503":
                raise NoResponders(subject)
        return replies

    async def api(self, endpoint: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        payload = json.dumps(body).encode() if body is not None else b""
        [msg] = await self.requests([(f"$JS.API.{endpoint}", payload, None)])
        return answer(msg)

    async def pull(
        self, stream: str, consumer: str, limit: int, expires: float | None = None
    ) -> list[Msg]:
        """Up to ``limit`` messages the pull consumer has now (none if it is caught up).

        ``expires`` (seconds) bounds how long the server may hold the request: some
        servers leave a plain ``no_wait`` pull on an acknowledging consumer unanswered
        after messages it had delivered were purged.
        """
        nc = await self.client()
        batch = _Batch(self.loop, limit)

        async def feed(msg: Msg) -> None:
            batch.feed(msg)

        # Deliveries carry their own subjects, not the reply's: one subscription per pull.
        request: dict[str, Any] = {"batch": limit, "no_wait": True}
        if expires is not None:
            request["expires"] = round(expires * NS)
        inbox = nc.new_inbox()
        sub: Subscription = await nc.subscribe(inbox, cb=feed)
        try:
            await nc.publish(
                f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
                json.dumps(request).encode(),
                reply=inbox,
            )
            async with asyncio.timeout(self.timeout):
                await batch.done
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        if batch.status == "503" or (batch.status == "409" and not batch.msgs):
            raise ConsumerGone(consumer)
        return batch.msgs

    async def ensure_stream(self, config: dict[str, Any]) -> None:
        """Create the stream unless it exists (an existing one is used as it is)."""
        name = config["name"]
        try:
            await self.api(f"STREAM.INFO.{name}")
        except ApiError as exc:
            if exc.code != _STREAM_NOT_FOUND:
                raise
            try:
                await self.api(f"STREAM.CREATE.{name}", config)
            except ApiError as exc2:
                if exc2.code != _STREAM_NAME_IN_USE:  # another process was quicker
                    raise

    # closing
    async def _close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.timeout):
                    await nc.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(self.timeout + 5)
        self._stop_loop()

    def _stop_loop(self) -> None:
        if self.loop.is_closed():
            return

        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_rest(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


# Open connections by process (a forked child must not use its parent's) and URL.
_links: dict[tuple[int, tuple[tuple[str, ...], float]], Link] = {}
_links_lock = threading.Lock()


def acquire(target: Target) -> Link:
    key = (os.getpid(), target.link_key)
    with _links_lock:
        link = _links.get(key)
        if link is None:
            link = _links[key] = Link(target)
        link.users += 1
        return link


def release(link: Link) -> None:
    key = (os.getpid(), link.target.link_key)
    with _links_lock:
        link.users -= 1
        if link.users > 0:
            return
        if _links.get(key) is link:
            del _links[key]
    link.close()
