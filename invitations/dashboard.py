from accounts.models import User

from .models import Invitation

# Figures of higher apps (Autopilot...), which this app cannot import: each registers a function of the
# signed-in user returning a card {"id", "figure", "label", "url"} (url None when the user may not open the
# list) or None to show nothing.
_cards = []
# Figures of higher apps shown among this app's own (the enrolled devices): name -> function of nothing.
_counts = {}


def register_card(card):
    if card not in _cards:
        _cards.append(card)


def cards(user):
    """The registered apps' cards for `user`, in registration order."""
    return [card for card in (make(user) for make in _cards) if card is not None]


def register_count(name, count):
    """Add the figure `name` (a key the console's index template shows) computed by `count()`."""
    _counts[name] = count


def counts():
    """The console dashboard's figures."""
    return {
        "users": User.objects.filter(is_staff=False).count(),
        "pending_invitations": Invitation.objects.pending().count(),
        **{name: count() for name, count in _counts.items()},
    }
