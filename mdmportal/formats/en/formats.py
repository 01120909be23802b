"""Dates as the console and the portal show them in English: short enough to stay on one line in a list
column ("6 Dec 2026, 21:49" rather than "Dec. 6, 2026, 9:49 p.m."), 24-hour times as Windows' logs have
them. Django's own English formats fill in the rest (FORMAT_MODULE_PATH)."""
DATE_FORMAT = "j M Y"
TIME_FORMAT = "H:i"
DATETIME_FORMAT = "j M Y, H:i"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
