"""Plain API clients: requests and typed records, no Airflow."""
