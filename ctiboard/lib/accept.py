"""Content negotiation by the Accept header, as NFON's CTI API does it (the simulator and the
gateway both answer one endpoint as JSON or as an SSE stream)."""

from collections.abc import Sequence


def negotiate(accept: str, offers: Sequence[str]) -> str | None:
    """The offer the Accept header prefers (ties go to the earlier offer, the default)."""
    if not accept.strip():
        return offers[0]
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        media, _, params = part.partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        ranges.append((media.strip().lower(), quality))
    best, best_quality = None, 0.0
    for offer in offers:
        wildcard = offer.split("/")[0] + "/*"
        specificity, quality = -1, 0.0
        for media, media_quality in ranges:
            rank = {offer: 2, wildcard: 1, "*/*": 0}.get(media, -1)
            if rank > specificity:
                specificity, quality = rank, media_quality
        if quality > best_quality:
            best, best_quality = offer, quality
    return best
