# The Drivetrain image: one image for every process of the fleet deployment (the API, the
# ingest workers, the dispatcher); the command picks the role, e.g.
#   docker run drivetrain serve --host 0.0.0.0
#   docker run drivetrain worker ingest --metrics-port 9464 --metrics-host 0.0.0.0
# See docs/deploy.md.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN python -m venv /opt/drivetrain \
    && /opt/drivetrain/bin/pip install --no-cache-dir ".[postgres,otel,fleet]"

FROM python:3.11-slim
COPY --from=build /opt/drivetrain /opt/drivetrain
ENV PATH=/opt/drivetrain/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DRIVETRAIN_DATA_DIR=/var/lib/drivetrain
# An unprivileged user owning only the data directory and the lake's mount point (a named
# volume mounted there starts with this ownership).
RUN useradd --system --uid 10001 --home-dir /var/lib/drivetrain --create-home drivetrain \
    && mkdir -p /lake && chown 10001 /lake
USER 10001
WORKDIR /var/lib/drivetrain
# 8080: the API (probes /livez, /readyz; /metrics). 9464: a worker's --metrics-port.
EXPOSE 8080 9464
ENTRYPOINT ["drivetrain"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
