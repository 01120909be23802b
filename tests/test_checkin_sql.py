"""management/checkin_sql.py: the OMA-DM endpoint's statements, read back through the ORM. Runs on the
suite's database (PostgreSQL in CI) and on SQLite (DATABASE_URL=sqlite://… for this file), where the
same SQL runs without row locks and the writes go one after the other."""
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from management import checkin_sql
from management.models import DeviceCommand, ManagementSession
from tests.factories import UserFactory
from tests.factories_enrollment import (ConfigurationGroupFactory, DeviceCommandFactory, DeviceFactory,
                                        DeviceSettingStateFactory, GroupSettingFactory, ManagementSessionFactory,
                                        create_ca_chain)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FLAGS = [checkin_sql.Flag("idle", checkin_sql.idle_sessions_sql),
         checkin_sql.Flag("overdue", checkin_sql.overdue_commands_sql)]


def test_device_by_serial_reads_the_current_or_previous_certificate_with_the_active_ca():
    _, issuing = create_ca_chain()
    device = DeviceFactory(previous_certificate_serial="0ABC")
    found = checkin_sql.device_by_serial(device.certificate_serial)
    assert found == device and found.issuing_ca_pem == issuing.certificate_pem
    assert found.context_items == device.context_items  # JSON, converted
    assert found.certificate_not_after == device.certificate_not_after  # an aware datetime on both databases
    assert checkin_sql.device_by_serial("0ABC") == device
    assert checkin_sql.device_by_serial("FFFF") is None


def test_the_first_message_flags_say_whether_the_session_start_work_has_anything_to_do():
    create_ca_chain()
    quiet, busy = DeviceFactory(), DeviceFactory()
    ManagementSessionFactory(device=busy, updated_at=NOW - timedelta(hours=1))
    DeviceCommandFactory(device=busy, expires_at=NOW - timedelta(minutes=1))
    DeviceCommandFactory(device=quiet, expires_at=NOW + timedelta(days=1))  # not overdue
    ManagementSessionFactory(device=quiet, updated_at=NOW - timedelta(hours=1), ended_at=NOW)  # closed
    params = [NOW - timedelta(minutes=10), NOW]
    found = checkin_sql.device_by_serial(busy.certificate_serial, flags=FLAGS, params=params)
    assert (found.idle, found.overdue) == (True, True)
    found = checkin_sql.device_by_serial(quiet.certificate_serial, flags=FLAGS, params=params)
    assert (found.idle, found.overdue) == (False, False)


def test_enrolled_device_matches_the_device_id_whatever_its_case_and_only_enrolled():
    device = DeviceFactory(device_id="ABCDEF0123")
    DeviceFactory(device_id="RETIRED01", retired=True)
    assert checkin_sql.enrolled_device("abcdef0123") == device
    assert checkin_sql.enrolled_device("retired01") is None


def test_open_session_is_the_latest_open_one_of_that_session_id_with_its_commands_awaiting_an_answer():
    device = DeviceFactory()
    ManagementSessionFactory(device=device, session_id="7", ended_at=NOW)
    older = ManagementSessionFactory(device=device, session_id="7")
    newer = ManagementSessionFactory(device=device, session_id="7", events=[{"alert": "1226"}],
                                     last_request_hash="a" * 64, last_reply=b"<SyncML>cached</SyncML>")
    ManagementSessionFactory(device=device, session_id="8")
    sent = [DeviceCommandFactory(device=device, sent=True, session=newer) for _ in range(3)]
    DeviceCommandFactory(device=device, sent=True, session=older)
    DeviceCommandFactory(device=device, succeeded=True, session=newer)
    found, waiting = checkin_sql.open_session(device.pk, "7")
    assert found == newer and found.events == [{"alert": "1226"}] and waiting == sent
    assert found.last_reply is None  # read only for a copy of the last message
    found, _ = checkin_sql.open_session(device.pk, "7", "a" * 64)
    assert bytes(found.last_reply) == b"<SyncML>cached</SyncML>"
    assert checkin_sql.open_session(device.pk, "8")[0] is not None
    assert checkin_sql.open_session(device.pk, "9") == (None, [])


def test_the_queue_in_sequence_order():
    device = DeviceFactory(login_status="none")
    DeviceCommandFactory(device=device, sent=True)
    DeviceCommandFactory(device=device, succeeded=True)
    user_command = DeviceCommandFactory(device=device, target="./User/Vendor/MSFT/Policy/Config/X")
    first = DeviceCommandFactory(device=device)
    DeviceCommandFactory(device=device, expired=True)
    second, third = DeviceCommandFactory(device=device), DeviceCommandFactory(device=device)
    DeviceCommandFactory()  # another device's
    now = datetime.now(UTC)
    held = checkin_sql.queued(device.pk, now, limit=10, user_signed_in=False, user_scope="./User/")
    assert held == [first, second, third]
    assert checkin_sql.queued(device.pk, now, limit=2, user_signed_in=True, user_scope="./User/") == [
        user_command, first]


def test_group_settings_of_the_device_its_user_and_rule_groups_in_priority_order():
    user = UserFactory()
    device = DeviceFactory(user=user)
    by_device = ConfigurationGroupFactory(priority=20, members=[device])
    by_user = ConfigurationGroupFactory(priority=10)
    by_user.users.add(user)
    by_rule = ConfigurationGroupFactory(priority=5, everyone=True)
    unrelated = ConfigurationGroupFactory(priority=1)
    settings = [GroupSettingFactory(group=group) for group in (by_device, by_user, by_rule, unrelated)]
    found = checkin_sql.group_settings_for(device.pk, user.pk)
    assert [(s, s.group, s.direct) for s in found] == [
        (settings[2], by_rule, False), (settings[1], by_user, True), (settings[0], by_device, True)]
    without_user = checkin_sql.group_settings_for(device.pk, None)
    assert [(s.group, s.direct) for s in without_user] == [(by_rule, False), (by_device, True)]


