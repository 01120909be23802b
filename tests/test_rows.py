"""mdmportal/rows.py: the written-out SELECT and INSERT give what the ORM gives, on either database."""
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.models.signals import post_save, pre_save
from django.forms.models import model_to_dict

from accounts.models import AuditEvent, Organisation
from enrollment.models import Device
from mdmportal.rows import Columns

from .factories import AuditEventFactory, UserFactory
from .factories_enrollment import DeviceFactory

pytestmark = pytest.mark.django_db

DEVICES = Columns(Device, "d")
EVENTS = Columns(AuditEvent, "a")
ORGANISATIONS = Columns(Organisation, "o")
UNIQUE = ("id", "device_id", "hw_dev_id", "name", "certificate_serial", "certificate_thumbprint", "context_items")


def stored(device):
    """The device's row as the ORM reads it back, without what is unique to each device."""
    values = model_to_dict(Device.objects.get(pk=device.pk), fields=[f.name for f in Device._meta.concrete_fields])
    return {name: value for name, value in values.items() if name not in UNIQUE}


def test_insert_writes_the_row_the_orm_writes():
    user, not_after = UserFactory(), datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    same = {"user": user, "os_edition": 136, "upn": "Ünïcode@example.com", "certificate_not_after": not_after}
    by_orm = DeviceFactory.build(**same)
    by_orm.save()
    written = DeviceFactory.build(**same)
    assert DEVICES.insert(connection, [written]) == [written]
    assert written.pk is not None and written.pk != by_orm.pk
    assert not written._state.adding and written._state.db == connection.alias
    # Fields the ORM fills on an addition (auto_now_add, defaults) are filled the same way, in the instance too.
    assert isinstance(written.enrolled_at, datetime) and written.enrolled_at.tzinfo is not None
    mine, theirs = stored(written), stored(by_orm)
    assert abs(mine.pop("enrolled_at") - theirs.pop("enrolled_at")).total_seconds() < 60
    assert mine == theirs
    assert Device.objects.get(pk=written.pk).context_items == written.context_items


def test_several_rows_in_one_statement_keep_their_order(django_assert_num_queries):
    events = [AuditEvent(action=f"test.{n}", actor_label="system", detail={"n": n}) for n in range(5)]
    with django_assert_num_queries(1):
        EVENTS.insert(connection, events)
    for n, event in enumerate(events):
        assert AuditEvent.objects.get(pk=event.pk).detail == {"n": n}
        assert AuditEvent.objects.get(pk=event.pk).action == f"test.{n}"


def test_insert_sends_the_save_signals_as_save_does():
    seen = []

    def before(sender, instance, raw, **kwargs):
        seen.append(("pre", instance.pk, raw))

    def after(sender, instance, created, **kwargs):
        seen.append(("post", instance.pk, created))

    pre_save.connect(before, sender=AuditEvent)
    post_save.connect(after, sender=AuditEvent)
    try:
        event = EVENTS.insert(connection, [AuditEvent(action="test.signals", actor_label="system")])[0]
    finally:
        pre_save.disconnect(before, sender=AuditEvent)
        post_save.disconnect(after, sender=AuditEvent)
    assert seen == [("pre", None, False), ("post", event.pk, True)]


def test_insert_refuses_a_saved_instance_and_writes_nothing():
    saved = AuditEventFactory()
    before = AuditEvent.objects.count()
    with pytest.raises(ValueError):
        EVENTS.insert(connection, [AuditEvent(action="test.new", actor_label="system"), saved])
    assert AuditEvent.objects.count() == before


def test_first_and_where_read_instances_as_the_orm_does():
    devices = DeviceFactory.create_batch(3)
    quote = connection.ops.quote_name
    found = DEVICES.where(connection, f"d.{quote('user_id')} IN (%s, %s)", [devices[0].user_id, devices[2].user_id],
                          order_by=f"d.{quote('id')} DESC")
    assert [d.pk for d in found] == [devices[2].pk, devices[0].pk]
    for device in found:
        orm = Device.objects.get(pk=device.pk)
        assert model_to_dict(device) == model_to_dict(orm)
        assert device.enrolled_at == orm.enrolled_at and device.enrolled_at.tzinfo is not None
        assert not device._state.adding
    assert DEVICES.first(connection, pk=-1) is None
    organisation = Organisation.get()
    assert ORGANISATIONS.first(connection, pk=organisation.pk).enrollment_key == organisation.enrollment_key


def test_some_columns_read_in_any_order_build_instances_with_the_rest_deferred():
    from enrollment.models import JwksSet

    from .factories_enrollment import JwksSetFactory

    jwks = JwksSetFactory(key_ids=["kid-a", "kid-b"], sha256="ab" * 32)
    some = Columns(JwksSet, "j", fields=("key_ids", "sha256", "id"))
    found = some.first(connection, pk=jwks.pk)
    assert (found.pk, found.key_ids, found.sha256) == (jwks.pk, ["kid-a", "kid-b"], "ab" * 32)
    assert found.get_deferred_fields() == {f.attname for f in JwksSet._meta.concrete_fields} - {"id", "key_ids", "sha256"}
    assert found.document == jwks.document  # read when asked for, as with QuerySet.only()
    with pytest.raises(ValueError):
        Columns(JwksSet, "j", fields=("sha256",))
    with pytest.raises(TypeError):
        some.insert(connection, [JwksSet(document={"keys": []})])
