# One image for all three services; the command picks the service.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml constraints.txt README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --create-home --uid 10001 flashpoint
USER flashpoint

CMD ["flashpoint", "--help"]
