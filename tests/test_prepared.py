"""mdmportal/prepared.py: a queryset compiled once, the values swapped in at each call."""
import threading
from datetime import datetime, timedelta

import pytest
from django.db import connections
from django.utils import timezone

from enrollment.models import Device
from mdmportal.prepared import Prepared
from tests.factories_enrollment import DeviceFactory

pytestmark = pytest.mark.django_db


def test_each_call_gets_the_rows_of_its_own_values():
    old, new = DeviceFactory(name="OLD", enrolled_at=timezone.now() - timedelta(days=3)), DeviceFactory(name="NEW")
    recent = Prepared(Device, lambda name, since: Device.objects.filter(name=name, enrolled_at__gte=since),
                      name=str, since=datetime)
    assert recent(name="NEW", since=timezone.now() - timedelta(days=1)) == [new]
    assert recent(name="OLD", since=timezone.now() - timedelta(days=1)) == []
    assert recent(name="OLD", since=timezone.now() - timedelta(days=7)) == [old]
    assert recent(name="OLD", since=timezone.now() - timedelta(days=7))[0].user_id == old.user_id


def test_a_value_the_query_does_not_carry_as_given_is_refused():
    # A time computed from the value (since - 1 day) would keep the stand-in's in the SQL.
    prepared = Prepared(Device, lambda since: Device.objects.filter(enrolled_at__gte=since - timedelta(days=1)),
                        since=datetime)
    with pytest.raises(ValueError, match="since not found"):
        prepared(since=timezone.now())


@pytest.mark.django_db(transaction=True)
def test_another_thread_runs_it_on_its_own_connection():
    device = DeviceFactory(name="SHARED")
    by_name = Prepared(Device, lambda name: Device.objects.filter(name=name), name=str)
    assert by_name(name="SHARED") == [device]
    found = []

    def other():
        try:
            found.extend(by_name(name="SHARED"))
        finally:
            connections.close_all()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert found == [device]
