"""Background work of the Autopilot app: ids in, domain call (imports.py, status_page.py, graph_sync.py)."""
import logging

from celery import shared_task

from . import graph, graph_sync, imports, status_page

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def run_import(import_id, only_if_queued=False):
    # A redelivered task (worker lost) resumes the import where its report stops.
    imports.run(import_id, only_if_queued=only_if_queued)


@shared_task
def sweep_imports():
    """Imports left queued while the broker was down get their task."""
    return imports.sweep()


@shared_task
def finish_overdue_setups():
    """Enrollment Status Pages past their time-out end even when their device went quiet."""
    return status_page.finish_overdue()


@shared_task
def sweep_stalled_installs():
    """MSI installs with no progress past their profile's stall time are sent again or given up, even when
    their device went quiet."""
    return status_page.sweep_stalled_installs()


# --- the optional Microsoft Graph connector (autopilot/graph_sync.py) -----------------------------

GRAPH_MAX_RETRIES = 10


def _graph_run(task, work, **kwargs):
    """Run one connector step: None when the connector is off or Graph refused for good (recorded on
    the connector's page); throttling and transient failures come back later, after Graph's
    Retry-After when it gave one."""
    try:
        return work(**kwargs)
    except graph.ConnectorDisabled:
        logger.debug("Microsoft Graph connector is off; nothing sent")
    except graph.Retry as exc:
        delay = graph.retry_delay(exc, task.request.retries)
        logger.warning("Microsoft Graph: %s; retrying in %s s", exc.message, delay)
        raise task.retry(countdown=delay, exc=exc, max_retries=GRAPH_MAX_RETRIES) from None
    except graph.GraphError as exc:
        logger.warning("Microsoft Graph synchronisation stopped: %s", exc.message)
    return None


@shared_task(bind=True, acks_late=True)
def sync_with_graph(self, retry_refused=False):
    pending = _graph_run(self, graph_sync.synchronise, retry_refused=retry_refused)
    if pending:
        poll_graph_imports.apply_async((1,), countdown=graph_sync.POLL_SECONDS)


@shared_task(bind=True, acks_late=True)
def poll_graph_imports(self, poll_round):
    pending = _graph_run(self, graph_sync.check_imports)
    if pending and poll_round < graph_sync.MAX_POLL_ROUNDS:
        poll_graph_imports.apply_async((poll_round + 1,), countdown=graph_sync.POLL_SECONDS)
