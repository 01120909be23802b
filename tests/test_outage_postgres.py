"""PostgreSQL restarted mid-run: while it is down every request gets a clean error (the enrollment
fault s:EnrollmentServer, a 503 page, a 503 JSON answer), never a stack trace; afterwards the same
requests succeed, and nothing is left half-written.

The server is a private cluster (tests/private_services.py) that the test really stops and starts;
the machine's shared PostgreSQL is never touched."""
import threading
import time
from contextlib import contextmanager

import pytest
from django.core.management import call_command
from django.urls import reverse
from pytest_django.live_server_helper import LiveServer

import simulator as sim
from simulator import Simulator, SimulatorError, SoapFaultError
from tests import omadm_messages as sml
from tests.factories import PASSWORD, AdminFactory, OrganisationFactory, UserFactory
from tests.private_services import PostgresCluster

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

DATABASE = "mdmportal_outage"


@contextmanager
def django_on(cluster):
    """Point Django's connections (this thread's, the live server's) at the private cluster."""
    from django.contrib.contenttypes.models import ContentType
    from django.db import connections

    connections.close_all()
    settings_dict = connections["default"].settings_dict  # the one dict every thread's connection reads
    saved = {key: settings_dict[key] for key in ("HOST", "PORT", "NAME")}
    settings_dict.update(HOST="127.0.0.1", PORT=str(cluster.port), NAME=DATABASE)
    ContentType.objects.clear_cache()
    try:
        yield
    finally:
        connections.close_all()
        settings_dict.update(saved)
        ContentType.objects.clear_cache()


@pytest.fixture(scope="module")
def cluster(postgres, django_db_blocker):
    cluster = PostgresCluster().init().start()
    try:
        cluster.create_database(DATABASE)
        with django_db_blocker.unblock(), django_on(cluster):
            call_command("migrate", verbosity=0)
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def private_db(cluster, transactional_db, settings):
    settings.SECURE_SSL_REDIRECT = False
    settings.CSRF_COOKIE_SECURE = settings.SESSION_COOKIE_SECURE = False
    with django_on(cluster):
        try:
            yield cluster
        finally:
            if not cluster.running:
                cluster.start()
            from django.db import connection

            connection.close()
            call_command("flush", interactive=False, verbosity=0)


def restart_finished(cluster):
    """PostgreSQL is back. Requests reconnect by themselves (a kept connection fails its health check,
    CONN_HEALTH_CHECKS, and is replaced); the test's own thread holds a connection the restart cut,
    which a request would have dropped at its start."""
    from django.db import connection

    cluster.start()
    connection.close()


def clean_failure(error):
    """A failure a device or a person can act on: our server's fault or a 503, nothing unexpected."""
    if isinstance(error, SoapFaultError):
        return error.subcode == "s:EnrollmentServer" and "temporarily unavailable" in error.reason
    return isinstance(error, SimulatorError) and "HTTP 503" in str(error)


def assert_no_half_written_enrollments():
    from enrollment.models import Device

    for device in Device.objects.all():
        assert device.certificate_serial and device.certificate_thumbprint and device.certificate_not_after


def test_enrollments_during_a_postgres_restart_fail_cleanly_and_succeed_after(private_db):
    from enrollment.models import Device
    from tests.factories_enrollment import CertificateAuthorityFactory

    server = LiveServer("localhost:0")
    try:
        OrganisationFactory(enrollment_base_url=server.url)
        CertificateAuthorityFactory(issuing=True)
        users = [UserFactory(email=f"pc{i}@example.com") for i in range(12)]
        outcomes, lock = {}, threading.Lock()

        def enroll_all():
            for user in users:
                try:
                    result = Simulator(server.url, user.email, PASSWORD, timeout=20).run()
                    outcome = result
                except SimulatorError as error:
                    outcome = error
                with lock:
                    outcomes[user.email] = outcome

        def count(kind):
            with lock:
                return sum(isinstance(o, kind) for o in outcomes.values())

        runner = threading.Thread(target=enroll_all)
        runner.start()
        deadline = time.monotonic() + 60
        while count(object) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        private_db.stop()  # mid-run: an enrollment is usually in flight right now
        outage_deadline = time.monotonic() + 30
        while count(SimulatorError) < 3 and runner.is_alive() and time.monotonic() < outage_deadline:
            time.sleep(0.05)
        restart_finished(private_db)
        runner.join(timeout=120)

        failed = {email: o for email, o in outcomes.items() if isinstance(o, SimulatorError)}
        assert len(outcomes) == len(users)
        assert failed, "no enrollment ran while PostgreSQL was down"
        unclean = {email: str(o) for email, o in failed.items() if not clean_failure(o)}
        assert not unclean
        assert_no_half_written_enrollments()

        for email in failed:
            Simulator(server.url, email, PASSWORD).run()
        assert set(Device.objects.values_list("user__email", flat=True)) == {u.email for u in users}
        assert Device.objects.count() == len(users)
        assert_no_half_written_enrollments()
    finally:
        server.stop()


