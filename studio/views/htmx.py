def query_without_page(request) -> str:
    """The current filters as a query string, for page links that keep them."""
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


def partial_or_page(request, template: str, partial: str) -> str:
    """The named partial for an htmx swap; the whole page otherwise, including when htmx restores
    history after Back (it then needs a full page, not a fragment)."""
    if request.htmx and not request.htmx.history_restore_request:
        return f"{template}#{partial}"
    return template
