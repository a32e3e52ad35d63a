# The chargewatch collector (and simulator: same image, different command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the wheel needs (pyproject.toml force-includes rules/, tariffs/ and
# dashboards/ as the package's defaults); tests and deploy/ stay out of the image.
COPY pyproject.toml README.md ./
COPY chargewatch ./chargewatch
COPY rules ./rules
COPY tariffs ./tariffs
COPY dashboards ./dashboards
RUN pip install . && rm -rf /src

# A fixed uid/gid so volume ownership is predictable across rebuilds. A named
# volume mounted on an existing directory starts with its owner: the ledger
# volume that several collectors share (docker-compose.multi.yml) included.
RUN groupadd --system --gid 10001 chargewatch \
 && useradd --system --uid 10001 --gid chargewatch --home-dir /var/lib/chargewatch \
      --shell /usr/sbin/nologin chargewatch \
 && mkdir -p /var/lib/chargewatch /var/lib/chargewatch-ledger /etc/chargewatch \
 && chown chargewatch:chargewatch /var/lib/chargewatch /var/lib/chargewatch-ledger

USER chargewatch
WORKDIR /var/lib/chargewatch
VOLUME ["/var/lib/chargewatch"]
EXPOSE 9108

# /healthz answers 200 while the pipeline thread is alive (collector/service.py).
# python-slim has no curl; the standard library does the request.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["chargewatch"]
CMD ["run", "--config", "/etc/chargewatch/chargewatch.yaml"]
