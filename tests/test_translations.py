"""The French catalogue is complete: `makemessages` run over a copy of the sources adds no string
without a translation, leaves none fuzzy and finds no stale one (an entry whose source string is
gone, which makemessages would keep as an obsolete `#~` entry).

makemessages writes into the catalogue it updates, so it runs over a copy of the files it reads
(.py, .html and .txt, as by default) and of locale/, in a temporary directory, with LOCALE_PATHS
pointing there. It needs GNU gettext's xgettext, msgmerge and msgattrib (Debian's `gettext`)."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

ROOT = Path(settings.BASE_DIR)
# As the developers' guide runs it: the test suite, the benchmarks and the device simulator (a
# command-line tool for developers, in English) are not translated.
IGNORED = {".venv", ".git", "tests", "bench", "simulator", "node_modules", "var", "docs", "deploy", "bin"}
EXTENSIONS = (".py", ".html", ".txt")

pytestmark = pytest.mark.skipif(shutil.which("xgettext") is None or shutil.which("msgattrib") is None,
                                reason="GNU gettext (xgettext, msgattrib) is not installed")


def copy_sources(target):
    for directory, subdirectories, files in os.walk(ROOT):
        here = Path(directory)
        if here == ROOT:
            subdirectories[:] = [d for d in subdirectories if d not in IGNORED]
        subdirectories[:] = [d for d in subdirectories if d != "__pycache__"]
        for name in files:
            relative = (here / name).relative_to(ROOT)
            if name.endswith(EXTENSIONS) or relative.parts[0] == "locale":
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(here / name, target / relative)


def msgids(po, *options):
    """The msgids of the entries `msgattrib <options>` keeps, one line each (--no-wrap)."""
    out = subprocess.run(["msgattrib", "--no-wrap", *options, str(po)], check=True, capture_output=True,
                         text=True).stdout
    return [m for m in re.findall(r'^(?:#~ )?msgid "(.*)"$', out, re.MULTILINE) if m]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    work = tmp_path_factory.mktemp("makemessages")
    copy_sources(work)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        patch.setattr(settings, "LOCALE_PATHS", [work / "locale"])
        call_command("makemessages", locale=["fr"], no_location=True, verbosity=0)
    po = work / "locale" / "fr" / "LC_MESSAGES" / "django.po"
    # makemessages sends every app's strings to the project catalogue: no app keeps a locale/ of its own.
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("django.po")) == ["locale/fr/LC_MESSAGES/django.po"]
    return po


def test_every_string_has_a_french_translation(regenerated):
    untranslated = msgids(regenerated, "--untranslated", "--no-obsolete")
    assert not untranslated, f"{len(untranslated)} strings without a French translation:\n" + "\n".join(untranslated)


def test_no_translation_is_fuzzy(regenerated):
    fuzzy = msgids(regenerated, "--only-fuzzy", "--no-obsolete")
    assert not fuzzy, f"{len(fuzzy)} fuzzy (guessed) translations to check:\n" + "\n".join(fuzzy)


def test_no_stale_translation(regenerated):
    stale = msgids(regenerated, "--only-obsolete")
    assert not stale, f"{len(stale)} translations of strings no longer in the sources:\n" + "\n".join(stale)


def test_the_compiled_catalogue_matches(tmp_path):
    """The committed .mo is the .po compiled: a translation edited but not compiled never reaches a page."""
    po = ROOT / "locale" / "fr" / "LC_MESSAGES" / "django.po"
    subprocess.run(["msgfmt", "--check-format", "-o", str(tmp_path / "django.mo"), str(po)], check=True)
    assert (tmp_path / "django.mo").read_bytes() == (po.with_suffix(".mo")).read_bytes()
