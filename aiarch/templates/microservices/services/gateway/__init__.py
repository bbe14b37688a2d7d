"""The gateway: the API and the catalog; the model lives in the inference service."""
