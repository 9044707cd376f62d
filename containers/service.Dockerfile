# Either service's image, built from the repository root:
#   docker build -f containers/service.Dockerfile --build-arg SERVICE=patient -t painkiller/patient-service .
# SERVICE is `patient` or `measurement`. PYTHON_BASE is any Debian-based image with python3 and its
# venv module: python:3.11-slim with a registry; `make images` passes a base made with debootstrap
# where none is reachable, and PIP_OPTIONS to install from the wheelhouse it built on the host
# (doc/containers.md).
ARG PYTHON_BASE=python:3.11-slim

FROM ${PYTHON_BASE} AS build
ARG SERVICE
ARG PIP_OPTIONS=""
# binutils, to strip the debug symbols of the packages' C extensions (a third of the venv); only
# in this stage, never in the runtime image. The suite is the pin (see containers/debian-*.Dockerfile).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY containers/wheelhouse/ /wheelhouse/
COPY constraints.txt ./
COPY common/ common/
COPY ${SERVICE}_service/ ${SERVICE}_service/
# Runtime dependencies only (no dev extras), at the versions pinned in constraints.txt; pip and
# setuptools are not needed at run time, nor fhir.resources' STU3 models (only R4B is served).
# hadolint ignore=SC2086
RUN test -n "$SERVICE" \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check $PIP_OPTIONS \
        -c constraints.txt ./common "./${SERVICE}_service" \
    && /opt/venv/bin/pip uninstall --yes --quiet setuptools pip \
    && rm -rf /opt/venv/lib/python3*/site-packages/fhir/resources/STU3 \
    && find /opt/venv -name '*.so*' -type f -exec strip --strip-unneeded {} +

# What only the tests need, in a directory of its own (the test target puts it on PYTHONPATH):
# pytest, and python-hl7, which the measurement service's HL7 reader is held against.
# The shared test tooling (testing/) is copied here only: the runtime image never holds it.
FROM build AS test-deps
ARG PIP_OPTIONS=""
COPY testing/ testing/
# hadolint ignore=SC2086
RUN python3 -m venv /opt/tools \
    && /opt/tools/bin/pip install --no-cache-dir --disable-pip-version-check $PIP_OPTIONS \
        -c constraints.txt --target /opt/test-deps pytest hl7 \
    && /opt/tools/bin/pip install --no-cache-dir --disable-pip-version-check $PIP_OPTIONS \
        --no-deps --target /opt/test-deps ./testing

FROM ${PYTHON_BASE} AS runtime
ARG SERVICE
RUN useradd --system --uid 10001 --no-create-home painkiller
COPY --from=build /opt/venv /opt/venv
# Each service reads only its own prefix: the other's two settings are inert.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PAINKILLER_SERVICE=${SERVICE}_service \
    PATIENT_HOST=0.0.0.0 \
    PATIENT_PORT=8000 \
    MEASUREMENT_HOST=0.0.0.0 \
    MEASUREMENT_PORT=8000
USER 10001
EXPOSE 8000
# The same entry point as the native run (`python -m <service> api`); compose and the manifests
# name the command of every other process (migrate, relay, consumer, dispatcher) explicitly.
CMD ["sh", "-c", "exec python -m \"$PAINKILLER_SERVICE\" api"]

# `--target test`: the runtime image, its test dependencies in a layer of their own, and the
# service's own tests, run against real databases (make test-containers, doc/containers.md).
FROM runtime AS test
ARG SERVICE
COPY --from=test-deps /opt/test-deps /opt/test-deps
COPY pytest.ini /src/
COPY ${SERVICE}_service/tests/ /src/${SERVICE}_service/tests/
# The hospital's sample CSV, which the patient service's import tests load.
COPY doc/patients.csv /src/doc/
ENV PYTHONPATH=/opt/test-deps
WORKDIR /src
CMD ["sh", "-c", "exec python -m pytest -p no:cacheprovider \"$PAINKILLER_SERVICE/tests\""]

# The default target: the runtime image.
FROM runtime