def test_enrollment_cut_inside_its_transaction_gets_a_fault_and_leaves_no_device(private_db):
    import psycopg

    from enrollment.models import Device
    from accounts.models import User
    from tests.factories_enrollment import CertificateAuthorityFactory

    server = LiveServer("localhost:0")
    try:
        OrganisationFactory(enrollment_base_url=server.url)
        CertificateAuthorityFactory(issuing=True)
        user = UserFactory(email="cut@example.com")
        simulator = Simulator(server.url, user.email, PASSWORD, timeout=30)
        address = {"host": "127.0.0.1", "port": private_db.port, "dbname": DATABASE, "user": "postgres"}
        outcome = {}

        def enroll():
            try:
                outcome["result"] = simulator.run()
            except SimulatorError as error:
                outcome["error"] = error

        # Another session holds the user's row: the enrollment's transaction stops at its
        # SELECT ... FOR UPDATE of that row, and PostgreSQL goes down right there.
        holder, watcher = psycopg.connect(**address), psycopg.connect(**address, autocommit=True)
        try:
            holder.execute(f"SELECT 1 FROM {User._meta.db_table} WHERE id = %s FOR UPDATE", [user.pk])
            runner = threading.Thread(target=enroll)
            runner.start()
            deadline = time.monotonic() + 60
            while not watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                      "AND datname = %s", [DATABASE]).fetchone()[0]:
                assert runner.is_alive() and time.monotonic() < deadline, outcome
                time.sleep(0.05)
            private_db.stop()
        finally:
            holder.close()
            watcher.close()
        runner.join(timeout=60)
        restart_finished(private_db)

        error = outcome["error"]
        assert isinstance(error, SoapFaultError) and error.check == "enroll"
        assert clean_failure(error)
        assert not Device.objects.exists()

        result = simulator.run()
        assert Device.objects.get().certificate_thumbprint.lower() == sim.thumbprint(result.certificate).lower()
    finally:
        server.stop()


def test_sign_in_page_and_management_endpoint_answer_503_while_postgres_is_down(private_db):
    from django.test import Client

    organisation = OrganisationFactory()
    client = Client(raise_request_exception=False)
    private_db.stop()
    try:
        page = client.get(reverse("enrollment:signin", args=[organisation.enrollment_key]), {"appru": "ms-app://x", "login_hint": "a@example.com"})
        management = client.post(sml.URL, sml.package1("1E08C6E95D8BB843B1278FF45BC60CC6"),
                                 content_type=sml.CONTENT_TYPE)
    finally:
        restart_finished(private_db)

    assert page.status_code == 503 and "Temporarily unavailable" in page.content.decode()
    assert page["Retry-After"]
    assert management.status_code == 503


def test_invitations_sent_during_a_postgres_restart_get_a_503_then_go_out_once(private_db, mailoutbox):
    from django.test import Client

    from invitations.models import Invitation, InvitationEmail
    from tests.api_helpers import client_with_token, make_token

    OrganisationFactory()
    admin = AdminFactory(email="root@example.com")
    users = [UserFactory(email=f"invitee{i}@example.com") for i in range(3)]
    console = Client(raise_request_exception=False)
    console.force_login(admin)
    api = client_with_token(make_token(admin))
    api.raise_request_exception = False
    action = {"action": "send_invitations", "_selected_action": [u.pk for u in users], "post": "yes"}

    private_db.stop()
    try:
        page = console.post(reverse("admin:accounts_user_changelist"), action)
        answer = api.post("/api/v1/invitations/", {"users": [users[0].pk]}, format="json")
    finally:
        restart_finished(private_db)

    assert page.status_code == 503
    assert "Temporarily unavailable" in page.content.decode() and "Traceback" not in page.content.decode()
    assert answer.status_code == 503 and "temporarily unavailable" in answer.json()["detail"]
    assert not Invitation.objects.exists() and not InvitationEmail.objects.exists()
    assert mailoutbox == []

    page = console.post(reverse("admin:accounts_user_changelist"), action)

    assert page.status_code == 302
    assert sorted(m.to[0] for m in mailoutbox) == sorted(u.email for u in users)
    for invitation in Invitation.objects.all():
        assert invitation.emails.filter(status=InvitationEmail.Status.SENT).count() == 1


def test_a_kept_connection_cut_by_a_restart_is_replaced_before_the_next_request(private_db):
    """A gunicorn worker keeps its connection between requests (CONN_MAX_AGE). PostgreSQL restarting
    between two requests cuts it without any request seeing an error; the next request checks it
    first (CONN_HEALTH_CHECKS), opens a new one and succeeds."""
    import io
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection, connections

    settings_dict = connections["default"].settings_dict
    assert settings_dict["CONN_MAX_AGE"] and settings_dict["CONN_HEALTH_CHECKS"]
    OrganisationFactory()
    handler = WSGIHandler()  # what gunicorn calls: request_started/finished manage the connection
    body = sml.package1("1E08C6E95D8BB843B1278FF45BC60CC6")

    def request():
        status = []
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/ManagementServer/MDM.svc", "QUERY_STRING": "",
                   "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1",
                   "HTTP_HOST": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
                   "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": sml.CONTENT_TYPE,
                   "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.errors": sys.stderr}
        response = handler(environ, lambda code, headers, exc_info=None: status.append(int(code.split()[0])))
        b"".join(response)
        response.close()
        with connection.cursor() as cursor:  # the connection the worker keeps for its next request
            cursor.execute("SELECT pg_backend_pid()")
            return status[0], cursor.fetchone()[0]

    with ThreadPoolExecutor(max_workers=1) as worker:  # one thread: one worker, one connection
        try:
            first, second = worker.submit(request).result(), worker.submit(request).result()
            # 403: an unknown device, refused after reading the database (a 503 would mean it failed).
            assert first[0] == second[0] == 403
            assert first[1] == second[1]  # the same connection, kept
            private_db.stop()
            private_db.start()
            after = worker.submit(request).result()
        finally:
            worker.submit(connections.close_all).result()
    assert after[0] == 403
    assert after[1] != first[1]
