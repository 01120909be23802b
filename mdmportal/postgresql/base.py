"""Django's PostgreSQL backend with a health check that costs no round trip when it need not.

With CONN_HEALTH_CHECKS, Django checks a persistent connection before the first query of each
request by running SELECT 1 on it: a round trip, which on an OMA-DM message was one statement in
five and a fifth of the driver's CPU. A connection that PostgreSQL ended (a restart, a terminated
backend, an idle timeout) has its socket readable: the server wrote its FATAL ErrorResponse and closed
(PostgreSQL, "Frontend/Backend Protocol": termination). So a connection whose socket has nothing to
read, idle outside a transaction and not marked broken by psycopg, is usable without asking; any
other goes through Django's own check (SELECT 1), which also reads what the server sent.

A peer that vanished without closing (a host gone, a silent firewall) is found by the first query
instead, as it would be if it vanished just after a SELECT 1: the request fails (a 503 by
mdmportal/unavailable.py) and Django closes the connection when the request ends.

Subclassing the built-in backend is Django's documented way to change one (Django, "Databases:
Subclassing the built-in database backends"); DATABASES' ENGINE names this module on PostgreSQL.
"""
import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        raw = self.connection
        if raw is None:
            return False
        if (not raw.closed and not raw.broken and raw.info.transaction_status == pq.TransactionStatus.IDLE
                and not _readable(raw.fileno())):
            return True
        return super().is_usable()


def _readable(fd):
    """Whether the socket has something to read (or has failed or been closed): poll(), no waiting."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))
