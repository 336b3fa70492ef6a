from django import template

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """1:05 or 1:02:03 for seconds; an en dash where there is no value."""
    if seconds is None:
        return "\u2013"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
