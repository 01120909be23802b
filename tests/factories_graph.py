"""Factories for the Microsoft Graph connector's models (autopilot/graph_models.py)."""
import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from autopilot import sealing
from enrollment.models import EntraSettings
from autopilot.graph_models import GraphConnector, GraphDeviceSync, GraphProfileSync, GraphTagGroup
from tests.factories_autopilot import AutopilotDeviceFactory, ProfileFactory
from tests.fake_graph import CLIENT_ID, CLIENT_SECRET, TENANT


class GraphConnectorFactory(DjangoModelFactory):
    """The connector's single row, configured for the fake Graph (pass graph_base_url/token_base_url)."""

    class Meta:
        model = GraphConnector
        django_get_or_create = ["id"]
        skip_postgeneration_save = True  # the tenant hook writes the Entra ID settings, not the connector

    id = 1
    enabled = True
    client_id = CLIENT_ID
    sealed_client_secret = factory.LazyFunction(lambda: sealing.seal(CLIENT_SECRET))
    client_secret_set_at = factory.LazyFunction(timezone.now)

    class Params:
        disabled = factory.Trait(enabled=False)
        unconfigured = factory.Trait(enabled=False, client_id="", sealed_client_secret="", client_secret_set_at=None,
                                     tenant="")

    @factory.post_generation
    def tenant(connector, create, tenant, **kwargs):
        """The tenant lives in the Entra ID settings: the fake Graph's, unless they already name one (or
        tenant="" leaves them without)."""
        if not create or tenant == "":
            return
        entra, _created = EntraSettings.objects.get_or_create(pk=1)
        if tenant or not entra.tenant_ids:
            entra.tenant_ids = [tenant or TENANT]
            entra.save()


class GraphDeviceSyncFactory(DjangoModelFactory):
    class Meta:
        model = GraphDeviceSync

    device = factory.SubFactory(AutopilotDeviceFactory)
    status = GraphDeviceSync.Status.PENDING
    imported_id = factory.Faker("uuid4")

    class Params:
        registered = factory.Trait(status=GraphDeviceSync.Status.REGISTERED, imported_id="",
                                   identity_id=factory.Faker("uuid4"))
        refused = factory.Trait(status=GraphDeviceSync.Status.REFUSED, imported_id="", error_code=806,
                                error_name="ZtdDeviceAlreadyAssigned", error_message="Microsoft refused the device.")


class GraphProfileSyncFactory(DjangoModelFactory):
    class Meta:
        model = GraphProfileSync

    profile = factory.SubFactory(ProfileFactory)
    graph_id = factory.Faker("uuid4")


class GraphTagGroupFactory(DjangoModelFactory):
    class Meta:
        model = GraphTagGroup

    tag = factory.Sequence(lambda n: f"Tag-{n:02d}")
    group_id = factory.Faker("uuid4")
