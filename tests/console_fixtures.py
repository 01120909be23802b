"""Helpers shared by the console tests (tests/test_console_*.py)."""


def action(name, *objects, confirmed=False):
    """The POST body of a changelist action on `objects`; `confirmed`: as posted from the action's
    confirmation page (Send invitation, Revoke ask first)."""
    return {"action": name, "_selected_action": [obj.pk for obj in objects], **({"post": "yes"} if confirmed else {})}


def messages_of(response):
    return [str(message) for message in response.context["messages"]] if response.context else []
