"""One factory per model of the invitations app. Other apps keep theirs in tests/factories_<app>.py."""
from datetime import timedelta

import factory
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.utils import timezone
from factory.django import DjangoModelFactory

from accounts.models import (
    AccountLockout, AuditEvent, AuthPolicy, Organisation, RegistrationMode, RetiredEnrollmentKey, User,
    UserGroup,
)
from invitations.models import Invitation, InvitationEmail, UrlRotation

PASSWORD = "correct horse battery staple"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    display_name = factory.Faker("name")
    language = User.Language.ENGLISH
    password = PASSWORD  # clear text here, hashed in _adjust_kwargs (None = unusable)

    class Params:
        french = factory.Trait(language=User.Language.FRENCH)
        no_password = factory.Trait(password=None)
        with_mdm_username = factory.Trait(mdm_username=factory.Sequence(lambda n: f"CORP\\user{n}"))


    @classmethod
    def _adjust_kwargs(cls, **kwargs):
        kwargs["password"] = make_password(kwargs["password"])
        return kwargs


class AdminFactory(UserFactory):
    email = factory.Sequence(lambda n: f"admin{n}@example.com")
    is_staff = True
    is_superuser = True


class OrganisationFactory(DjangoModelFactory):
    class Meta:
        model = Organisation
        django_get_or_create = ("pk",)

    pk = 1
    name = "Contoso"
    enrollment_base_url = "https://enterpriseenrollment.contoso.com"
    enrollment_key = factory.Faker("pystr", min_chars=16, max_chars=16)

    class Params:
        federated = factory.Trait(auth_policy=AuthPolicy.FEDERATED)
        pin_only = factory.Trait(registration_mode=RegistrationMode.PIN)
        pin_and_password = factory.Trait(registration_mode=RegistrationMode.PIN_AND_PASSWORD)


class RetiredEnrollmentKeyFactory(DjangoModelFactory):
    class Meta:
        model = RetiredEnrollmentKey

    key = factory.Faker("pystr", min_chars=16, max_chars=16)
    version = 1


class UrlRotationFactory(DjangoModelFactory):
    class Meta:
        model = UrlRotation

    version = 2


class InvitationFactory(DjangoModelFactory):
    class Meta:
        model = Invitation

    user = factory.SubFactory(UserFactory)
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=14))

    class Params:
        expired = factory.Trait(expires_at=factory.LazyFunction(lambda: timezone.now() - timedelta(days=1)))
        revoked = factory.Trait(status=Invitation.Status.REVOKED, revoked_at=factory.LazyFunction(timezone.now))
        accepted = factory.Trait(status=Invitation.Status.ACCEPTED, accepted_at=factory.LazyFunction(timezone.now))


class InvitationEmailFactory(DjangoModelFactory):
    class Meta:
        model = InvitationEmail

    invitation = factory.SubFactory(InvitationFactory)


class UserGroupFactory(DjangoModelFactory):
    """A user group with its registration settings; pass `members=[...]` to fill it."""

    class Meta:
        model = UserGroup
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Group {n}")
    priority = factory.Sequence(lambda n: 10 + n)

    class Params:
        pin_only = factory.Trait(registration_mode=RegistrationMode.PIN)
        pin_and_password = factory.Trait(registration_mode=RegistrationMode.PIN_AND_PASSWORD)
        no_renewal = factory.Trait(pin_renewal_allowed=False)

    @factory.post_generation
    def members(self, create, extracted, **kwargs):
        if create and extracted:
            self.members.set(extracted)


class AccountLockoutFactory(DjangoModelFactory):
    class Meta:
        model = AccountLockout

    account = factory.Sequence(lambda n: f"user{n}@example.com")


class AuditEventFactory(DjangoModelFactory):
    class Meta:
        model = AuditEvent

    action = "test.event"
    actor_label = "system"


def role_admin(role, email):
    """A console user whose permissions come from one of the roles (accounts/roles.py)."""
    user = UserFactory(email=email, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user
