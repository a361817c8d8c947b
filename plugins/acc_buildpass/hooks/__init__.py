"""Thin Airflow hooks over the plain API clients."""
