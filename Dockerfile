# The official Airflow 3 image with acc-buildpass built in (nothing is pip-installed at start).
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

COPY --chown=airflow:root pyproject.toml README.md /opt/acc-buildpass/
COPY --chown=airflow:root plugins /opt/acc-buildpass/plugins
RUN pip install --no-cache-dir "/opt/acc-buildpass"

COPY --chown=airflow:root dags /opt/airflow/dags
# The API emulators, for `--profile sandbox` (standard library only).
COPY --chown=airflow:root include /opt/airflow/include
