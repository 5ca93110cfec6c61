"""Django's Redis cache backend, reusing one redis-py client per connection pool.

Django's ``RedisCacheClient.get_client()`` builds a new ``redis.Redis`` object on
every cache call, and that construction costs more than the round trip to Redis
(measured in docs/performance.md). redis-py clients are thread-safe and share
their pool, so one per pool is enough. Behaviour is otherwise Django's own.
"""

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class ReusingRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class ReusingRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient
