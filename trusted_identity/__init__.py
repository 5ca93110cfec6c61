"""Trusted Identity: signed, verifiable client-SDK user ids for Django."""

__version__ = "0.1.0"
