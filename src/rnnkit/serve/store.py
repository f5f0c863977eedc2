"""Where a server keeps the states of streams that are not in memory: idle ones, and all of
them after a shutdown.

A state is the bytes of `Stream.state_bytes` (safetensors, tagged with the model and sealed
with a checksum), stored under the stream's id. `DirectoryStore` writes one file per stream
into a folder (one server process per folder); `RedisStore` keeps them in Redis, where several
server processes share them: a process holds a stream while it steps it, under a lease (a Redis
key that expires unless renewed), and hands it back to Redis when the stream goes idle or the
process stops, so that another process may take it on.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Protocol

from ..errors import InputError
from ..files import write_bytes_atomic

# a stream id: letters, digits, '_', '-' and '.', not starting with '.'; safe as a file name
STREAM_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")
SUFFIX = ".state"


class Store(Protocol):
    """What the service needs of a store of states."""

    def get(self, stream_id: str) -> bytes | None: ...

    def put(self, stream_id: str, data: bytes) -> None: ...

    def delete(self, stream_id: str) -> None: ...

    def acquire(self, stream_id: str) -> bool:
        """Take the stream for this process; False when another process holds it."""
        ...

    def release(self, stream_ids: list[str]) -> None: ...

    def renew(self, stream_ids: list[str]) -> None:
        """Keep holding these streams (their leases, where the store has leases)."""
        ...

    def describe(self) -> str: ...


class DirectoryStore:
    """One file ``<id>.state`` per stream in ``folder`` (created if missing), written
    atomically. One server process per folder: there are no leases."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"--state-dir: {str(self.folder)!r} is a file; expected a folder")
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, stream_id: str) -> Path:
        return self.folder / f"{stream_id}{SUFFIX}"

    def get(self, stream_id: str) -> bytes | None:
        try:
            return self._path(stream_id).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, stream_id: str, data: bytes) -> None:
        write_bytes_atomic(self._path(stream_id), data, "serve")

    def delete(self, stream_id: str) -> None:
        self._path(stream_id).unlink(missing_ok=True)

    def acquire(self, stream_id: str) -> bool:
        return True

    def release(self, stream_ids: list[str]) -> None:
        pass

    def renew(self, stream_ids: list[str]) -> None:
        pass

    def ids(self) -> list[str]:
        """The streams saved in the folder."""
        return sorted(p.name[: -len(SUFFIX)] for p in self.folder.glob(f"*{SUFFIX}"))

    def describe(self) -> str:
        return str(self.folder)


class RedisStore:
    """States in Redis under ``<prefix>state:<id>``, leases under ``<prefix>lease:<id>``.

    ``client`` is a ``redis.Redis`` (or a ``fakeredis.FakeRedis``); `from_url` makes one.
    ``owner`` names this process in its leases; a lease lasts ``lease_seconds`` unless renewed.
    """

    def __init__(
        self, client: Any, owner: str, prefix: str = "rnnkit:stream:", lease_seconds: float = 30.0
    ) -> None:
        self.client, self.owner, self.prefix = client, owner, prefix
        self.lease_ms = max(1, int(lease_seconds * 1000))

    @classmethod
    def from_url(cls, url: str, owner: str, lease_seconds: float = 30.0) -> RedisStore:
        try:
            import redis
        except ImportError:
            raise InputError(
                "--redis: the redis package is not installed; pip install 'rnnkit[redis]'"
            ) from None
        try:
            client = redis.Redis.from_url(url)
            client.ping()
        except (ValueError, redis.RedisError) as exc:
            raise InputError(f"--redis: cannot reach {url!r} ({exc})") from None
        return cls(client, owner, lease_seconds=lease_seconds)

    def _state(self, stream_id: str) -> str:
        return f"{self.prefix}state:{stream_id}"

    def _lease(self, stream_id: str) -> str:
        return f"{self.prefix}lease:{stream_id}"

    def get(self, stream_id: str) -> bytes | None:
        data = self.client.get(self._state(stream_id))
        return None if data is None else bytes(data)

    def put(self, stream_id: str, data: bytes) -> None:
        self.client.set(self._state(stream_id), data)

    def delete(self, stream_id: str) -> None:
        self.client.delete(self._state(stream_id))

    def acquire(self, stream_id: str) -> bool:
        key = self._lease(stream_id)
        if self.client.set(key, self.owner, nx=True, px=self.lease_ms):
            return True
        held = self.client.get(key)  # ours already (taken earlier, not released)?
        return held is not None and bytes(held).decode() == self.owner

    def release(self, stream_ids: list[str]) -> None:
        if not stream_ids:
            return
        keys = [self._lease(s) for s in stream_ids]
        holders = self.client.mget(keys)
        mine = [k for k, h in zip(keys, holders, strict=True) if h is not None and h == self._me]
        if mine:
            self.client.delete(*mine)

    def renew(self, stream_ids: list[str]) -> None:
        if not stream_ids:
            return
        pipe = self.client.pipeline()
        for s in stream_ids:
            pipe.set(self._lease(s), self.owner, px=self.lease_ms)
        pipe.execute()

    @property
    def _me(self) -> bytes:
        return self.owner.encode()

    def describe(self) -> str:
        return f"Redis ({self.prefix}*)"
