# One image for api, worker and beat; the command picks the role.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY services ./services
COPY workers ./workers
RUN pip install .
RUN useradd --create-home triage && mkdir -p /app/var && chown triage /app/var
USER triage
EXPOSE 8000
CMD ["triage", "api"]
