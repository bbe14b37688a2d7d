"""The shop: a product catalog and a PyTorch recommender, written once as modules.

Where the modules run is decided by the composition in ``services/``: in one process (the
monolith) or behind HTTP (microservices). This package never imports torch at import time, so
the gateway image can do without it: only ``shop.model`` needs torch.
"""