def test_setting_states_come_with_their_command_or_none():
    device = DeviceFactory()
    with_command = DeviceSettingStateFactory(device=device)
    without = DeviceSettingStateFactory(device=device, loc_uri="./Device/Vendor/MSFT/Policy/Config/X/Y", command=None)
    found = {state.pk: state for state in checkin_sql.setting_states(device.pk)}
    assert found[with_command.pk].command == with_command.command
    assert found[with_command.pk].command.expires_at == with_command.command.expires_at
    assert found[without.pk].command is None


def test_save_message_writes_a_new_session_the_commands_sent_and_answered_and_the_device():
    device = DeviceFactory(login_status="none")
    answered = DeviceCommandFactory(device=device, sent=True)
    to_send = [DeviceCommandFactory(device=device), DeviceCommandFactory(device=device)]
    session = ManagementSession(device=device, session_id="2A", auth="certificate", server_msg_id=1, client_msg_id=1,
                                messages=1, last_request_hash="h" * 64, last_reply=b"<SyncML/>",
                                events=[{"alert": "1224"}], started_at=NOW, updated_at=NOW)
    for cmd_id, command in enumerate(to_send, start=3):
        command.status, command.msg_id, command.cmd_id = DeviceCommand.Status.SENT, 1, cmd_id
        command.sent_at, command.attempts = NOW, 1
    answered.status, answered.status_code, answered.completed_at = DeviceCommand.Status.SUCCEEDED, 200, NOW
    answered.result_data, answered.result_format = 'Écran "4K" \\ 日本 😀\n<b/>', "chr"
    device.login_status, device.last_seen_at = "user", NOW
    checkin_sql.save_message(session, sent=to_send, answered=[answered], device=device,
                             device_fields={"login_status", "last_seen_at"})

    saved = ManagementSession.objects.get(pk=session.pk)
    assert (saved.session_id, bytes(saved.last_reply), saved.events) == ("2A", b"<SyncML/>", [{"alert": "1224"}])
    for command in to_send:
        command.refresh_from_db()
        assert (command.status, command.session_id, command.cmd_id, command.attempts) == ("sent", session.pk,
                                                                                          command.cmd_id, 1)
    answered.refresh_from_db()
    assert (answered.status, answered.status_code, answered.result_data, answered.completed_at) == (
        "succeeded", 200, 'Écran "4K" \\ 日本 😀\n<b/>', NOW)
    device.refresh_from_db()
    assert (device.login_status, device.last_seen_at) == ("user", NOW)

    # The next message: the same session updated, nothing sent or answered, the device unchanged.
    session.messages, session.client_msg_id, session.ended_at = 2, 2, NOW
    checkin_sql.save_message(session)
    saved.refresh_from_db()
    assert (saved.messages, saved.client_msg_id, saved.ended_at) == (2, 2, NOW)
    assert ManagementSession.objects.filter(device=device, session_id="2A").count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")
def test_statements_are_prepared_on_postgresql_and_counted_like_any_other():
    device = DeviceFactory()
    with CaptureQueriesContext(connection) as captured:
        for _ in range(3):
            checkin_sql.open_session(device.pk, "1", "")
    table = ManagementSession._meta.db_table
    assert len(captured) == 3 and f'FROM "{table}" s LEFT JOIN' in captured[0]["sql"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                       [f'%FROM "{table}" s LEFT JOIN%'])
        assert cursor.fetchone()[0] == 1  # parsed once, executed three times
    # Only while one of these statements runs: Django's own, their values in their text, are never
    # counted or kept by psycopg for preparing.
    assert connection.connection.prepare_threshold is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_nothing_is_prepared_when_prepared_statements_are_turned_off(settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    connection.close()  # a new server session: none of the other tests' prepared statements
    device = DeviceFactory()
    for _ in range(3):
        checkin_sql.open_session(device.pk, "1", "")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 0


def test_a_write_skips_the_fields_preparation_only_for_values_psycopg_takes_as_they_are():
    import warnings

    from mdmportal.rows import preparer

    def _preparer(field):
        return preparer(field, connection)

    if connection.vendor != "postgresql":
        # Elsewhere every value goes through the field's own preparation.
        field = DeviceCommand._meta.get_field("completed_at")
        assert _preparer(field) == field.get_db_prep_save
        return
    counter = ManagementSession._meta.get_field("server_msg_id")
    assert _preparer(counter)(7, connection) == 7
    assert _preparer(counter)("7", connection) == 7  # not an int: the field converts it
    completed = DeviceCommand._meta.get_field("completed_at")
    aware = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert _preparer(completed)(aware, connection) is aware
    assert _preparer(completed)(None, connection) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Django warns of a naive datetime, then makes it aware
        naive = datetime(2026, 1, 1, 12)
        assert _preparer(completed)(naive, connection) == completed.get_db_prep_save(naive, connection)
    events = ManagementSession._meta.get_field("events")
    assert str(_preparer(events)([{"a": 1}], connection)) == str(events.get_db_prep_save([{"a": 1}], connection))


def test_dates_read_by_the_check_in_statements_are_those_the_orm_reads():
    device = DeviceFactory(last_seen_at=NOW, enrolled_at=NOW - timedelta(days=3))
    read = checkin_sql.device_by_serial(device.certificate_serial, lock=False)
    orm = type(device).objects.get(pk=device.pk)
    for name in ("last_seen_at", "enrolled_at", "certificate_not_after"):
        assert getattr(read, name) == getattr(orm, name)
        assert getattr(read, name).utcoffset() == timedelta(0)
