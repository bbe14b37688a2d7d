"""Deployment files for platforms aiarch does not run itself, written from aiarch.yaml.

aiarch.yaml stays the one description of a deployment: an export says it in another platform's
words (``aiarch.export.kubernetes``), so that what runs there is what `aiarch up` measured.
"""
