"""The plain name of a console page and of its section (mdmportal/navigation.py), for the list and form
templates' titles and breadcrumbs."""
from django import template
from django.utils.translation import gettext as _

from mdmportal import navigation

register = template.Library()


@register.simple_tag
def page_name(opts):
    """"Users", "Provisioning packages"...: the name of a model's list page."""
    return navigation.page_name(opts)


@register.simple_tag
def section_name(opts):
    """The navigation section holding a model's pages ("Enrollment"), or its app's name."""
    section = navigation.section_of(opts)
    return section.name if section is not None else opts.app_config.verbose_name


@register.simple_tag
def form_title(opts, add, can_change):
    """A form's title with the row's plain name: "Add API token", "View sign-in lockout"."""
    name = navigation.object_name(opts)
    if add:
        return _("Add %s") % name
    return (_("Change %s") if can_change else _("View %s")) % name
