"""Cells of the CSV files the portal writes, made safe to open in a spreadsheet.

Excel, LibreOffice and Google Sheets read a cell that starts with =, +, -, @, a tab or a carriage
return as a formula: =HYPERLINK(...) typed into a group tag becomes a link in the administrator's
spreadsheet, and DDE formulas can start programs (OWASP, "CSV Injection"). Every CSV export passes
its cells through `neutralise`, which puts a single quote in front of such a cell, as OWASP
recommends; spreadsheets then show the text as it is. A cell that already starts with quotes
before such a character gets one more, so `restore` (used by the project's own importers) gives back
exactly the value that was exported.
"""
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    """`value` as text, with a single quote in front when a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    if text.lstrip("'").startswith(FORMULA_STARTS):
        return "'" + text
    return text


def restore(text):
    """The value `neutralise` was given: one leading quote less on a cell it marked, other cells as
    they are."""
    if text.startswith("'") and text.lstrip("'").startswith(FORMULA_STARTS):
        return text[1:]
    return text
