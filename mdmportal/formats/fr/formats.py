"""Dates as the console and the portal show them in French: « 6 déc. 2026, 21:49 » rather than the whole
month's name, to stay on one line in a list column. Django's own French formats fill in the rest.
N is the abbreviated month as French writes it (« déc. », « mai »); M would capitalise it (« Déc »)."""
DATE_FORMAT = "j N Y"
TIME_FORMAT = "H:i"
DATETIME_FORMAT = "j N Y, H:i"
SHORT_DATE_FORMAT = "d/m/Y"
SHORT_DATETIME_FORMAT = "d/m/Y H:i"
