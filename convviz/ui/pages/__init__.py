"""One module per page of the app: each reads its widgets, calls convviz and renders."""
