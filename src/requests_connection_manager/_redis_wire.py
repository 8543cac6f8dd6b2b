"""One command on one pooled connection: the short way to Redis for the clients we make.

redis-py's ``execute_command`` wraps every command in layers (a retry wrapper, command
callbacks, maintenance-notification handling on 8.x; slot routing on a cluster): on a
loopback Redis they cost more than the round trip itself (measured: ``EVALSHA`` through
``Redis.evalsha`` 106 µs wall / 68 µs CPU; packed and sent on a pooled connection 42 µs /
21 µs). A shared rate limit sends one script per permit or lease, so :func:`call` sends it
the short way: a connection from the client's pool (for a cluster, the pool of the node
that owns the key's slot), the packed command, the raw reply, the connection back.

Only the clients made from ``redis_url`` use it (a user's ``redis_client`` may be
instrumented, or subclassed, through ``execute_command``). Anything out of the ordinary
goes back to redis-py's own path, which knows what to do: a redirection or any other error
on a cluster (it refreshes its slot map), a connection without a pool. Errors of a single
node or Sentinel primary are raised as they are (the link fails over to local state).
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

__all__ = ["Fallback", "call"]


class Fallback(Exception):
    """Send this command through redis-py's own path instead."""


# Whether a pool's ``get_connection`` needs a command name (redis-py 5.x) or warns about
# one (8.x deprecates it), by pool class.
_NEEDS_NAME: dict[type, bool] = {}


def _connection(pool: Any) -> Any:
    kind = type(pool)
    needs = _NEEDS_NAME.get(kind)
    if needs is None:
        parameter = inspect.signature(pool.get_connection).parameters.get("command_name")
        needs = parameter is not None and parameter.default is inspect.Parameter.empty
        _NEEDS_NAME[kind] = needs
    return pool.get_connection("EVALSHA") if needs else pool.get_connection()


def _pool(client: Any, key: str) -> tuple[Optional[Any], bool]:
    """The pool to send a command about ``key`` on, and whether it is a cluster node's."""
    import redis

    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, redis.ConnectionPool):
        return pool, False
    get_node = getattr(client, "get_node_from_key", None)
    if get_node is None:
        return None, False
    node = get_node(key)
    return client.get_redis_connection(node).connection_pool, True


def call(client: Any, *args: Any) -> Any:
    """Send one command whose first key is ``args[3]`` (``EVALSHA sha numkeys key ...``).

    Raises:
        Fallback: Send it through ``client`` instead.
        redis.RedisError: The command failed on a single node or Sentinel primary (a
            ``NOSCRIPT`` among them).
    """
    from redis.exceptions import NoScriptError, RedisError

    try:
        pool, cluster = _pool(client, args[3])
    except RedisError as exc:  # the cluster's slot map cannot be read now
        raise Fallback() from exc
    if pool is None:
        raise Fallback()
    connection = None
    try:
        connection = _connection(pool)  # connects (or reconnects) if needed
        connection.send_packed_command(connection.pack_command(*args), check_health=False)
        return connection.read_response()
    except NoScriptError:
        raise
    except RedisError as exc:
        if cluster:  # MOVED, a dead node, a failover: the cluster client sorts it out
            raise Fallback() from exc
        raise
    except BaseException:
        if connection is not None:
            connection.disconnect()
        raise
    finally:
        if connection is not None:
            pool.release(connection)
