# One image for api, worker and beat; the command picks the role.
# An exact release, not a moving tag: the image changes only when this line does.
FROM python:3.11.11-slim-bookworm
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Exactly the locked files, checked against their hashes, and the locked build backend; then the
# project itself with nothing fetched.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY services ./services
COPY workers ./workers
RUN pip install --no-deps --no-build-isolation .
RUN useradd --create-home triage && mkdir -p /app/var && chown triage /app/var
USER triage
EXPOSE 8000
CMD ["triage", "api"]
