"""Copy Autodesk Construction Cloud photos into BuildPass photo galleries with Apache Airflow."""

from __future__ import annotations

__version__ = "0.1.0"
