# syntax=docker/dockerfile:1
# FusionInfer operator image: `fusioninfer run` as a non-root user.
#   make docker-build IMG=<registry>/fusioninfer:<tag>
# Stage 1 builds the wheel (build tools stay there); stage 2 installs only the wheel and its
# runtime dependencies into a virtualenv owned by root and run by UID 65532.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src/ src/
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="fusioninfer" \
      org.opencontainers.image.description="Kubernetes operator: one InferenceService in, a complete LLM serving stack out" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/fusioninfer/bin:$PATH
COPY --from=build /wheels /wheels
RUN python -m venv /opt/fusioninfer \
    && /opt/fusioninfer/bin/pip install /wheels/*.whl \
    && rm -rf /wheels
# A numeric UID, so `runAsNonRoot: true` can be verified by the kubelet without /etc/passwd.
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["fusioninfer", "run"]
