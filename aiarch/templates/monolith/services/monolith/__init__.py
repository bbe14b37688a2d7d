"""The monolith: the API, the catalog and the model in one process."""
