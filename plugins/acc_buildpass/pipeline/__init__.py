"""Pipeline steps: plain functions over typed records, called by the DAG's tasks."""
