"""What the Airflow UI shows of a run: its reconciliation report, as a tab of the DAG run."""
