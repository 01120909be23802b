"""Helpers shared by the console tests (tests/test_console_*.py)."""


def action(name, *objects):
    """The POST body of a changelist action on `objects`."""
    return {"action": name, "_selected_action": [obj.pk for obj in objects]}


def messages_of(response):
    return [str(message) for message in response.context["messages"]] if response.context else []
